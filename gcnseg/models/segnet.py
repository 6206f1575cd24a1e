"""The whole pipeline of Figure 2A: ResNet -> GCN -> BR -> deconvolution decoder.

A score head (GCN by default) and a Boundary Refinement block on each of
res-2..res-5; top-down, the coarser score map is upsampled x2 by a
deconvolution initialised to bilinear interpolation, added to the next finer
one and refined by BR; from res-2 (stride 4) two more deconvolution + BR steps
reach the input resolution: nine BR blocks in all (FCN-4 style, Section 3.2).
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone
from .gcn import BoundaryRefine, build_head


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
        # padded input: 2H remain, so even sizes need no crop (and no copy before BR)
        self.deconv = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=3, bias=False)
        with torch.no_grad():
            self.deconv.weight.copy_(bilinear_kernel(channels))

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        y = self.deconv(F.pad(x, (1, 1, 1, 1), mode="replicate"))
        return y[:, :, : size[0], : size[1]]  # a view, still contiguous when nothing is cut


class Bilinear2x(nn.Module):
    """Parameter-free alternative to :class:`Deconv2x` (``upsample="bilinear"``)."""

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def _per_stage(k: int | Sequence[int]) -> tuple[int, int, int, int]:
    ks = (k,) * 4 if isinstance(k, int) else tuple(k)
    if len(ks) != 4:
        raise ValueError(f"k must be one odd int or four (res-2..res-5), got {k!r}")
    return ks  # type: ignore[return-value]


class GCNSeg(nn.Module):
    """Global Convolutional Network for semantic segmentation (Fig. 2A).

    Args:
        num_classes: number of score maps.
        backbone: a name from :data:`gcnseg.models.backbones.BACKBONES`.
        head: ``"gcn"`` (paper), ``"conv1x1"`` (Table 1 baseline), ``"convkxk"``
            (Table 2) or ``"stack"`` (Tables 3-4).
        k: kernel size, one odd int or one per stage res-2..res-5.
        br: Boundary Refinement blocks (``False`` gives the Table 1 networks).
        upsample: ``"deconv"`` (paper) or ``"bilinear"``.
        weights: backbone weights (``"DEFAULT"``, an enum name or a file).
        m: intermediate width of ``"stack"`` heads (Table 4).

    The output has exactly the input's height and width, for any input size. Its
    memory layout is channels-last (the network's own; for odd sizes a crop of a
    channels-last map); ``.contiguous()`` gives NCHW strides where a caller needs them.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        head: str = "gcn",
        k: int | Sequence[int] = 15,
        br: bool = True,
        upsample: str = "deconv",
        weights: str | os.PathLike | None = None,
        m: int | None = None,
    ) -> None:
        super().__init__()
        if upsample not in ("deconv", "bilinear"):
            raise ValueError(f"upsample must be 'deconv' or 'bilinear', got {upsample!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        ks = _per_stage(k)
        self.num_classes = num_classes
        self.backbone = build_backbone(backbone, weights)
        self.heads = nn.ModuleList(
            build_head(head, c, num_classes, kk, m) for c, kk in zip(self.backbone.channels, ks)
        )

        def refine() -> nn.Module:
            return BoundaryRefine(num_classes) if br else nn.Identity()

        def up() -> nn.Module:
            return Deconv2x(num_classes) if upsample == "deconv" else Bilinear2x()

        self.head_br = nn.ModuleList(refine() for _ in range(4))  # after each score head
        self.up = nn.ModuleList(up() for _ in range(5))  # res-5->4, 4->3, 3->2, then x2, x2
        self.fuse_br = nn.ModuleList(refine() for _ in range(5))  # after each upsampling
        # channels-last weights, the layout the CPU input is converted to below: with NCHW
        # weights oneDNN re-laid out every 3x3 and k x 1 kernel on every call (eager
        # GCNSeg-R50 1.36x -> 1.32x the NCHW backbone, same process). cuDNN follows the
        # weights' layout too (eager bf16 batch 16 on an H200: 0.87x of NCHW).
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            # oneDNN's fast layout on the CPU: the whole network runs channels-last
            # (eager inference 1.49x -> 1.33x the bare NCHW backbone, `gcnseg bench`)
            x = x.contiguous(memory_format=torch.channels_last)
        return self.decode(self.backbone(x), x.shape[-2:])

    def decode(self, feats: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """Heads, BR and the deconvolution decoder on the res-2..res-5 features,
        up to ``size`` (the input's height and width).

        The score maps have few channels (one per class); they are kept in
        channels-last memory layout, for which oneDNN's 3x3 and transposed
        convolutions are several times faster on CPU. The result is the same.
        """
        h, w = size
        cl = torch.channels_last
        scores = [br(head(f).contiguous(memory_format=cl)) for head, br, f in zip(self.heads, self.head_br, feats)]
        s = scores[3]
        for i, finer in enumerate(reversed(scores[:3])):  # res-4, res-3, res-2
            s = self.fuse_br[i](self.up[i](s, finer.shape[-2:]) + finer)
        s = self.fuse_br[3](self.up[3](s, ((h + 1) // 2, (w + 1) // 2)))
        return self.fuse_br[4](self.up[4](s, (h, w)))  # channels-last; no NCHW copy (~9 ms at 512x512)
