"""``build_dataset``: a dataset (or several joined with ``+``) with its transforms.

``DataConfig.dataset`` may join names with ``+`` (the paper's VOC Stage-1 is
``coco_voc+voc_aug``, Section 4.2) and a split may join splits with ``+`` (the
Cityscapes Stage-1 is ``train+train_extra``, Section 4.3). Each part is
``DATASETS[name](root, split, **options)`` where

* ``root`` is ``options[name]["root"]`` if given, else ``cfg.root``;
* ``options`` are the entries of ``cfg.options`` that are not per-dataset
  mappings, updated with ``cfg.options[name]`` (a mapping) if present;
* ``options[name]["splits"]`` (optional) renames a requested split for that
  part, or leaves the part out of it with ``null``.

Example (VOC Stage-1, validated on VOC val only)::

    dataset: coco_voc+voc_aug
    root: /data/voc            # holds VOCdevkit/ and benchmark_RELEASE/
    options: {coco_voc: {root: /data/coco, splits: {val: null}}}

A split may end in ``:GROUP,GROUP...`` to keep the files of those groups only, a
file's group being its name up to the first ``_``: CamVid's video sequences
(``0016E5_07959.png``), Cityscapes' cities (``aachen_000000_000019``). On CamVid,
``data.train_split=train:0016E5,0001TP data.val_split=train:0006R0`` validates on a
sequence the model never saw; ``train+val:0016E5`` is every frame of 0016E5.
"""

from __future__ import annotations

import bisect
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset

from ..config import DataConfig
from ..errors import DataError
from .base import FileSegmentation, SegmentationDataset
from .camvid import CamVid
from .cityscapes import Cityscapes
from .coco import COCOVOC
from .folder import Folder
from .io import label_lut
from .synthetic import SyntheticShapes
from .transforms import build_transforms
from .voc import VOC, VOCAug

# dataset name -> its class, opened as DATASETS[name](root, split, **options)
DATASETS: dict[str, Callable[..., SegmentationDataset]] = {
    "voc": VOC,
    "voc_aug": VOCAug,
    "coco_voc": COCOVOC,
    "cityscapes": Cityscapes,
    "camvid": CamVid,
    "folder": Folder,
    "synthetic-shapes": SyntheticShapes,
}


class ConcatSegmentation(SegmentationDataset):
    """Several datasets with the same classes, one after the other."""

    def __init__(self, parts: Sequence[SegmentationDataset]) -> None:
        for p in parts[1:]:
            if list(p.classes) != list(parts[0].classes):
                raise DataError(
                    f"cannot join {type(parts[0]).__name__} and {type(p).__name__}: their class lists differ"
                )
        self.parts = list(parts)
        self.classes = list(parts[0].classes)
        self.palette = list(parts[0].palette)
        self.cumulative_sizes = ConcatDataset.cumsum(self.parts)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1] if self.cumulative_sizes else 0

    def _locate(self, index: int) -> tuple[SegmentationDataset, int]:
        index = self._index(index)
        k = bisect.bisect_right(self.cumulative_sizes, index)
        return self.parts[k], index - (self.cumulative_sizes[k - 1] if k else 0)

    def load(self, index: int) -> tuple[Image.Image, np.ndarray]:
        part, i = self._locate(index)
        return part.load(i)

    def name(self, index: int) -> str:
        part, i = self._locate(index)
        return part.name(i)


class TransformedDataset(Dataset):
    """``base`` with a joint transform applied in ``__getitem__``; forwards ``classes``,
    ``palette``, ``num_classes``, ``load`` and ``name`` to ``base``."""

    def __init__(self, base: SegmentationDataset, transform: Callable[..., Any], ignore_index: int = 255) -> None:
        self.base = base
        self.transform = transform
        self.ignore_index = ignore_index

    @property
    def classes(self) -> list[str]:
        return self.base.classes

    @property
    def palette(self) -> list[tuple[int, int, int]]:
        return self.base.palette

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    def __len__(self) -> int:
        return len(self.base)

    def load(self, index: int) -> tuple[Image.Image, np.ndarray]:
        return self.base.load(index)

    def name(self, index: int) -> str:
        return self.base.name(index)

    def __getitem__(self, index: int) -> Any:
        return self.transform(*self.base.load(index))


def dataset_roots(cfg: DataConfig) -> list[str]:
    """The folders ``cfg`` reads data from (``data.root`` and each per-dataset root): no
    command writes into them."""
    roots = [dataset_options(cfg, name.strip())[0] for name in cfg.dataset.split("+") if name.strip() in DATASETS]
    return [r for r in dict.fromkeys(roots) if r is not None]


