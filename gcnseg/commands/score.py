"""``gcnseg score PRED_DIR GT_DIR``: score saved label PNGs against ground truth
(strict: any problem is listed and nothing is scored, exit 1)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .args import add_json, check_json, human, positive_int, write_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred_dir", metavar="PRED_DIR", type=Path, help="predicted label PNGs (class ids)")
    p.add_argument("gt_dir", metavar="GT_DIR", type=Path, help="ground-truth label PNGs")
    p.add_argument(
        "--num-classes", type=positive_int, required=True, help="number of classes C (ids 0..C-1; at most 1024)"
    )
    p.add_argument("--ignore-index", type=int, default=255, help="ground-truth value that is never scored")
    p.add_argument(
        "--boundary-width",
        type=float,
        default=7.0,
        help="boundary band in pixels for boundary/internal accuracy (Table 5)",
    )
    p.add_argument("--no-boundary", action="store_true", help="skip the boundary/internal accuracy")
    add_json(p, "the scores")


def run(args: argparse.Namespace) -> int:
    from ..metrics import format_metrics
    from ..score import score_folders

    check_json(args.json, [args.pred_dir, args.gt_dir])
    result, images, problems = score_folders(
        args.pred_dir,
        args.gt_dir,
        args.num_classes,
        args.ignore_index,
        None if args.no_boundary else args.boundary_width,
    )
    if result is None:
        n = len(problems)
        print(f"gcnseg score: {n} problem{'s' if n > 1 else ''}, nothing scored:", file=sys.stderr)
        for line in problems:
            print(line, file=sys.stderr)
        return 1
    c, out = args.num_classes, human(args.json)
    print(f"{images} images, {result['pixels']} scored pixels, {c} classes (ignore {args.ignore_index})", file=out)
    if result["unassigned_pixels"]:
        print(
            f"{result['unassigned_pixels']} scored pixels predicted as {args.ignore_index} (no class): "
            "counted wrong (those where the ground truth is ignored are not scored)",
            file=out,
        )
    print(format_metrics(result), file=out)
    write_json(args.json, {"images": images, "num_classes": c, "ignore_index": args.ignore_index, **result})
    return 0
