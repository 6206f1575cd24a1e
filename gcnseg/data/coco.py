"""COCO rendered to the 20 PASCAL VOC classes (Section 4.2: COCO images that contain
VOC classes, used in Stage-1).

Layout: ``ROOT/annotations/instances_{split}.json`` and ``ROOT/{split}/*.jpg``
(or the same under ``ROOT/coco/``, so that one root can hold VOC, SBD and COCO) where ``split`` is e.g. ``train2017``; ``train`` / ``val`` are accepted and mean
``train2017`` / ``val2017`` (or the 2014 release if only that is present).

Masks are rendered with pycocotools (polygons and RLE alike); other COCO
categories are background; crowd regions of VOC classes and pixels where two
VOC instances of different classes overlap are ignored (255), as in
torchvision's segmentation reference. Images with no non-crowd VOC instance are
dropped.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import DataError
from .base import FileSegmentation
from .io import IGNORE_INDEX, check_mask, read_image, require_dir, require_file
from .voc import VOC_CLASSES, VOC_PALETTE

COCO_HINT = "COCO from https://cocodataset.org (train2017.zip, val2017.zip, annotations_trainval2017.zip)"

# COCO category name -> VOC class id (names as in instances_*.json)
COCO_TO_VOC: dict[str, int] = {
    "airplane": 1, "bicycle": 2, "bird": 3, "boat": 4, "bottle": 5, "bus": 6, "car": 7, "cat": 8,
    "chair": 9, "cow": 10, "dining table": 11, "dog": 12, "horse": 13, "motorcycle": 14, "person": 15,
    "potted plant": 16, "sheep": 17, "couch": 18, "train": 19, "tv": 20,
}  # fmt: skip


def _load_coco(path: Path) -> Any:
    try:
        from pycocotools.coco import COCO
    except ImportError:
        raise DataError("coco_voc needs pycocotools: pip install 'gcnseg[coco]'") from None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
            return COCO(str(path))
    except Exception as e:  # json errors, missing keys
        text = str(e).strip().splitlines()
        raise DataError(f"{path}: not a valid COCO annotation file ({text[0] if text else type(e).__name__})") from None


class COCOVOC(FileSegmentation):
    """COCO instances rendered to VOC's 21 classes (see module docstring)."""

    classes = VOC_CLASSES
    palette = VOC_PALETTE

    def __init__(self, root: str | Path | None, split: str = "train") -> None:
        if root is None:
            raise DataError(f"coco_voc: no root given; expected a folder with annotations/ and images ({COCO_HINT})")
        root = require_dir(Path(root), "a COCO folder with annotations/instances_<split>.json", COCO_HINT)
        if not (root / "annotations").is_dir() and (root / "coco" / "annotations").is_dir():
            root = root / "coco"  # one data root shared with VOC: ROOT/coco/annotations
        split = self._resolve_split(root, split)
        ann_file = require_file(
            root / "annotations" / f"instances_{split}.json", f"COCO instance annotations for {split}", COCO_HINT
        )
        image_dir = require_dir(root / split, f"the COCO image folder {split}/", COCO_HINT)
        self.coco = _load_coco(ann_file)
        self.cat_to_voc = {
            c["id"]: COCO_TO_VOC[c["name"]] for c in self.coco.loadCats(self.coco.getCatIds()) if c["name"] in COCO_TO_VOC
        }
        self.image_ids = []
        samples = []
        for img_id in sorted(self.coco.getImgIds()):
            anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=img_id, iscrowd=False))
            if any(a["category_id"] in self.cat_to_voc for a in anns):
                info = self.coco.loadImgs(img_id)[0]
                self.image_ids.append(img_id)
                samples.append((image_dir / info["file_name"], ann_file))
        super().__init__(samples)

    @staticmethod
    def _resolve_split(root: Path, split: str) -> str:
        if split in ("train", "val"):
            for year in ("2017", "2014"):
                if (root / "annotations" / f"instances_{split}{year}.json").is_file():
                    return f"{split}{year}"
            return f"{split}2017"
        return split

    def render(self, index: int) -> np.ndarray:
        """The VOC-class mask of item ``index`` at the size recorded in the json."""
        img_id = self.image_ids[index]
        info = self.coco.loadImgs(img_id)[0]
        h, w = int(info["height"]), int(info["width"])
        label = np.zeros((h, w), dtype=np.int64)
        covered = np.zeros((h, w), dtype=np.int64)  # how many VOC classes cover each pixel
        crowd = np.zeros((h, w), dtype=bool)
        unions: dict[int, np.ndarray] = {}
        for ann in self.coco.loadAnns(self.coco.getAnnIds(imgIds=img_id)):
            cls = self.cat_to_voc.get(ann["category_id"])
            if cls is None:
                continue
            try:
                m = self.coco.annToMask(ann).astype(bool)
            except Exception as e:
                raise DataError(
                    f"{self.samples[index][1]}: annotation {ann.get('id')} of image {img_id} is invalid ({e})"
                ) from None
            if m.shape != (h, w):
                raise DataError(
                    f"{self.samples[index][1]}: annotation {ann.get('id')} of image {img_id} has size "
                    f"{m.shape[1]}x{m.shape[0]}, which does not match the image's {w}x{h}"
                )
            if ann.get("iscrowd", 0):
                crowd |= m
            else:
                unions[cls] = unions.get(cls, np.zeros((h, w), dtype=bool)) | m
        for cls, m in unions.items():
            label[m] = cls
            covered += m
        label[(covered > 1) | crowd] = IGNORE_INDEX
        return label

    def load(self, index: int) -> tuple[Image.Image, np.ndarray]:
        index = self._index(index)
        image_path, ann_file = self.samples[index]
        assert ann_file is not None  # every COCO sample has its annotation file
        image = read_image(image_path)
        mask = self.render(index)
        if mask.shape != (image.size[1], image.size[0]):
            raise DataError(
                f"{image_path}: image size {image.size[0]}x{image.size[1]} does not match "
                f"{mask.shape[1]}x{mask.shape[0]} recorded in {ann_file}"
            )
        check_mask(mask, image.size, self.num_classes, ann_file, image_path, self.ignore_index)
        return image, mask