def dataset_options(cfg: DataConfig, name: str) -> tuple[str | None, dict[str, Any]]:
    """``(root, constructor options)`` of the part ``name`` of ``cfg.dataset``."""
    opts = {k: v for k, v in cfg.options.items() if not (k in DATASETS and isinstance(v, dict))}
    opts.update(cfg.options.get(name, {}) if isinstance(cfg.options.get(name), dict) else {})
    root = opts.pop("root", cfg.root)
    return root, opts


def group(name: str) -> str:
    """The group of a file named ``name`` (a split's ``:GROUP`` keeps it): up to the first ``_``."""
    return name.split("_", 1)[0]


def _keep_groups(
    parts: list[SegmentationDataset], groups: str, split: str, name: str
) -> list[SegmentationDataset]:
    """The files of ``parts`` whose group is one of ``groups`` (``A,B``); a group without
    files is an error that names the groups there are."""
    keep = [g.strip() for g in groups.split(",")]
    if not all(keep) or any("+" in g or ":" in g for g in keep):
        raise DataError(
            f"split {split!r}: expected SPLIT[+SPLIT...]:GROUP[,GROUP...] (the groups after all the joined splits), "
            "e.g. train+val:0016E5"
        )
    found: set[str] = set()
    for part in parts:
        if not isinstance(part, FileSegmentation):
            raise DataError(f"split {split!r}: {name} reads no files to keep by group")
        found |= {group(image.stem) for image, _ in part.samples}
        part.samples = [s for s in part.samples if group(s[0].stem) in keep]
    missing = [g for g in keep if g not in found]
    if missing:
        raise DataError(f"split {split!r}: no files of {', '.join(missing)} (there are: {', '.join(sorted(found))})")
    return [p for p in parts if len(p)]


def open_dataset(cfg: DataConfig, split: str) -> SegmentationDataset:
    """The raw dataset(s) of ``cfg.dataset`` and ``split`` (``+`` joins, ``:`` keeps
    groups: see module docstring)."""
    split, sep, groups = split.partition(":")
    if not all(s.strip() for s in split.split("+")):
        raise DataError(f"split {split + sep + groups!r}: an empty split name")
    parts = []
    for name in cfg.dataset.split("+"):
        name = name.strip()
        if name not in DATASETS:
            raise DataError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
        root, opts = dataset_options(cfg, name)
        renames = opts.pop("splits", None) or {}
        for s in split.split("+"):
            s = renames.get(s.strip(), s.strip())
            if s is None:  # this part is left out of this split
                continue
            try:
                inspect.signature(DATASETS[name]).bind(root, s, **opts)
            except TypeError as e:
                raise DataError(
                    f"{name}: bad data.options {sorted(opts)} ({e}); data.options={{}} clears the options"
                ) from None
            try:
                part = DATASETS[name](root, s, **opts)
            except (TypeError, ValueError) as e:  # an option of the right name but a wrong value
                raise DataError(f"{name}: bad data.options {opts} ({e})") from None
            if cfg.void or cfg.label_map:
                if not isinstance(part, FileSegmentation):
                    raise DataError(f"{name}: data.void and data.label_map map the labels of files; {name} reads none")
                part.label_lut = label_lut(cfg.void, cfg.label_map)
            parts.append(part)
    if not parts:
        raise DataError(f"{cfg.dataset}: no part has the split {split!r} (see data.options.<name>.splits)")
    if sep:
        parts = _keep_groups(parts, groups, split + sep + groups, cfg.dataset)
    return parts[0] if len(parts) == 1 else ConcatSegmentation(parts)


def image_files(ds: SegmentationDataset) -> set[Path]:
    """The image files a dataset reads (its file parts' only: generated data has none)."""
    if isinstance(ds, ConcatSegmentation):
        return set().union(*(image_files(p) for p in ds.parts))
    if isinstance(ds, FileSegmentation):
        return {image.resolve() for image, _ in ds.samples}
    return set()


def shared_images(a: SegmentationDataset, b: SegmentationDataset) -> int:
    """How many image files two datasets both read (a validation split that holds training
    images measures memory, not generalisation)."""
    return len(image_files(a) & image_files(b))


def build_dataset(cfg: DataConfig, split: str, train: bool) -> TransformedDataset:
    """The dataset of ``split`` with training (``train=True``) or evaluation transforms;
    items are ``(float image [3,H,W] normalised by cfg.mean/std, int64 mask [H,W])``."""
    return TransformedDataset(open_dataset(cfg, split), build_transforms(cfg, train), cfg.ignore_index)
