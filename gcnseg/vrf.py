"""The valid receptive field of Figure 3.

The paper (Section 3.1, footnote 1) calls *valid receptive field* (VRF) the
part of the theoretical receptive field a score actually draws on, measured as
in its reference [38] (Luo et al., "Understanding the Effective Receptive Field
in Deep Convolutional Neural Networks", NIPS 2016): set the gradient of the
output score map to 1 at one location and 0 elsewhere, backpropagate to the
input image, and look at ``|d score / d input|`` summed over the colour
channels. Here the score is the **sum of all class scores** at the location
(``--target sum``, the default: the location's whole score vector, what the
classifier there looks at), or the score of the predicted class
(``--target predicted``). Models run in eval mode (frozen BatchNorm), so the
map is the exact input gradient of the network as used at test time.

Numbers: the map is normalised to unit mass; ``radius50`` / ``radius90`` are
the radii (pixels) of the smallest discs around the point that hold 50% / 90%
of the mass, ``area50`` / ``area90`` the fractions of the image covered by the
fewest pixels that hold 50% / 90% of it. The picture shows the square root of
the map (for visibility) as a heat map over the image, the point as a cross and
the 50% / 90% discs as circles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from .errors import GcnsegError

TARGETS = ("sum", "predicted")


def valid_receptive_field(
    model: nn.Module, image: torch.Tensor, point: tuple[int, int], target: str = "sum"
) -> np.ndarray:
    """``|d score(point) / d image|`` summed over channels, normalised to sum 1 (``H x W`` float64).

    ``image`` is a normalised ``3xHxW`` or ``1x3xHxW`` tensor; ``point`` is ``(x, y)`` in
    its pixels; the model's output must have the input's height and width (as GCNSeg's).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    x = (image[None] if image.dim() == 3 else image).detach().float().clone().requires_grad_(True)
    h, w = x.shape[-2:]
    px, py = point
    if not (0 <= px < w and 0 <= py < h):
        raise ValueError(f"point {point} outside the {w}x{h} image")
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            out = model(x)
            if out.shape[-2:] != x.shape[-2:]:
                raise ValueError(f"the model's output {tuple(out.shape[-2:])} is not the input's size {(h, w)}")
            scores = out[0, :, py, px]
            score = scores.sum() if target == "sum" else scores[scores.argmax()]
            (grad,) = torch.autograd.grad(score, x)
    finally:
        model.train(was_training)
    vrf = grad[0].abs().sum(0).double().cpu().numpy()
    total = vrf.sum()
    return vrf / total if total > 0 else vrf


def vrf_stats(vrf: np.ndarray, point: tuple[int, int], levels: Sequence[float] = (0.5, 0.9)) -> dict[str, float]:
    """Radii (pixels, around ``point``) and image fractions holding each level of the map's mass."""
    h, w = vrf.shape
    mass = vrf / vrf.sum() if vrf.sum() > 0 else vrf
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(xx - point[0], yy - point[1]).ravel()
    by_dist = np.argsort(dist, kind="stable")
    cum_dist = np.cumsum(mass.ravel()[by_dist])
    cum_top = np.cumsum(np.sort(mass.ravel())[::-1])
    out: dict[str, float] = {}
    for q in levels:
        name = f"{round(100 * q)}"
        i = min(int(np.searchsorted(cum_dist, q - 1e-12)), dist.size - 1)
        out[f"radius{name}"] = float(dist[by_dist[i]])
        n = min(int(np.searchsorted(cum_top, q - 1e-12)) + 1, dist.size)
        out[f"area{name}"] = n / dist.size
    out["support"] = float((vrf > 0).mean())  # fraction of pixels with any gradient
    return out


def draw_vrf(
    rgb: np.ndarray, vrf: np.ndarray, point: tuple[int, int], stats: dict[str, float] | None = None, cmap: str = "jet"
) -> np.ndarray:
    """The map (square root, for visibility) as a heat map over ``rgb``, the point and the 50/90% circles."""
    import matplotlib

    peak = vrf.max()
    v = np.sqrt(vrf / peak) if peak > 0 else np.zeros_like(vrf)
    heat = matplotlib.colormaps[cmap](v)[..., :3] * 255
    alpha = (0.75 * v)[..., None]
    out = Image.fromarray(((1 - alpha) * rgb.astype(np.float64) + alpha * heat).round().astype(np.uint8))
    draw = ImageDraw.Draw(out)
    x, y = point
    for key, color in (("radius50", (255, 255, 255)), ("radius90", (255, 255, 0))):
        if stats and key in stats:
            r = stats[key]
            draw.ellipse([x - r, y - r, x + r, y + r], outline=color)
    s = max(2, min(rgb.shape[:2]) // 40)
    draw.line([x - s, y, x + s, y], fill=(255, 255, 255), width=1)
    draw.line([x, y - s, x, y + s], fill=(255, 255, 255), width=1)
    return np.asarray(out)


def parse_point(text: str, width: int, height: int) -> tuple[int, int]:
    """``"X,Y"`` in image pixels, checked against the image size."""
    try:
        x, y = (round(float(v)) for v in text.split(","))
    except ValueError:
        raise GcnsegError(f"--point {text}: expected X,Y in image pixels, e.g. 120,80") from None
    if not (0 <= x < width and 0 <= y < height):
        raise GcnsegError(
            f"--point {text}: outside the {width}x{height} image (X in 0..{width - 1}, Y in 0..{height - 1})"
        )
    return x, y


def describe(cfg: Any) -> str:
    """A network's head in words: ``gcn k=15 + BR``, ``1x1 conv``."""
    m = cfg.model
    head = "1x1 conv" if m.head == "conv1x1" else f"{m.head} k={m.k}"
    return f"{head}{' + BR' if m.br else ''}"
