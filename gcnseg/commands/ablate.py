"""``gcnseg ablate``: its arguments, and the command that runs one table."""

from __future__ import annotations

import argparse
import json
import shlex

from .args import add_config, add_overrides, add_progress
from .data import add_dataset


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``gcnseg ablate`` (one of --table, --table-file; --out)."""
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--table",
        type=int,
        choices=range(1, 6),
        metavar="N",
        help="paper table 1-5 (shipped as gcnseg/ablate/tables/tableN.yaml)",
    )
    which.add_argument(
        "--table-file", metavar="PATH", help="a table file of one's own (format: gcnseg/ablate/tables.py)"
    )
    add_config(p, "the base config (dataset, backbone, schedule) replacing the table's base")
    add_dataset(p)
    p.add_argument("--budget", help="per network: iterations (300, 300it) or wall-clock time (90s, 20m, 1.5h)")
    p.add_argument("--seed", type=int, help="train.seed of every network (default: the config's)")
    p.add_argument("--out", required=True, metavar="DIR", help="one run folder per network, and the table")
    add_progress(p)
    add_overrides(p, "train.threads=1 (every network)")


def command_line(args: argparse.Namespace) -> str:
    """The command as one would type it again (written into the report)."""
    parts = ["gcnseg", "ablate"]
    parts += ["--table", str(args.table)] if args.table is not None else ["--table-file", args.table_file]
    for flag, value in (
        ("--config", args.config),
        ("--dataset", args.dataset),
        ("--root", args.root),
        ("--budget", args.budget),
        ("--seed", args.seed),
        ("--out", args.out),
    ):
        if value is not None:
            parts += [flag, str(value)]
    return shlex.join(parts + list(args.overrides))


def dataset_overrides(args: argparse.Namespace) -> list[str]:
    """``--dataset`` and ``--root`` as the ``data.`` overrides they stand for (quoted: a
    path is taken as typed, never as a YAML number or null)."""
    from ..config import given

    flags = given({"data.dataset": args.dataset, "data.root": args.root})
    return [f"{key}={json.dumps(value)}" for key, value in flags.items()]


def run(args: argparse.Namespace) -> int:
    """Run the table named by ``--table`` or ``--table-file``; 0 when every network is done."""
    from pathlib import Path

    from ..ablate import ablate, common_config, load_table, table_path
    from ..config import config_path
    from ..data import dataset_roots
    from ..runtime import check_output

    table = load_table(args.table_file if args.table_file else table_path(args.table))
    overrides = [*args.overrides, *dataset_overrides(args)]  # the flags win, as in train
    shared = common_config(table, args.config, overrides, args.seed, args.budget)  # the data every network reads
    base = config_path(args.config) if args.config else table.base
    reads: list[str | Path] = [*dataset_roots(shared.data), table.source, *([base] if base else [])]
    check_output(args.out, "--out", folder=True, inputs=reads)
    ablate(
        table,
        args.out,
        args.config,
        overrides,
        args.seed,
        args.budget,
        show_progress=not args.no_progress,
        command=command_line(args),
    )
    return 0
