"""The paper's own building blocks (Section 3, Figures 2 and 4).

- :class:`GlobalConv`: the Global Convolutional Network module (Fig. 2B).
- :class:`StripConv`: its ``k x 1`` / ``1 x k`` convolutions over the backbone's
  features, with faster ways to compute them on the CPU.
- :class:`BoundaryRefine`: the Boundary Refinement block (Fig. 2C).
- :func:`build_head`: a score head of any kind compared in Tables 1-4
  (GCN, the 1x1 baseline, a plain kxk convolution, a stack of 3x3 convolutions).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

HEAD_KINDS = ("gcn", "conv1x1", "convkxk", "stack")


def _check_odd(k: int, what: str = "k") -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0:
        raise ValueError(f"{what} must be a positive odd integer (paper 4.1.1: odd sizes avoid alignment error), got {k!r}")


class _SwapHW(torch.autograd.Function):
    """``w.transpose(2, 3)`` as a contiguous tensor whose gradient comes back in
    ``w``'s own strides (DDP's gradient buckets are laid out like the parameters)."""

    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.shape, ctx.strides = w.shape, w.stride()
        return w.transpose(2, 3).contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = torch.empty_strided(ctx.shape, ctx.strides, dtype=grad.dtype, device=grad.device)
        return out.copy_(grad.transpose(2, 3))


class StripConv(nn.Conv2d):
    """One strip of GCN's separable kernel over a wide input: a ``k x 1``
    (``vertical``) or ``1 x k`` convolution, an ``nn.Conv2d`` with the same
    parameters and results, computed faster on the CPU:

    - in inference with ``k >= 15`` and ``k % 3 == 0``: as one convolution of 3 taps
      with ``k/3`` times the output channels, whose shifted slices are summed
      (oneDNN fills 32-wide output-channel blocks, and 21 classes fill 66% of them;
      k=15, 256 -> 21 channels at 128x128: 19 -> 15 ms; 1024 channels at 32x32:
      9 -> 4.5 ms; torch 2.14);
    - in training, a ``1 x k`` strip with ``k >= 15`` runs as the ``k x 1``
      convolution of the transposed map: there oneDNN's weight gradient of a
      ``1 x k`` kernel is several times slower than that of ``k x 1`` (k=15, 256
      channels at 128x128: 186 ms against 27 ms), and the two copies cost a few ms.
      Below k=15 (measured k=3..13) the plain call is faster.
    """

    fast_from_k = 15

    def __init__(self, in_channels: int, out_channels: int, k: int, vertical: bool, bias: bool = False) -> None:
        kernel, padding = self._geometry(k, vertical)
        super().__init__(in_channels, out_channels, kernel, padding=padding, bias=bias)
        self.vertical = vertical

    @staticmethod
    def _geometry(k: int, vertical: bool) -> tuple[tuple[int, int], tuple[int, int]]:
        """(kernel size, "same" zero padding) of a k-tap strip."""
        return ((k, 1), (k // 2, 0)) if vertical else ((1, k), (0, k // 2))

    @classmethod
    @contextlib.contextmanager
    def plain(cls) -> Iterator[None]:
        """Inside: nn.Conv2d's own call everywhere (``gcnseg info`` counts the paper's arithmetic)."""
        before, cls.fast_from_k = cls.fast_from_k, sys.maxsize
        try:
            yield
        finally:
            cls.fast_from_k = before

    @property
    def k(self) -> int:
        return self.kernel_size[0] * self.kernel_size[1]

    def _fast(self, x: torch.Tensor) -> bool:
        return (x.device.type == "cpu" and x.dim() == 4 and self.k >= self.fast_from_k
                and (self.kernel_size, self.padding) == self._geometry(self.k, self.vertical)
                and self.padding_mode == "zeros"
                and self.stride == (1, 1) and self.dilation == (1, 1) and self.groups == 1
                and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._fast(x):
            return super().forward(x)
        if self.weight.requires_grad and torch.is_grad_enabled():
            return super().forward(x) if self.vertical else self._transposed(x)
        return self._tap_groups(x) if self.k % 3 == 0 else super().forward(x)

    def _transposed(self, x: torch.Tensor) -> torch.Tensor:
        cl = torch.channels_last
        # the transposed weight as a plain tensor (the gradient of a strided view fails in
        # PyTorch's fallback convolution on tiny maps); its gradient in the weight's strides.
        # Stride, dilation and groups are 1 here (_fast)
        y = F.conv2d(x.transpose(2, 3).contiguous(memory_format=cl), _SwapHW.apply(self.weight), self.bias,
                     1, self.padding[::-1])
        return y.transpose(2, 3).contiguous(memory_format=cl)

    def _tap_groups(self, x: torch.Tensor) -> torch.Tensor:
        o, c, k = self.out_channels, self.in_channels, self.k
        g = k // 3  # groups of 3 taps, each group's filters as o more output channels
        w = self.weight.reshape(o, c, g, 3).permute(2, 0, 1, 3).reshape(g * o, c, 3)
        w = (w.unsqueeze(3) if self.vertical else w.unsqueeze(2)).contiguous(memory_format=torch.channels_last)
        z = F.conv2d(x, w, None, 1, self.padding)  # k - 3 more rows (columns) than x
        n, dim = x.shape[2 if self.vertical else 3], 2 if self.vertical else 3
        # summed in float32 at least: bf16 group outputs (optimised path) are rounded once more
        y = z[:, :o].narrow(dim, 0, n).to(torch.promote_types(z.dtype, torch.float32))
        for i in range(1, g):  # tap 3i + j of the strip = tap j of group i, 3i rows (columns) on
            y = y + z[:, i * o:(i + 1) * o].narrow(dim, 3 * i, n)
        y = y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
        return y.to(z.dtype)  # rounded once, to what the plain call returns


class GlobalConv(nn.Module):
    """Global Convolutional Network module (Section 3.1, Fig. 2B).

    Two branches, ``k x 1`` then ``1 x k`` and ``1 x k`` then ``k x 1``, summed.
    No nonlinearity and no bias, so the module is a rank-2 separable ``k x k``
    kernel with ``O(2k)`` parameters (Table 2). The spatial size is preserved.
    """

    def __init__(self, in_channels: int, out_channels: int, k: int) -> None:
        super().__init__()
        _check_odd(k)
        p = k // 2
        self.k = k
        self.left = nn.Sequential(
            StripConv(in_channels, out_channels, k, vertical=True),
            nn.Conv2d(out_channels, out_channels, (1, k), padding=(0, p), bias=False),
        )
        self.right = nn.Sequential(
            StripConv(in_channels, out_channels, k, vertical=False),
            nn.Conv2d(out_channels, out_channels, (k, 1), padding=(p, 0), bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.left(x) + self.right(x)


class BoundaryRefine(nn.Module):
    """Boundary Refinement block (Section 3.2, Fig. 2C): ``S + R(S)``,
    with the residual branch ``R = conv3x3 -> ReLU -> conv3x3``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # S + R(S), added into R's fresh output: one full-size map less to allocate and
        # write (eager GCNSeg-R50 ~1.5% faster; autograd-safe, conv2 keeps no output)
        return self.conv2(self.relu(self.conv1(x))).add_(x)


