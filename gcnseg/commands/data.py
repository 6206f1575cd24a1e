"""``gcnseg data check``: report every bad file of a split; ``gcnseg data weights``: class
weights for a class-balanced loss from the training split's label frequencies;
``gcnseg data samples``: images of a split written as files, with their labels."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .args import add_config, add_json, add_overrides, check_json, human, positive_int, write_json

if TYPE_CHECKING:
    from ..config import Config


def add_dataset(p: argparse.ArgumentParser) -> None:
    """``--dataset NAME`` and ``--root DIR``: shorthands for ``data.dataset`` and ``data.root``."""
    p.add_argument("--dataset", help="data.dataset: a name of gcnseg.data.DATASETS; '+' joins several")
    p.add_argument("--root", help="data.root: the dataset's root folder")


def _dataset_arguments(p: argparse.ArgumentParser) -> None:
    add_config(p, "the config whose data section names the dataset")
    add_dataset(p)
    p.add_argument("--split", help="the split; '+' joins several (default: data.train_split)")
    p.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="data.options.KEY: dataset constructor option (YAML value), e.g. classes=[bg,fg]; repeatable",
    )  # fmt: skip
    add_overrides(p, "data.root=DIR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="scan a split and report every bad file (exit 1 if any)")
    _dataset_arguments(check)
    add_json(check, "the report")
    weights = sub.add_parser("weights", help="class weights for a class-balanced loss (train.class_weights)")
    _dataset_arguments(weights)
    weights.add_argument("--method", default="enet", choices=["enet", "median"],
                         help="enet: 1/ln(1.02+p); median: median frequency balancing")  # fmt: skip
    weights.add_argument("--out", metavar="FILE", help="write the config with these weights to FILE (YAML)")
    add_json(weights, "the weights and class shares")
    samples = sub.add_parser("samples", help="write images of a split and their label PNGs to a folder")
    _dataset_arguments(samples)
    samples.add_argument("--out", required=True, metavar="DIR", help="OUT/images/NAME.png and OUT/labels/NAME.png")
    samples.add_argument("--limit", type=positive_int, default=8, metavar="N", help="how many, from the first")


def dataset_config(args: argparse.Namespace) -> Config:
    """The config of ``--config`` with the dataset flags and overrides applied."""
    from ..config import ConfigError, apply_overrides, given, load_config

    for item in args.option:
        if "=" not in item:
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE")
    if not args.config and not args.dataset and not any(o.startswith("data.dataset=") for o in args.overrides):
        raise ConfigError("name the dataset: --dataset NAME, data.dataset=NAME or --config NAME|FILE")
    options = [f"data.options.{item}" for item in args.option]
    return apply_overrides(
        load_config(args.config),
        args.overrides + options,
        given({"data.dataset": args.dataset, "data.root": args.root}),
    )


def run(args: argparse.Namespace) -> int:
    from ..config import config_path
    from ..data import dataset_roots, open_dataset

    cfg = dataset_config(args)
    split = args.split or cfg.data.train_split
    if args.data_command == "samples":
        from ..data.samples import write_samples
        from ..runtime import check_output

        out = check_output(args.out, "--out", folder=True, inputs=dataset_roots(cfg.data))
        n = write_samples(open_dataset(cfg.data, split), out, args.limit)
        print(f"{n} images and their labels written to {out / 'images'} and {out / 'labels'}")
        return 0
    config_file = [config_path(args.config)] if args.config else []
    check_json(args.json, [*dataset_roots(cfg.data), *config_file])
    ds = open_dataset(cfg.data, split)
    if args.data_command == "weights":
        return _weights(args, cfg, ds, split)
    from ..data.check import check_dataset, format_report

    report = check_dataset(ds)
    print(format_report(report, ds, f"{cfg.data.dataset}/{split}"), file=human(args.json))
    write_json(args.json, report.to_dict())
    return 1 if report.bad else 0


def _weights(args: argparse.Namespace, cfg: Config, ds, split: str) -> int:
    from pathlib import Path

    from ..config import apply_overrides, config_path
    from ..data import dataset_roots
    from ..data.weights import class_pixels, class_weights
    from ..runtime import atomic_write_text, check_output

    if args.out:
        config_file = [config_path(args.config)] if args.config else []
        check_output(args.out, "--out", inputs=[*dataset_roots(cfg.data), *config_file])
    pixels, present_in = class_pixels(ds)
    weights = [round(w, 4) for w in class_weights(pixels, present_in, args.method)]
    share = pixels / pixels.sum()
    out = human(args.json)
    print(
        f"{cfg.data.dataset}/{split}: class weights ({args.method}) from {int(pixels.sum())} labelled pixels", file=out
    )
    for i, (name, w, p) in enumerate(zip(ds.classes, weights, share)):
        print(f"  {i:3d} {name:<16} {100 * p:6.2f}%  weight {w:.4f}", file=out)
    print("train.class_weights=" + str(weights).replace(" ", ""), file=out)
    write_json(
        args.json,
        {"method": args.method, "classes": list(ds.classes), "weights": weights, "share": [float(s) for s in share]},
    )
    if args.out:
        written = apply_overrides(cfg, values={"train.class_weights": weights})
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, written.to_yaml())
        print(f"written {args.out}", file=out)
    return 0
