"""``gcnseg score PRED_DIR GT_DIR``: score saved label PNGs against ground truth.

Files are matched by stem (``a/b/x.png`` <-> ``c/x.png``), searching both folders
recursively, so a Cityscapes-style tree of city folders works. Label PNGs are read as raw
index values: mode L, P (palette indices, as VOC stores them) and 16-bit grey.

Strict by design (this is the leaderboard use): every problem -- a file present on one
side only, a stem found twice, an unreadable or multi-channel image, a size mismatch, a
label value out of range -- is collected, printed one per line as ``PATH: what`` on
stderr, and the command exits 1 without printing scores: a score over part of a split
would look valid and be wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import DataError
from .metrics import SegMetrics, format_metrics

LABEL_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred_dir", metavar="PRED_DIR", type=Path, help="predicted label PNGs (class ids)")
    parser.add_argument("gt_dir", metavar="GT_DIR", type=Path, help="ground-truth label PNGs")
    parser.add_argument("--num-classes", type=int, required=True, help="number of classes C (ids 0..C-1)")
    parser.add_argument(
        "--ignore-index", type=int, default=255, help="ground-truth value that is never scored (default 255)"
    )
    parser.add_argument(
        "--boundary-width",
        type=float,
        default=7.0,
        help="boundary band width in pixels for boundary/internal accuracy (paper Table 5: 7)",
    )
    parser.add_argument("--no-boundary", action="store_true", help="skip the boundary/internal accuracy")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def _index_pngs(root: Path, problems: list[str]) -> dict[str, Path]:
    """``stem -> path`` for every ``*.png`` under ``root``; a stem found twice is a problem."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.png")):
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


def run(args: argparse.Namespace) -> int:
    c = args.num_classes
    if c < 1:
        raise DataError(f"--num-classes must be >= 1, got {c}")
    if args.boundary_width < 0:
        raise DataError(f"--boundary-width must be >= 0, got {args.boundary_width:g}")
    for d, what in ((args.pred_dir, "PRED_DIR"), (args.gt_dir, "GT_DIR")):
        if not d.is_dir():
            raise DataError(f"{what} {d} is not a folder")

    problems: list[str] = []
    preds = _index_pngs(args.pred_dir, problems)
    gts = _index_pngs(args.gt_dir, problems)
    if not gts:
        raise DataError(f"no PNG files under GT_DIR {args.gt_dir}")
    problems += [
        f"{gts[s]}: no prediction named {s}.png under {args.pred_dir}" for s in sorted(gts.keys() - preds.keys())
    ]
    problems += [
        f"{preds[s]}: no ground truth named {s}.png under {args.gt_dir}" for s in sorted(preds.keys() - gts.keys())
    ]

    metrics = SegMetrics(c, args.ignore_index, None if args.no_boundary else args.boundary_width)
    no_class = None if 0 <= args.ignore_index < c else args.ignore_index  # a predicted ignore index: no class
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
        bad_pred = _out_of_range(pred, c, args.ignore_index)
        bad_gt = _out_of_range(gt, c, args.ignore_index)
        if bad_pred:
            problems.append(f"{preds[stem]}: predicted values out of range [0, {c}): {bad_pred[:10]}")
        if bad_gt:
            problems.append(
                f"{gts[stem]}: label values out of range [0, {c}) and not --ignore-index {args.ignore_index}: "
                f"{bad_gt[:10]}"
            )
        if bad_pred or bad_gt or problems:
            continue  # nothing will be printed; only keep looking for problems
        metrics.update(torch.from_numpy(pred), torch.from_numpy(gt), no_class=no_class)
        images += 1

    if problems:
        n = len(problems)
        print(f"gcnseg score: {n} problem{'s' if n > 1 else ''}, nothing scored:", file=sys.stderr)
        for line in problems:
            print(line, file=sys.stderr)
        return 1

    result = metrics.compute()
    if args.json:
        print(json.dumps({"images": images, "num_classes": c, "ignore_index": args.ignore_index, **result}))
    else:
        print(f"{images} images, {result['pixels']} scored pixels, {c} classes (ignore {args.ignore_index})")
        if result["unassigned_pixels"]:
            print(
                f"{result['unassigned_pixels']} scored pixels predicted as {args.ignore_index} (no class): "
                "counted wrong (those where the ground truth is ignored are not scored)"
            )
        print(format_metrics(result))
    return 0
