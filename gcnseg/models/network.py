"""The whole pipeline of Figure 2A: ResNet -> GCN -> BR -> deconvolution decoder.

A score head (GCN by default) and a Boundary Refinement block on each of
res-2..res-5; top-down, the coarser score map is upsampled x2 by a
deconvolution initialised to bilinear interpolation, added to the next finer
one and refined by BR; from res-2 (stride 4) two more deconvolution + BR steps
reach the input resolution: nine BR blocks in all (FCN-4 style, Section 3.2).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from .decoder import Bilinear2x, Deconv2x
from .encoders import build_encoder, check_encoder
from .gcn import BoundaryRefine, build_head

if TYPE_CHECKING:
    from ..config import ModelConfig


def per_stage_k(k: int | Sequence[int]) -> tuple[int, int, int, int]:
    """One kernel size per stage res-2..res-5 from one odd int or four."""
    ks = (k,) * 4 if isinstance(k, int) else tuple(k)
    if len(ks) != 4:
        raise ValueError(f"k must be one odd int or four (res-2..res-5), got {k!r}")
    return ks[0], ks[1], ks[2], ks[3]


class GCNSeg(nn.Module):
    """Global Convolutional Network for semantic segmentation (Fig. 2A).

    Args:
        num_classes: number of score maps.
        backbone: the feature network: a name from :data:`gcnseg.models.encoders.ENCODERS`,
            or any module keeping the encoder contract (four maps at strides 4, 8, 16,
            32 and their ``channels``; :class:`gcnseg.models.encoders.Encoder`).
        head: ``"gcn"`` (paper), ``"conv1x1"`` (Table 1 baseline), ``"convkxk"``
            (Table 2) or ``"stack"`` (Tables 3-4).
        k: kernel size, one odd int or one per stage res-2..res-5.
        br: Boundary Refinement blocks (``False`` gives the Table 1 networks).
        upsample: ``"deconv"`` (paper) or ``"bilinear"``.
        weights: backbone weights by name (``"DEFAULT"``, an enum name or a file).
        m: intermediate width of ``"stack"`` heads (Table 4).

    The output has exactly the input's height and width, for any input size. Its
    memory layout is channels-last (the network's own; for odd sizes a crop of a
    channels-last map); ``.contiguous()`` gives NCHW strides where a caller needs them.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str | nn.Module = "resnet50",
        *,
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
        ks = per_stage_k(k)
        if isinstance(backbone, nn.Module):
            if weights is not None:
                raise ValueError(
                    "weights name the weights of a backbone given by name; load a module's own weights yourself"
                )
            self.backbone = backbone
        else:
            self.backbone = build_encoder(backbone, weights)
        channels = check_encoder(self.backbone)
        self.num_classes = num_classes
        self.heads = nn.ModuleList(build_head(head, c, num_classes, kk, m) for c, kk in zip(channels, ks))

        def refine() -> nn.Module:
            return BoundaryRefine(num_classes) if br else nn.Identity()

        def up() -> nn.Module:
            return Deconv2x(num_classes) if upsample == "deconv" else Bilinear2x()

        self.head_br = nn.ModuleList(refine() for _ in range(4))  # after each score head
        self.up = nn.ModuleList(up() for _ in range(5))  # res-5->4, 4->3, 3->2, then x2, x2
        self.fuse_br = nn.ModuleList(refine() for _ in range(5))  # after each upsampling
        # channels-last weights, the layout the CPU input is converted to below (with NCHW
        # weights oneDNN re-lays out the kernels on every call); cuDNN follows them too
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":  # oneDNN's fast layout: the whole network runs channels-last
            x = x.contiguous(memory_format=torch.channels_last)
        # the features are dropped once scored: the full-size decoder runs without them
        return self.fuse(self.score(self.backbone(x)), x.shape[-2:])

    def decode(self, feats: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """Heads, BR and the deconvolution decoder on the res-2..res-5 features,
        up to ``size`` (the input's height and width): :meth:`score`, then :meth:`fuse`."""
        return self.fuse(self.score(feats), size)

    def score(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The score maps of res-2..res-5: each stage's GCN head and its BR (Fig. 2A).

        The score maps have few channels (one per class); they are kept in
        channels-last memory layout, for which oneDNN's 3x3 and transposed
        convolutions are several times faster on CPU. The result is the same.
        """
        cl = torch.channels_last
        return [br(head(f).contiguous(memory_format=cl)) for head, br, f in zip(self.heads, self.head_br, feats)]

    def fuse(self, scores: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """The decoder (Fig. 2A): from res-5 down, each score map upsampled x2 by
        deconvolution, added to the next finer one and refined by BR; then two more x2
        steps with BR up to ``size``."""
        h, w = size
        s = scores[3]
        for i, finer in enumerate(reversed(scores[:3])):  # res-4, res-3, res-2
            s = self.fuse_br[i](self.up[i](s, finer.shape[-2:]) + finer)
        s = self.fuse_br[3](self.up[3](s, ((h + 1) // 2, (w + 1) // 2)))
        return self.fuse_br[4](self.up[4](s, (h, w)))  # channels-last: no NCHW copy


def build_model(cfg: ModelConfig, num_classes: int, pretrained: bool = True) -> GCNSeg:
    """The network that ``cfg`` (the ``model`` section of a config) describes.

    ``pretrained=False`` leaves out ``cfg.weights`` (the weights come from a checkpoint)."""
    return GCNSeg(
        num_classes,
        cfg.backbone,
        head=cfg.head,
        k=cfg.k,
        br=cfg.br,
        upsample=cfg.upsample,
        weights=cfg.weights if pretrained else None,
        m=cfg.m,
    )
