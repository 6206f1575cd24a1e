"""An exponential moving average of the weights (beyond the paper: Polyak averaging, as
timm's ``ModelEmaV2``), the network a run with ``train.ema`` validates and saves.

After each optimiser step every floating-point parameter and buffer (BatchNorm's
running statistics too) moves towards the trained network's by ``1 - decay``; integer
buffers are copied. The decay warms up as ``min(decay, (1 + step) / (10 + step))``, so
that the first steps' weights, far from trained, fade out of the average quickly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """The averaged copy (:attr:`module`) of a network, updated by :meth:`update`."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        ours, theirs = self.module.state_dict(keep_vars=True), model.state_dict(keep_vars=True)
        floats = [k for k, v in ours.items() if v.is_floating_point()]
        self._average = ([ours[k].detach() for k in floats], [theirs[k].detach() for k in floats])
        self._copy = [(ours[k].detach(), theirs[k].detach()) for k in ours if k not in floats]

    def decay_at(self, step: int) -> float:
        """The decay of the update after optimiser step ``step`` (1 the first)."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the trained network after optimiser step ``step``."""
        mine, trained = self._average
        torch._foreach_lerp_(mine, trained, 1.0 - self.decay_at(step))
        for dst, src in self._copy:
            dst.copy_(src)
