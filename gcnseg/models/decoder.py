"""The decoder's x2 upsampling (Section 3.2, Fig. 2A): FCN's deconvolution, initialised
to bilinear interpolation, and its parameter-free alternative."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def bilinear_kernel(channels: int, size: int = 4) -> torch.Tensor:
    """FCN's bilinear upsampling filter as a ``(C, C, size, size)`` deconvolution
    weight: diagonal across channels, so class scores do not mix at init."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt1d = 1 - (og - center).abs() / factor
    filt = torch.outer(filt1d, filt1d).float()
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = filt
    return weight


class Deconv2x(nn.Module):
    """Learnable x2 upsampling (FCN's "deconvolution", Section 3.2).

    A 4x4 stride-2 ``ConvTranspose2d`` initialised to bilinear interpolation. The
    input is padded by one replicated pixel first, so that a fresh layer equals
    ``F.interpolate(scale_factor=2, mode="bilinear", align_corners=False)`` at
    every pixel, borders included. The output is cropped to ``size``, at most
    twice the input's size (a stride-2 layer maps n pixels to ceil(n/2)).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        # padding=3 drops the 3 outer pixels of the (2H+6)-pixel transposed output of the
        # padded input: 2H remain, so even sizes need no crop
        self.deconv = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=3, bias=False)
        with torch.no_grad():
            self.deconv.weight.copy_(bilinear_kernel(channels))

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        y = self.deconv(replicate_pad1(x))
        return y[:, :, : size[0], : size[1]]  # a view, still contiguous when nothing is cut


def replicate_pad1(x: torch.Tensor) -> torch.Tensor:
    """``F.pad(x, (1, 1, 1, 1), mode="replicate")`` as two concatenations: the same values,
    channels-last kept, faster on the CPU, and a backward that ``torch.compile`` can
    build (Inductor's replicate-pad backward rejects channels-last maps; the reproduction
    is in docs/performance.md)."""
    x = torch.cat([x[:, :, :1], x, x[:, :, -1:]], 2)
    return torch.cat([x[:, :, :, :1], x, x[:, :, :, -1:]], 3)


class Bilinear2x(nn.Module):
    """Parameter-free alternative to :class:`Deconv2x` (``upsample="bilinear"``)."""

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
