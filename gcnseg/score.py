"""Scoring saved label PNGs against ground truth.

Files are matched by stem (``a/b/x.png`` <-> ``c/x.png``), searching both folders
recursively, so a Cityscapes-style tree of city folders works. Label PNGs are read as raw
index values: mode L, P (palette indices, as VOC stores them) and 16-bit grey.

Strict by design (this is the leaderboard use): every problem -- a file present on one
side only, a stem found twice, an unreadable or multi-channel image, a size mismatch, a
label value out of range -- is collected, printed one per line as ``PATH: what`` on
stderr, and ``gcnseg score`` exits 1 without printing scores: a score over part of a split
would look valid and be wrong.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .config.schema import MAX_BOUNDARY_WIDTH, MAX_CLASSES, MAX_LABEL
from .errors import DataError
from .metrics import SegMetrics
from .runtime import hidden

LABEL_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I")
# MAX_CLASSES (1024): the C x C confusion matrix of int64 stays small (8 MB; 65536 classes,
# all a 16-bit label PNG could hold, would be 34 GB); the class count of a network is held
# to the same bound (gcnseg.config.schema.check_num_classes)


def _index_pngs(root: Path, problems: list[str]) -> dict[str, Path]:
    """``stem -> path`` for every ``*.png`` under ``root`` (hidden files and folders aside, as
    ``predict`` reads a folder); a stem found twice is a problem."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.png")):
        if hidden(path, root):
            continue
        if path.stem in found:
            problems.append(f"{path}: same name as {found[path.stem]}")
        else:
            found[path.stem] = path
    return found


def read_label_png(path: Path) -> np.ndarray:
    """Raw label values ``[H, W]`` of a single-channel PNG; raises ``ValueError`` otherwise."""
    try:
        with Image.open(path) as img:
            if img.mode not in LABEL_MODES:
                raise ValueError(f"not a single-channel label image (mode {img.mode})")
            arr = np.array(img)
    except (OSError, SyntaxError) as e:  # PIL raises these for broken files
        raise ValueError(f"unreadable ({e})") from None
    if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
        arr = arr.astype(np.int32)  # torch has few ops for uint16
    return arr


def _out_of_range(values: np.ndarray, num_classes: int, ignore: int | None) -> list[int]:
    if values.size == 0 or (values.min() >= 0 and values.max() < num_classes):
        return []
    bad = np.unique(values[(values < 0) | (values >= num_classes)])
    return [int(v) for v in bad if v != ignore]


def score_folders(
    pred_dir: Path, gt_dir: Path, num_classes: int, ignore_index: int = 255, boundary_width: float | None = 7.0
) -> tuple[dict[str, Any] | None, int, list[str]]:
    """``(metrics, images, problems)`` of the label PNGs under ``pred_dir`` against those
    under ``gt_dir``; ``metrics`` is None when there is any problem (nothing is scored)."""
    c = num_classes
    if isinstance(c, bool) or not isinstance(c, int) or c < 1:
        raise DataError(f"--num-classes must be an integer >= 1, got {c!r}")
    if c > MAX_CLASSES:
        raise DataError(f"--num-classes {c}: at most {MAX_CLASSES} (its confusion matrix must fit in memory)")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int) or not 0 <= ignore_index <= MAX_LABEL:
        raise DataError(f"--ignore-index must be a label value of 0 to {MAX_LABEL}, got {ignore_index!r}")
    if boundary_width is not None and not (math.isfinite(boundary_width) and 0 <= boundary_width <= MAX_BOUNDARY_WIDTH):
        raise DataError(f"--boundary-width must be 0 to {MAX_BOUNDARY_WIDTH} pixels, got {boundary_width:g}")
    for d, what in ((pred_dir, "PRED_DIR"), (gt_dir, "GT_DIR")):
        if not d.is_dir():
            raise DataError(f"{what} {d} is not a folder")

    problems: list[str] = []
    preds = _index_pngs(pred_dir, problems)
    gts = _index_pngs(gt_dir, problems)
    if not gts:
        raise DataError(f"no PNG files under GT_DIR {gt_dir}")
    problems += [f"{gts[s]}: no prediction named {s}.png under {pred_dir}" for s in sorted(gts.keys() - preds.keys())]
    problems += [f"{preds[s]}: no ground truth named {s}.png under {gt_dir}" for s in sorted(preds.keys() - gts.keys())]

    metrics = SegMetrics(c, ignore_index, boundary_width)
    no_class = None if 0 <= ignore_index < c else ignore_index  # a predicted ignore index: no class
    images = 0
    for stem in sorted(gts.keys() & preds.keys()):
        arrays = {}
        for side, path in (("pred", preds[stem]), ("gt", gts[stem])):
            try:
                arrays[side] = read_label_png(path)
            except ValueError as e:
                problems.append(f"{path}: {e}")
        if len(arrays) < 2:
            continue
        pred, gt = arrays["pred"], arrays["gt"]
        if pred.shape != gt.shape:
            problems.append(
                f"{preds[stem]}: size {pred.shape[1]}x{pred.shape[0]} differs from ground truth "
                f"{gt.shape[1]}x{gt.shape[0]} ({gts[stem]})"
            )
            continue
        bad_pred = _out_of_range(pred, c, ignore_index)
        bad_gt = _out_of_range(gt, c, ignore_index)
        if bad_pred:
            problems.append(f"{preds[stem]}: predicted values out of range [0, {c}): {bad_pred[:10]}")
        if bad_gt:
            problems.append(
                f"{gts[stem]}: label values out of range [0, {c}) and not --ignore-index {ignore_index}: {bad_gt[:10]}"
            )
        if bad_pred or bad_gt or problems:
            continue  # nothing will be scored; only keep looking for problems
        metrics.update(torch.from_numpy(pred), torch.from_numpy(gt), no_class=no_class)
        images += 1
    return (None if problems else metrics.compute()), images, problems
