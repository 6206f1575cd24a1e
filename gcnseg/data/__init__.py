"""Datasets and joint transforms (Section 4): PASCAL VOC 2012, SBD, COCO -> VOC,
Cityscapes, CamVid, a generic folder dataset and the embedded ``synthetic-shapes``.

``DATASETS[name](root, split, **options)`` opens a raw dataset;
:func:`build_dataset` adds the transforms of a :class:`gcnseg.config.DataConfig`.
"""

from __future__ import annotations

from .base import FileSegmentation, SegmentationDataset, color_map
from .build import (
    DATASETS,
    ConcatSegmentation,
    TransformedDataset,
    build_dataset,
    dataset_roots,
    open_dataset,
)
from .camvid import CamVid
from .cityscapes import Cityscapes
from .coco import COCOVOC
from .folder import Folder
from .io import IGNORE_INDEX, read_image, read_mask
from .synthetic import SyntheticShapes
from .transforms import build_transforms
from .voc import VOC, VOCAug

__all__ = [
    "COCOVOC",
    "DATASETS",
    "IGNORE_INDEX",
    "VOC",
    "CamVid",
    "Cityscapes",
    "ConcatSegmentation",
    "FileSegmentation",
    "Folder",
    "SegmentationDataset",
    "SyntheticShapes",
    "TransformedDataset",
    "VOCAug",
    "build_dataset",
    "dataset_roots",
    "build_transforms",
    "color_map",
    "open_dataset",
    "read_image",
    "read_mask",
]
