"""Test-time inference: sliding window, multi-scale and flip averaging of softmax scores.

The paper evaluates PASCAL VOC with multi-scale inference ("-MS" rows of Table 7) and
Cityscapes by splitting each 1024x2048 image "into four 1024x1024 crops and fus[ing]
their score maps" (Sec. 4.3, Table 9): that is ``tile=1024, overlap=2/3`` here, which
places crops at x = 0, 341, 683, 1024.

The model must map normalised images ``[N, 3, h, w]`` to logits ``[N, C, h, w]`` of the
same ``h, w`` for any size (as :class:`gcnseg.models.GCNSeg` does). It is used as given:
put it in ``eval()`` mode first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .config import size_hw

__all__ = ["DEFAULT_MS_SCALES", "predict_scores", "tile_starts"]

#: Scales of multi-scale inference (image size factors), averaged in probability space.
DEFAULT_MS_SCALES: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)

Model = Callable[[torch.Tensor], torch.Tensor]


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)``.

    Consecutive tiles overlap by at least ``overlap * tile`` pixels: the count is
    ``ceil((length - tile) / (tile * (1 - overlap))) + 1`` and the tiles are spread evenly,
    the first at 0 and the last ending at ``length``. A length not larger than the tile
    gives one start, 0 (the whole extent is run as it is, without padding).
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if length <= tile:
        return [0]
    stride = tile * (1 - overlap)
    n = math.ceil((length - tile) / stride - 1e-9) + 1  # 1e-9: 1024/(1024/3) is not 3.0000001
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _softmax_tiled(
    model: Model, image: torch.Tensor, tile: tuple[int, int] | None, overlap: float, pad: tuple[int, int] | None = None
) -> torch.Tensor:
    """Softmax probabilities ``[N, C, H, W]`` of ``image``, tile by tile where it is larger
    than ``tile``; overlapping tiles are averaged."""
    n, _, h, w = image.shape
    if tile is None or (h <= tile[0] and w <= tile[1]):
        return _forward(model, image, (h, w), pad).softmax(1)
    th, tw = min(tile[0], h), min(tile[1], w)
    probs: torch.Tensor | None = None
    count = torch.zeros(1, 1, h, w, device=image.device, dtype=torch.float32)
    for y in tile_starts(h, th, overlap):
        for x in tile_starts(w, tw, overlap):
            p = _forward(model, image[:, :, y : y + th, x : x + tw], (th, tw), pad).softmax(1)
            if probs is None:
                probs = torch.zeros(n, p.shape[1], h, w, device=image.device, dtype=torch.float32)
            probs[:, :, y : y + th, x : x + tw] += p
            count[:, :, y : y + th, x : x + tw] += 1
    assert probs is not None
    return probs / count


def _forward(
    model: Model, image: torch.Tensor, size: tuple[int, int], pad: tuple[int, int] | None = None
) -> torch.Tensor:
    if pad is not None and (size[0] < pad[0] or size[1] < pad[1]):
        # zeros are the mean after normalisation, as in training's padding (Section 4.1)
        padded = F.pad(image, (0, max(0, pad[1] - size[1]), 0, max(0, pad[0] - size[0])))
        logits = model(padded)[:, :, : size[0], : size[1]]
    else:
        logits = model(image)
    if logits.dim() != 4 or logits.shape[0] != image.shape[0] or tuple(logits.shape[-2:]) != size:
        raise ValueError(
            f"model must return logits [N, C, {size[0]}, {size[1]}] for input {tuple(image.shape)}, "
            f"got {tuple(logits.shape)}"
        )
    return logits.float()


@torch.inference_mode()
def predict_scores(
    model: Model,
    image: torch.Tensor,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    tile: int | Sequence[int] | None = None,
    overlap: float = 1 / 3,
    num_classes: int | None = None,
    pad: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """Softmax probabilities ``[N, C, H, W]`` for normalised images ``[N, 3, H, W]``.

    * ``scales``: the image is resized by each factor (bilinear), run, and its
      probabilities resized back to ``H x W`` (bilinear); all are averaged. Use
      :data:`DEFAULT_MS_SCALES` for the paper's multi-scale ("MS") evaluation.
    * ``flip``: also run each scale on the horizontally flipped image and average with
      its prediction flipped back.
    * ``tile``: sliding window of this size (int or ``(h, w)``, in pixels of the resized
      image) for images larger than it, with consecutive tiles overlapping by
      ``overlap`` of the tile; probabilities are averaged where tiles overlap. A side not
      larger than the tile is run whole (no padding). ``tile=1024, overlap=2/3`` on a
      1024x2048 Cityscapes image gives the paper's four 1024x1024 crops (Sec. 4.3).
    * ``num_classes``: if given, the model's output channels are checked against it.
    * ``pad``: each input smaller than this (int or ``(h, w)``) is padded at the bottom
      and right with zeros (the mean of normalised images) and the scores are cropped
      back: the paper evaluates its ablations with inputs padded to 512x512, so that
      the top feature map is 16x16 (Section 4.1).
    """
    if image.dim() != 4:
        raise ValueError(f"image must be [N, 3, H, W], got shape {tuple(image.shape)}")
    if not scales:
        raise ValueError("scales must not be empty")
    tile_hw = None if tile is None else size_hw(tile)
    pad_hw = None if pad is None else size_hw(pad)
    h, w = image.shape[-2:]
    total: torch.Tensor | None = None
    runs = 0
    for s in scales:
        if s <= 0:
            raise ValueError(f"scales must be positive, got {s}")
        size = (max(1, round(h * s)), max(1, round(w * s)))
        x = image if size == (h, w) else F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            p = _softmax_tiled(model, x.flip(-1) if flipped else x, tile_hw, overlap, pad_hw)
            if flipped:
                p = p.flip(-1)
            if size != (h, w):
                p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
            total = p if total is None else total.add_(p)
            runs += 1
    assert total is not None
    if num_classes is not None and total.shape[1] != num_classes:
        raise ValueError(f"model returned {total.shape[1]} classes, expected {num_classes}")
    return total / runs
