"""Cityscapes (Section 4.3): 19 evaluated classes; the paper's Stage-1 adds the
coarse ``train_extra`` set to the fine training set.

Layout (as torchvision's ``Cityscapes``): ``leftImg8bit/{split}/{city}/*_leftImg8bit.png``
with ``gtFine/{split}/{city}/*_gtFine_labelIds.png`` (splits train, val, test) or
``gtCoarse/{split}/{city}/*_gtCoarse_labelIds.png`` (split ``train_extra``, or
any split with ``mode="coarse"``). ``labelIds`` are mapped to the 19 train ids
with torchvision's class table; all other ids become 255 (ignored).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torchvision.datasets import Cityscapes as _TVCityscapes

from ..errors import DataError
from .base import FileSegmentation
from .io import IGNORE_INDEX, read_mask, require_dir

CITYSCAPES_HINT = (
    "Cityscapes from https://www.cityscapes-dataset.com (leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip; "
    "leftImg8bit_trainextra.zip and gtCoarse.zip for train_extra)"
)
_EVAL = sorted((c.train_id, c) for c in _TVCityscapes.classes if 0 <= c.train_id < 255)
CITYSCAPES_CLASSES = [c.name for _, c in _EVAL]
CITYSCAPES_PALETTE = [tuple(c.color) for _, c in _EVAL]
# labelId (0..33) -> train id, 255 for ids not evaluated
LABEL_TO_TRAIN = np.full(256, -1, dtype=np.int64)
for _c in _TVCityscapes.classes:
    if _c.id >= 0:
        LABEL_TO_TRAIN[_c.id] = _c.train_id if 0 <= _c.train_id < 255 else IGNORE_INDEX
NUM_LABEL_IDS = int((LABEL_TO_TRAIN >= 0).sum())  # 34


class Cityscapes(FileSegmentation):
    """Cityscapes semantic segmentation with the 19 evaluated train ids."""

    classes = CITYSCAPES_CLASSES
    palette = CITYSCAPES_PALETTE

    def __init__(self, root: str | Path | None, split: str = "train", mode: str | None = None) -> None:
        if root is None:
            raise DataError(f"cityscapes: no root given; expected a folder with leftImg8bit/ and gtFine/ ({CITYSCAPES_HINT})")
        if mode is None:
            mode = "coarse" if split == "train_extra" else "fine"
        if mode not in ("fine", "coarse"):
            raise DataError(f"cityscapes: mode must be 'fine' or 'coarse', got {mode!r}")
        gt = "gtFine" if mode == "fine" else "gtCoarse"
        root = Path(root)
        require_dir(root, "a Cityscapes folder with leftImg8bit/ and gtFine/", CITYSCAPES_HINT)
        image_dir = require_dir(root / "leftImg8bit" / split, f"leftImg8bit/{split}/<city>/", CITYSCAPES_HINT)
        target_dir = require_dir(root / gt / split, f"{gt}/{split}/<city>/", CITYSCAPES_HINT)
        samples = []
        for city in sorted(p.name for p in image_dir.iterdir() if p.is_dir()):
            for image in sorted((image_dir / city).glob("*_leftImg8bit.png")):
                stem = image.name.split("_leftImg8bit")[0]
                samples.append((image, target_dir / city / f"{stem}_{gt}_labelIds.png"))
        if not samples:
            raise DataError(f"{image_dir}: no <city>/*_leftImg8bit.png images ({CITYSCAPES_HINT})")
        super().__init__(samples)

    def name(self, index: int) -> str:
        return self.samples[self._index(index)][0].name.split("_leftImg8bit")[0]

    def read_label(self, path: Path) -> np.ndarray:
        ids = read_mask(path)
        if ids.size and (ids.min() < 0 or ids.max() >= NUM_LABEL_IDS):
            bad = np.unique(ids[(ids < 0) | (ids >= NUM_LABEL_IDS)])
            raise DataError(f"{path}: label ids {', '.join(map(str, bad[:8]))} are not Cityscapes labelIds (0..33)")
        return LABEL_TO_TRAIN[ids]
