"""``synthetic-shapes``: the paper's argument in miniature, generated on the fly.

Each image holds one large disc (radius a fraction ``radius`` of the image side;
``objects`` > 1 puts discs of distinct classes side by side) on a textured
background. All disc interiors share one texture; the class is given only by
the colour of a thin ring at the outline, so a pixel deep inside a disc can be
classified only by a network whose valid receptive field reaches the outline,
which is what GCN's large kernels provide (Section 3.1; GCN mainly improves the
internal region, Table 5).

Caveat (measured, ResNet-18 from scratch, batch 16, Adam 1e-3, 100-127 steps at
192 px): with ``gcnseg.models.GCNSeg`` the 1x1 baseline also reaches internal
accuracy 1.00 on this task (mIoU 0.99 for both heads), with one or two objects
per image; the separation seen with the issue's prototype is not reproduced yet.

Item ``i`` of a split is a pure function of ``(seed, split, i)`` and the
parameters; no files, no download.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from ..errors import DataError
from .base import SegmentationDataset

SPLITS = {"train": 0, "val": 1, "test": 2}


def ring_colors(n: int) -> list[tuple[int, int, int]]:
    """``n`` saturated, evenly spaced hues: the ring colour of each object class."""
    return [tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(i / n, 1.0, 1.0)) for i in range(n)]


class SyntheticShapes(SegmentationDataset):
    """Discs whose class shows only at the outline (see module docstring).

    Args:
        root: ignored (nothing is read from disk).
        split: ``train``, ``val`` or ``test``; each split has its own derived seed.
        size: image side in pixels.
        num_classes: object classes plus background (class 0).
        length: number of items of the train split.
        eval_length: number of items of the val and test splits.
        radius: disc radius range, as fractions of ``size``.
        ring: width of the class-coloured ring in pixels (default ``size / 48``).
        objects: discs per image, side by side in equal slots along a random axis.
        seed: base seed.
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        size: int = 192,
        num_classes: int = 4,
        length: int = 1000,
        eval_length: int = 100,
        radius: Sequence[float] = (0.30, 0.42),
        ring: int | None = None,
        objects: int = 1,
        seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise DataError(f"synthetic-shapes: unknown split {split!r} (known: {', '.join(SPLITS)})")
        if num_classes < 2:
            raise DataError(f"synthetic-shapes: num_classes must be >= 2 (background + objects), got {num_classes}")
        lo, hi = (float(radius), float(radius)) if isinstance(radius, (int, float)) else map(float, radius)
        if not 0 < lo <= hi <= 0.5:
            raise DataError(f"synthetic-shapes: radius must satisfy 0 < min <= max <= 0.5, got {radius!r}")
        self.split = split
        self.size = int(size)
        self.radius = (lo, hi)
        self.ring = int(ring) if ring is not None else max(2, round(self.size / 48))
        self.objects = int(objects)
        self.seed = int(seed)
        self.length = int(length if split == "train" else eval_length)
        self.classes = ["background"] + [f"object{i}" for i in range(1, num_classes)]
        self.palette = [(0, 0, 0)] + ring_colors(num_classes - 1)

    def __len__(self) -> int:
        return self.length

    def name(self, index: int) -> str:
        return f"{self.split}-{self._index(index):06d}"

    def generate(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(uint8 H x W x 3 image, int64 H x W mask)`` of item ``index``."""
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        s = self.size
        # Background: smooth, muted colour blobs. Interior: one shared fine gray texture.
        bg = gaussian_filter(rng.random((s, s, 3)), sigma=(s / 48, s / 48, 0))
        bg = (bg - bg.min()) / (np.ptp(bg) + 1e-9)
        image = 40.0 + 100.0 * bg
        mask = np.zeros((s, s), dtype=np.int64)
        yy, xx = np.mgrid[0:s, 0:s] + 0.5
        # Several objects get distinct classes (while there are enough) and side-by-side
        # slots along a random axis, so that the class of a pixel depends on its own outline.
        k = self.objects
        classes = rng.choice(np.arange(1, self.num_classes), size=k, replace=k > self.num_classes - 1)
        vertical = bool(rng.integers(2))
        slot = s / k
        for j, cls in enumerate(classes):
            r = min(rng.uniform(*self.radius) * s, slot / 2)
            along = rng.uniform(j * slot + r, (j + 1) * slot - r)
            across = rng.uniform(r, s - r)
            cy, cx = (along, across) if vertical else (across, along)
            d = np.hypot(yy - cy, xx - cx)
            disc = d <= r
            inner = d <= r - self.ring
            texture = 170.0 + 50.0 * (gaussian_filter(rng.random((s, s)), sigma=1.0) - 0.5) * 4
            image[inner] = texture[inner, None]
            image[disc & ~inner] = np.array(self.palette[int(cls)], dtype=np.float64)
            mask[disc] = int(cls)
        image += rng.normal(0.0, 6.0, size=image.shape)
        return np.clip(image + 0.5, 0, 255).astype(np.uint8), mask

    def load(self, index: int) -> tuple[Image.Image, np.ndarray]:
        image, mask = self.generate(self._index(index))
        return Image.fromarray(image, "RGB"), mask
