"""``gcnseg train --config NAME|FILE [--dataset NAME] [--root DIR] [--out DIR] [KEY=VALUE ...]``
and ``gcnseg train --resume RUN_DIR``."""

from __future__ import annotations

import argparse

from .args import add_config, add_overrides, add_progress
from .data import add_dataset


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config(p, "the recipe to train")
    add_dataset(p)
    p.add_argument("--out", metavar="DIR", help="out_dir: the run folder (default: the recipe's)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    add_progress(p)
    add_overrides(p, "train.iterations=100")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..checkpoint import CheckpointError, last_good
    from ..config import apply_overrides, config_path, given, load_config
    from ..data import dataset_roots
    from ..errors import GcnsegError
    from ..runtime import check_output, is_main
    from ..train import format_summary, train

    values = given({"data.dataset": args.dataset, "data.root": args.root})
    if args.resume:
        if args.config:
            raise GcnsegError("--resume takes the run's own config.yaml; give KEY=VALUE overrides, not --config")
        if args.out:
            raise GcnsegError("--resume RUN_DIR names the run folder; --out is for a new run")
        run_dir = Path(args.resume)
        if any(o.split("=", 1)[0].strip() == "out_dir" for o in args.overrides):
            raise GcnsegError(f"--resume {run_dir}: the resumed run stays in its folder; out_dir= is for a new run")
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise CheckpointError(f"{saved}: not found; --resume takes the folder of an earlier run")
        cfg = apply_overrides(
            load_config(saved), args.overrides, {**values, "out_dir": str(run_dir)}, source=f"{saved} + overrides"
        )
    else:
        values |= given({"out_dir": args.out})
        if not args.config and not args.overrides and not values:
            raise GcnsegError(
                "give --config NAME|FILE (gcnseg configs lists the recipes), or flags or KEY=VALUE overrides"
            )
        cfg = load_config(args.config, args.overrides)  # errors name the recipe's file
        cfg = apply_overrides(cfg, values=values, source="--dataset, --root, --out")
        reads: list[str | Path] = [*dataset_roots(cfg.data), *([config_path(args.config)] if args.config else [])]
        check_output(cfg.out_dir, "out_dir", folder=True, inputs=reads)
    try:
        summary = train(cfg, resume=bool(args.resume), show_progress=not args.no_progress)
    except OSError as e:  # a full disk, a read-only folder: what was saved stays as it was
        good = last_good(Path(cfg.out_dir))
        raise GcnsegError(
            f"{e.filename or cfg.out_dir}: {e.strerror or e}; the last good checkpoint is {good or 'not written yet'}"
        ) from None
    if is_main():
        print(format_summary(summary))
    return 0
