"""gcnseg: Global Convolutional Network for semantic segmentation (Peng et al., CVPR 2017)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the functions, not here: ``import gcnseg`` stays fast
    import torch
    from torch import nn

__version__ = "0.1.0"


def from_pretrained(
    name_or_run: str | os.PathLike, device: str | torch.device = "cpu", num_classes: int | None = None
) -> nn.Module:
    """A trained network in eval mode on ``device``: a named model that ships with gcnseg
    (``gcnseg models``; e.g. ``"camvid-gcn-lite0"``), a run folder or a checkpoint folder.

    ``model.segment(image)`` gives its class ids for an image (a path, PIL image, numpy
    array or tensor, or a list of them) at the image's size, as ``gcnseg predict`` does;
    ``scores=True`` adds the softmax scores. ``model.preprocess(image)`` is the normalised
    ``1 x 3 x H x W`` tensor the network takes, ``model(x)`` its logits ``N x C x H x W``.
    ``model.meta``: class names, palette, config; ``model.config``: the config whose
    normalisation and test-time settings (``eval``) it uses (:mod:`gcnseg.api`).

    ``num_classes`` other than the model's: the same architecture with its trained
    encoder and a fresh, untrained head for that many classes (``meta["trained"]`` False)."""
    from .api import from_pretrained

    return from_pretrained(name_or_run, device, num_classes)