def conv_stack(in_channels: int, out_channels: int, k: int, m: int | None = None) -> nn.Sequential:
    """Stack of ``(k-1)/2`` 3x3 convolutions without nonlinearity (Fig. 4D, Tables 3-4):
    same receptive field as one ``k x k`` kernel. ``m`` is the width of the
    intermediate maps (default: ``in_channels``, as in Table 3)."""
    _check_odd(k)
    if k < 3:
        raise ValueError(f"a 3x3 stack needs k >= 3, got {k}")
    m = in_channels if m is None else m
    n = (k - 1) // 2
    widths = [in_channels] + [m] * (n - 1) + [out_channels]
    return nn.Sequential(*(nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in zip(widths[:-1], widths[1:])))


def build_head(kind: str, in_channels: int, num_classes: int, k: int = 15, m: int | None = None) -> nn.Module:
    """A score head turning a feature map into ``num_classes`` score maps.

    ``kind`` is one of ``"gcn"`` (Fig. 4A / 2B), ``"conv1x1"`` (Fig. 4B, the
    baseline of Table 1), ``"convkxk"`` (Fig. 4C, Table 2) or ``"stack"``
    (Fig. 4D, Tables 3-4). No head has a bias: the parameter counts of Tables 2
    and 4 are exactly the bias-free ones.
    """
    if kind == "gcn":
        return GlobalConv(in_channels, num_classes, k)
    if kind == "conv1x1":
        return nn.Conv2d(in_channels, num_classes, 1, bias=False)
    if kind == "convkxk":
        _check_odd(k)
        return nn.Conv2d(in_channels, num_classes, k, padding=k // 2, bias=False)
    if kind == "stack":
        return conv_stack(in_channels, num_classes, k, m)
    raise ValueError(f"unknown head kind {kind!r}; expected one of {', '.join(HEAD_KINDS)}")
