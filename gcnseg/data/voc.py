"""PASCAL VOC 2012 and its SBD augmentation (Section 4: 1,464 + SBD = 10,582 training images).

Layouts are those torchvision parses (``VOCSegmentation``, ``SBDataset``):

* VOC: ``VOCdevkit/VOC2012/{JPEGImages/*.jpg, SegmentationClass/*.png,
  ImageSets/Segmentation/{train,val,trainval}.txt}``. ``root`` may be the folder
  holding ``VOCdevkit`` (as in torchvision) or ``VOC2012`` itself.
* SBD (``benchmark.tgz``): ``benchmark_RELEASE/dataset/{img/*.jpg, cls/*.mat,
  train.txt, val.txt}``; each ``cls/*.mat`` holds ``GTcls.Segmentation``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from ..errors import DataError
from .base import FileSegmentation, color_map
from .io import read_listing, require_dir, require_file

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip
VOC_PALETTE = color_map(len(VOC_CLASSES))
VOC_HINT = "PASCAL VOC 2012 from http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ (VOCtrainval_11-May-2012.tar)"
SBD_HINT = (
    "SBD benchmark.tgz from http://home.bharathh.info/pubs/codes/SBD/download.html, "
    "extracted so that ROOT/benchmark_RELEASE/dataset holds cls/, img/, train.txt, val.txt"
)


def find_voc_root(root: str | Path | None) -> Path:
    """``VOCdevkit/VOC2012`` under ``root``, or ``root`` itself if it is that folder."""
    if root is None:
        raise DataError(f"voc: no root given; expected a folder holding VOCdevkit/VOC2012 ({VOC_HINT})")
    root = Path(root)
    require_dir(root, "a folder holding VOCdevkit/VOC2012", VOC_HINT)
    if (root / "JPEGImages").is_dir():
        return root
    return require_dir(root / "VOCdevkit" / "VOC2012", "VOCdevkit/VOC2012 with JPEGImages/", VOC_HINT)


def read_split(path: Path, what: str, hint: str) -> list[str]:
    """Stems listed one per line in a split file."""
    require_file(path, what, hint)
    return [line.strip() for line in read_listing(path).splitlines() if line.strip()]


def voc_split(base: Path, split: str) -> list[str]:
    path = base / "ImageSets" / "Segmentation" / f"{split}.txt"
    return read_split(path, f"the VOC split list {split}.txt (splits: train, val, trainval)", VOC_HINT)


def read_sbd_mat(path: Path) -> np.ndarray:
    """Class ids of an SBD ``cls/*.mat`` file (``GTcls.Segmentation``, as torchvision's SBDataset)."""
    if not path.is_file():
        raise DataError(f"{path}: mask file is missing")
    try:
        mat = loadmat(path)
        seg = mat["GTcls"][0]["Segmentation"][0]
    except Exception as e:  # scipy raises ValueError, KeyError, IndexError, ... for bad files
        text = str(e).strip().splitlines()
        raise DataError(f"{path}: cannot read SBD mask ({text[0] if text else type(e).__name__})") from None
    return np.asarray(seg).astype(np.int64)


class VOC(FileSegmentation):
    """PASCAL VOC 2012 segmentation: 20 classes + background, 255 = void (ignored)."""

    classes = VOC_CLASSES
    palette = VOC_PALETTE

    def __init__(self, root: str | Path | None, split: str = "train") -> None:
        base = find_voc_root(root)
        super().__init__(
            [(base / "JPEGImages" / f"{s}.jpg", base / "SegmentationClass" / f"{s}.png") for s in voc_split(base, split)]
        )


class VOCAug(FileSegmentation):
    """VOC 2012 augmented with SBD: the usual 10,582-image training set (Section 4).

    ``train`` = (SBD train + SBD val + VOC train) minus VOC val; VOC's own masks are
    used where an image has one, SBD's ``.mat`` otherwise. Any other split (``val``)
    is plain VOC, so that the same dataset name serves training and validation.

    Args:
        root: a folder holding ``VOCdevkit/VOC2012`` and ``benchmark_RELEASE/dataset``.
        voc_root, sbd_root: the two folders explicitly (``sbd_root`` holds ``cls/``).
    """

    classes = VOC_CLASSES
    palette = VOC_PALETTE

    def __init__(
        self,
        root: str | Path | None,
        split: str = "train",
        voc_root: str | Path | None = None,
        sbd_root: str | Path | None = None,
    ) -> None:
        voc = find_voc_root(voc_root if voc_root is not None else root)
        if split != "train":
            super().__init__(VOC(voc, split).samples)
            return
        if sbd_root is None:
            if root is None:
                raise DataError(f"voc_aug: no root given; expected benchmark_RELEASE/dataset ({SBD_HINT})")
            sbd_root = Path(root) / "benchmark_RELEASE" / "dataset"
        sbd = require_dir(Path(sbd_root), "the SBD dataset folder with cls/, img/, train.txt, val.txt", SBD_HINT)
        require_dir(sbd / "cls", "SBD's cls/ folder of .mat masks", SBD_HINT)
        voc_train, voc_val = voc_split(voc, "train"), set(voc_split(voc, "val"))
        sbd_ids = read_split(sbd / "train.txt", "SBD's train.txt", SBD_HINT)
        sbd_ids += read_split(sbd / "val.txt", "SBD's val.txt", SBD_HINT)
        samples = [(voc / "JPEGImages" / f"{s}.jpg", voc / "SegmentationClass" / f"{s}.png") for s in voc_train]
        seen = set(voc_train) | voc_val
        for s in sbd_ids:
            if s not in seen:
                seen.add(s)
                samples.append((sbd / "img" / f"{s}.jpg", sbd / "cls" / f"{s}.mat"))
        super().__init__(samples)

    def read_label(self, path: Path) -> np.ndarray:
        return read_sbd_mat(path) if path.suffix == ".mat" else super().read_label(path)
