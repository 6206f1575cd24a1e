"""``synthetic-shapes``: the paper's argument in miniature, generated on the fly.

Each image holds one large disc (radius a fraction ``radius`` of the image side;
``objects`` > 1 puts discs of distinct classes in one image) on a textured
background. All disc interiors share one texture; the class is given only by
the colour of a thin ring at the outline, so a pixel deep inside a disc can be
classified only by a network whose valid receptive field reaches the outline,
which is what GCN's large kernels provide (Section 3.1; GCN mainly improves the
internal region, Table 5).

That holds for a feature network that cannot widen its own receptive field for
the task, like the paper's pretrained ResNet: the demo trains with
``train.freeze_backbone: true`` (ResNet-18 as initialised; heads, BR blocks and
deconvolutions learn). A ResNet-18 trained from scratch learns res-5 features
that see the whole image, and the 1x1 baseline then classifies interiors as well
as GCN within ~100 steps, whatever the variant (larger images, several objects,
interiors like the background). Measurements: ``docs/synthetic.md``.

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
    rgb = [colorsys.hsv_to_rgb(i / n, 1.0, 1.0) for i in range(n)]
    return [(round(255 * r), round(255 * g), round(255 * b)) for r, g, b in rgb]


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
        objects: discs per image, of distinct classes while there are enough.
        seed: base seed.
        interior: ``"texture"``: all disc interiors share one fine gray texture,
            unlike the background (figure/ground is local, only the class needs
            the outline); ``"background"``: interiors are the background itself,
            so that figure/ground too shows only at the outline.
        placement: ``"slots"``: discs side by side in equal slots along a random
            axis; ``"random"``: anywhere, not overlapping (radii shrink when
            ``objects`` discs do not fit).
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
        interior: str = "texture",
        placement: str = "slots",
    ) -> None:
        if root is not None:  # a folder given for generated data is a mistake that would pass unseen
            raise DataError(
                f"synthetic-shapes: generates its images and reads no folder, so data.root={root} is not used; "
                "give the dataset that lives there too (--dataset folder|camvid|cityscapes|voc)"
            )
        if split not in SPLITS:
            raise DataError(f"synthetic-shapes: unknown split {split!r} (known: {', '.join(SPLITS)})")
        if num_classes < 2:
            raise DataError(f"synthetic-shapes: num_classes must be >= 2 (background + objects), got {num_classes}")
        for key, value in (("size", size), ("length", length), ("eval_length", eval_length), ("objects", objects)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DataError(f"synthetic-shapes: data.options {key} must be a positive integer, got {value!r}")
        lo, hi = (float(radius), float(radius)) if isinstance(radius, (int, float)) else map(float, radius)
        if not 0 < lo <= hi <= 0.5:
            raise DataError(f"synthetic-shapes: radius must satisfy 0 < min <= max <= 0.5, got {radius!r}")
        self.split = split
        self.size = int(size)
        self.radius = (lo, hi)
        self.ring = int(ring) if ring is not None else max(2, round(self.size / 48))
        self.objects = int(objects)
        self.seed = int(seed)
        if interior not in ("texture", "background"):
            raise DataError(f"synthetic-shapes: interior must be 'texture' or 'background', got {interior!r}")
        if placement not in ("slots", "random"):
            raise DataError(f"synthetic-shapes: placement must be 'slots' or 'random', got {placement!r}")
        self.interior = interior
        self.placement = placement
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
        # Several objects get distinct classes (while there are enough) and places of their
        # own, so that the class of a pixel depends on its own outline.
        k = self.objects
        classes = rng.choice(np.arange(1, self.num_classes), size=k, replace=k > self.num_classes - 1)
        discs = self._place(rng, k)
        for (cy, cx, r), cls in zip(discs, classes):
            d = np.hypot(yy - cy, xx - cx)
            disc = d <= r
            inner = d <= r - self.ring
            if self.interior == "texture":
                texture = 170.0 + 50.0 * (gaussian_filter(rng.random((s, s)), sigma=1.0) - 0.5) * 4
                image[inner] = texture[inner, None]
            image[disc & ~inner] = np.array(self.palette[int(cls)], dtype=np.float64)
            mask[disc] = int(cls)
        image += rng.normal(0.0, 6.0, size=image.shape)
        return np.clip(image + 0.5, 0, 255).astype(np.uint8), mask

    def _place(self, rng: np.random.Generator, k: int) -> list[tuple[float, float, float]]:
        """``k`` non-overlapping discs ``(cy, cx, r)`` inside the image."""
        s = self.size
        if self.placement == "slots":
            vertical = bool(rng.integers(2))
            slot = s / k
            slots: list[tuple[float, float, float]] = []
            for j in range(k):
                r = min(rng.uniform(*self.radius) * s, slot / 2)
                along = rng.uniform(j * slot + r, (j + 1) * slot - r)
                across = rng.uniform(r, s - r)
                slots.append((along, across, r) if vertical else (across, along, r))
            return slots
        out: list[tuple[float, float, float]] = []
        scale = 1.0
        while len(out) < k:
            for _ in range(50):
                r = rng.uniform(*self.radius) * s * scale
                cy, cx = rng.uniform(r, s - r, size=2)
                if all(np.hypot(cy - y, cx - x) > r + q + 2 for y, x, q in out):
                    out.append((cy, cx, r))
                    break
            else:
                scale *= 0.9
        return out

    def load(self, index: int) -> tuple[Image.Image, np.ndarray]:
        image, mask = self.generate(self._index(index))
        return Image.fromarray(image, "RGB"), mask
