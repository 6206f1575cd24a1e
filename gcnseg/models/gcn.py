"""The paper's own building blocks (Section 3, Figures 2 and 4).

- :class:`GlobalConv`: the Global Convolutional Network module (Fig. 2B); its two
  first convolutions are :class:`~gcnseg.models.kernels.StripConv` s (``nn.Conv2d``
  with faster CPU kernels, in their own module).
- :class:`BoundaryRefine`: the Boundary Refinement block (Fig. 2C).
- :func:`build_head`: a score head of any kind compared in Tables 1-4
  (GCN, the 1x1 baseline, a plain kxk convolution, a stack of 3x3 convolutions).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from .kernels import StripConv

HEAD_KINDS = ("gcn", "conv1x1", "convkxk", "stack")


def _check_odd(k: int, what: str = "k") -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0:
        raise ValueError(
            f"{what} must be a positive odd integer (paper 4.1.1: odd sizes avoid alignment error), got {k!r}"
        )


class GlobalConv(nn.Module):
    """Global Convolutional Network module (Section 3.1, Fig. 2B).

    Two branches, ``k x 1`` then ``1 x k`` (``left``) and ``1 x k`` then ``k x 1``
    (``right``), summed. No nonlinearity and no bias, so the module is a rank-2
    separable ``k x k`` kernel with ``O(2k)`` parameters (Table 2). The spatial size
    is preserved.
    """

    #: the convolutions that read the feature map (the wide, costly ones): the
    #: optimised inference path may run these in bfloat16 (``gcnseg.optimize``)
    feature_readers = ("left.0", "right.0")

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
        # S + R(S), added into R's fresh output (one full-size map less; autograd-safe:
        # conv2 keeps no output for its backward)
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
    return nn.Sequential(*(nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in itertools.pairwise(widths)))


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
