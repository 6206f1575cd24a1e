"""``gcnseg data check --dataset NAME --root DIR [--split SPLIT]``: report every bad file of a split."""

from __future__ import annotations

import argparse

from ..config import ConfigError, DataConfig, parse_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = sub.add_parser("check", help="scan a split and report every bad file (exit 1 if any)")
    p.add_argument("--dataset", required=True, help="dataset name (see gcnseg.data.DATASETS); '+' joins several")
    p.add_argument("--root", default=None, help="dataset root folder")
    p.add_argument("--split", default="train", help="split to scan; '+' joins several (default: train)")
    p.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="dataset constructor option (YAML value), e.g. classes=[bg,fg]; repeatable",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from .build import open_dataset
    from .check import check_dataset, format_report

    for item in args.option:
        if "=" not in item:
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE")
    cfg = DataConfig(dataset=args.dataset, root=args.root, options=parse_overrides(args.option))
    ds = open_dataset(cfg, args.split)
    report = check_dataset(ds)
    print(format_report(report, ds, f"{args.dataset}/{args.split}"))
    return 1 if report.bad else 0
