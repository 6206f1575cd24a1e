"""``gcnseg data check --dataset NAME --root DIR [--split SPLIT]``: report every bad file of a split."""

from __future__ import annotations

import argparse

from ..config import ConfigError, apply_overrides, given, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = sub.add_parser("check", help="scan a split and report every bad file (exit 1 if any)")
    p.add_argument("--config", help="YAML config whose data section names the dataset")
    # shorthands for data.* overrides
    p.add_argument("--dataset", help="data.dataset: a name of gcnseg.data.DATASETS; '+' joins several")
    p.add_argument("--root", default=None, help="data.root: dataset root folder")
    p.add_argument("--split", default=None, help="the split to scan; '+' joins several (default: data.train_split)")
    p.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="data.options.KEY: dataset constructor option (YAML value), e.g. classes=[bg,fg]; repeatable",
    )  # fmt: skip
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.root=DIR")


def run(args: argparse.Namespace) -> int:
    from .build import open_dataset
    from .check import check_dataset, format_report

    for item in args.option:
        if "=" not in item:
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE")
    if not args.config and not args.dataset and not any(o.startswith("data.dataset=") for o in args.overrides):
        raise ConfigError("name the dataset: --dataset NAME, data.dataset=NAME or --config FILE")
    options = [f"data.options.{item}" for item in args.option]
    cfg = apply_overrides(load_config(args.config), args.overrides + options,
                          given({"data.dataset": args.dataset, "data.root": args.root}))
    split = args.split or cfg.data.train_split
    ds = open_dataset(cfg.data, split)
    report = check_dataset(ds)
    print(format_report(report, ds, f"{cfg.data.dataset}/{split}"))
    return 1 if report.bad else 0
