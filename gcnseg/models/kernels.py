"""Faster CPU kernels for the GCN module's strips (same parameters, same results).

:class:`StripConv` is the ``k x 1`` / ``1 x k`` convolution that opens each branch of
:class:`~gcnseg.models.gcn.GlobalConv` (Fig. 2B), where the wide backbone features
meet the few class channels. It is an ``nn.Conv2d`` (its checkpoint keys are
``weight`` and ``bias``) that, on the CPU, computes the same products in shapes for
which oneDNN has faster kernels:

- in inference, a strip with ``k >= 15`` and ``k % 3 == 0`` runs as one 3-tap
  convolution with ``k/3`` times the output channels whose shifted slices are summed
  (the few class channels fill oneDNN's output-channel blocks);
- in training, a ``1 x k`` strip with ``k >= 15`` runs as the ``k x 1`` convolution of
  the transposed map (oneDNN's weight gradient of a ``1 x k`` kernel is the slow one).

Everything else (CUDA, tracing and export, other geometries) takes ``nn.Conv2d``'s own
call. The choice is made by one switch, read once: :func:`use_fast_kernels`
(``GCNSEG_FAST_KERNELS=0`` turns the fast paths off), stored by each strip as
``self.fast``; :func:`plain_kernels` turns them off on one model for a while (``gcnseg
info`` counts the paper's arithmetic). Measurements: ``docs/performance.md``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_FAST_KERNELS = os.environ.get("GCNSEG_FAST_KERNELS", "1") not in ("0", "false", "False")


def use_fast_kernels() -> bool:
    """Whether new strips take their fast CPU paths (``GCNSEG_FAST_KERNELS``, read at import)."""
    return _FAST_KERNELS


@contextlib.contextmanager
def plain_kernels(model: nn.Module) -> Iterator[None]:
    """Inside: every :class:`StripConv` of ``model`` takes ``nn.Conv2d``'s own call."""
    strips = [m for m in model.modules() if isinstance(m, StripConv)]
    before = [m.fast for m in strips]
    for m in strips:
        m.fast = False
    try:
        yield
    finally:
        for m, fast in zip(strips, before):
            m.fast = fast


class _SwapHW(torch.autograd.Function):
    """``w.transpose(2, 3)`` as a contiguous tensor whose gradient comes back in
    ``w``'s own strides (DDP's gradient buckets are laid out like the parameters)."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
        ctx.shape, ctx.strides = w.shape, w.stride()
        return w.transpose(2, 3).contiguous()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = torch.empty_strided(ctx.shape, ctx.strides, dtype=grad.dtype, device=grad.device)
        return out.copy_(grad.transpose(2, 3))


class StripConv(nn.Conv2d):
    """One strip of GCN's separable kernel: a ``k x 1`` (``vertical``) or ``1 x k``
    convolution with "same" zero padding; an ``nn.Conv2d`` with the same parameters and
    results, computed faster on the CPU (module docstring)."""

    fast_from_k = 15  # below, the plain call is the faster one

    def __init__(self, in_channels: int, out_channels: int, k: int, vertical: bool, bias: bool = False) -> None:
        kernel, padding = self._geometry(k, vertical)
        super().__init__(in_channels, out_channels, kernel, padding=padding, bias=bias)
        self.vertical = vertical
        self.fast = use_fast_kernels()

    @staticmethod
    def _geometry(k: int, vertical: bool) -> tuple[tuple[int, int], tuple[int, int]]:
        """(kernel size, "same" zero padding) of a k-tap strip."""
        return ((k, 1), (k // 2, 0)) if vertical else ((1, k), (0, k // 2))

    @property
    def k(self) -> int:
        return self.kernel_size[0] * self.kernel_size[1]

    def _fast(self, x: torch.Tensor) -> bool:
        return (
            self.fast
            and x.device.type == "cpu"
            and x.dim() == 4
            and self.k >= self.fast_from_k
            and (self.kernel_size, self.padding) == self._geometry(self.k, self.vertical)
            and self.padding_mode == "zeros"
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and not torch.jit.is_tracing()
            and not torch.onnx.is_in_onnx_export()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._fast(x):
            return super().forward(x)
        if self.weight.requires_grad and torch.is_grad_enabled():
            return super().forward(x) if self.vertical else self._transposed(x)
        return self._tap_groups(x) if self.k % 3 == 0 else super().forward(x)

    def _transposed(self, x: torch.Tensor) -> torch.Tensor:
        """The ``1 x k`` strip as the ``k x 1`` convolution of the transposed map."""
        cl = torch.channels_last
        # the transposed weight as a plain tensor: the gradient of a strided view fails in
        # PyTorch's fallback convolution on tiny maps (stride, dilation, groups are 1: _fast)
        y = F.conv2d(
            x.transpose(2, 3).contiguous(memory_format=cl), _SwapHW.apply(self.weight), self.bias, 1, self.padding[::-1]
        )
        return y.transpose(2, 3).contiguous(memory_format=cl)

    def _tap_groups(self, x: torch.Tensor) -> torch.Tensor:
        """The ``k``-tap strip as ``k/3`` groups of 3 taps in one convolution, summed shifted."""
        o, c, k = self.out_channels, self.in_channels, self.k
        g = k // 3  # each group's filters are o more output channels
        w = self.weight.reshape(o, c, g, 3).permute(2, 0, 1, 3).reshape(g * o, c, 3)
        w = (w.unsqueeze(3) if self.vertical else w.unsqueeze(2)).contiguous(memory_format=torch.channels_last)
        z = F.conv2d(x, w, None, 1, self.padding)  # k - 3 more rows (columns) than x
        n, dim = x.shape[2 if self.vertical else 3], 2 if self.vertical else 3
        # summed in float32 at least, so bf16 group outputs are rounded once, at the end
        y = z[:, :o].narrow(dim, 0, n).to(torch.promote_types(z.dtype, torch.float32))
        for i in range(1, g):  # tap 3i + j of the strip = tap j of group i, 3i rows (columns) on
            y = y + z[:, i * o : (i + 1) * o].narrow(dim, 3 * i, n)
        y = y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
        return y.to(z.dtype)  # the dtype of the plain call's result
