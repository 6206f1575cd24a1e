"""``gcnseg eval``: a checkpoint's mean IoU, per-class IoU and boundary/internal accuracy
(Table 5) on a split, with the test-time methods of Tables 7 and 9."""

from __future__ import annotations

import argparse

from .args import (
    add_checkpoint,
    add_device,
    add_inference,
    add_json,
    add_limit,
    add_overrides,
    add_progress,
    add_tile,
    check_json,
    human,
    inference_network,
    listed,
    positive_float,
    tile_value,
    write_json,
)
from .data import add_dataset


def add_test_time(p: argparse.ArgumentParser) -> None:
    """The flags of the test-time methods, shorthands for ``eval.*`` overrides."""
    p.add_argument("--ms", action="store_true", help="eval.scales=[0.5, ..., 1.75]: multi-scale testing (Table 7)")
    p.add_argument("--scales", type=listed(positive_float), nargs="+", help="eval.scales: explicit test scales")
    p.add_argument("--flip", action="store_true", help="eval.flip=true: average with the horizontally flipped image")
    p.add_argument(
        "--crf", action="store_true", help="eval.crf=true: dense CRF post-processing (pip install 'gcnseg[crf]')"
    )
    add_tile(p)
    add_inference(p)


def test_time_values(args: argparse.Namespace) -> dict:
    """The ``eval.*`` values that :func:`add_test_time`'s flags give (None: not given)."""
    from ..inference import DEFAULT_MS_SCALES

    return {
        "eval.scales": args.scales or (list(DEFAULT_MS_SCALES) if args.ms else None),
        "eval.flip": args.flip or None,
        "eval.crf": args.crf or None,
        "eval.tile": tile_value(args.tile),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint(p)
    add_dataset(p)
    p.add_argument("--split", help="data.val_split: the split to evaluate (default: the checkpoint's)")
    add_test_time(p)
    p.add_argument("--boundary-width", type=int, help="eval.boundary_width: boundary band in pixels (Table 5: 7)")
    add_device(p)
    add_json(p, "the metrics")
    add_limit(p)
    add_progress(p)
    add_overrides(p, "data.eval_size=256")


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import checkpoint_files, load_model, resolve_checkpoint
    from ..config import apply_overrides, given
    from ..data import build_dataset, dataset_roots
    from ..errors import DataError, GcnsegError
    from ..evaluate import FirstN, evaluate
    from ..metrics import format_metrics

    check_json(args.json)
    model, cfg, meta = load_model(args.checkpoint)
    values = {
        "data.dataset": args.dataset,
        "data.root": args.root,
        "data.val_split": args.split,
        "eval.boundary_width": args.boundary_width,
        **test_time_values(args),
    }
    cfg = apply_overrides(cfg, args.overrides, given(values))
    check_json(args.json, [*checkpoint_files(resolve_checkpoint(args.checkpoint)), *dataset_roots(cfg.data)])
    if cfg.eval.crf:
        from ..crf import require_crf

        require_crf()
    split = cfg.data.val_split
    try:
        dataset = build_dataset(cfg.data, split, train=False)
    except DataError as e:
        if cfg.data.root is None:
            raise DataError(f"{args.checkpoint}: give its data with --root DIR ({e})") from None
        raise
    if dataset.num_classes != meta["num_classes"]:
        raise GcnsegError(
            f"{args.checkpoint}: model has {meta['num_classes']} classes, dataset {cfg.data.dataset} has {dataset.num_classes}"
        )
    total = len(dataset)
    if args.limit:
        dataset = FirstN(dataset, args.limit)
    model, device = inference_network(args, model, cfg, len(dataset))
    result = evaluate(
        model,
        dataset,
        cfg.eval,
        device,
        meta["num_classes"],
        cfg.data.ignore_index,
        show_progress=not args.no_progress,
        mean=cfg.data.mean,
        std=cfg.data.std,
    )
    print(format_metrics(result, meta.get("classes")), file=human(args.json))
    if len(dataset) < total:  # a partial score is said as such, beside the numbers
        print(f"scored {len(dataset)} of the split's {total} images (--limit {args.limit})", file=human(args.json))
    ev = cfg.eval
    methods = ([f"scales {ev.scales}"] if ev.scales != [1.0] else []) + ["flip"] * ev.flip + ["dense CRF"] * ev.crf
    methods += [f"tiles {ev.tile}"] if ev.tile else []
    if methods:  # what the numbers include, whether a flag or the model's own config asked for it
        print(f"test time: {', '.join(methods)}", file=human(args.json))
    write_json(
        args.json,
        {
            "checkpoint": str(args.checkpoint),
            "dataset": cfg.data.dataset,
            "split": split,
            "scales": ev.scales,
            "flip": ev.flip,
            "crf": ev.crf,
            "images": len(dataset),
            **{k: v for k, v in result.items() if k != "matrix"},
        },
    )
    return 0
