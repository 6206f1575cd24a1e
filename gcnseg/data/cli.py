"""``gcnseg data check``: report every bad file of a split; ``gcnseg data weights``: class
weights for a class-balanced loss from the training split's label frequencies;
``gcnseg data samples``: images of a split written as files, with their labels (e.g. the
embedded synthetic data, to look at with ``gcnseg predict`` or ``gcnseg serve``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cli import positive_int
from ..config import Config, ConfigError, apply_overrides, given, load_config
from .base import SegmentationDataset


def _dataset_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config whose data section names the dataset")
    # shorthands for data.* overrides
    p.add_argument("--dataset", help="data.dataset: a name of gcnseg.data.DATASETS; '+' joins several")
    p.add_argument("--root", default=None, help="data.root: dataset root folder")
    p.add_argument("--split", default=None, help="the split; '+' joins several (default: data.train_split)")
    p.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="data.options.KEY: dataset constructor option (YAML value), e.g. classes=[bg,fg]; repeatable",
    )  # fmt: skip
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.root=DIR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="scan a split and report every bad file (exit 1 if any)")
    _dataset_arguments(check)
    weights = sub.add_parser("weights", help="class weights for a class-balanced loss (train.class_weights)")
    _dataset_arguments(weights)
    weights.add_argument("--method", default="enet", choices=["enet", "median"],
                         help="enet: 1/ln(1.02+p) (default); median: median frequency balancing")  # fmt: skip
    weights.add_argument("--out", metavar="FILE", help="write the config with these weights to FILE (YAML)")
    samples = sub.add_parser("samples", help="write images of a split and their label PNGs to a folder")
    _dataset_arguments(samples)
    samples.add_argument("--out", required=True, metavar="DIR", help="OUT/images/NAME.png and OUT/labels/NAME.png")
    samples.add_argument("--limit", type=positive_int, default=8, help="how many, from the first (default 8)")


def _config(args: argparse.Namespace) -> Config:
    for item in args.option:
        if "=" not in item:
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE")
    if not args.config and not args.dataset and not any(o.startswith("data.dataset=") for o in args.overrides):
        raise ConfigError("name the dataset: --dataset NAME, data.dataset=NAME or --config FILE")
    options = [f"data.options.{item}" for item in args.option]
    cfg = apply_overrides(load_config(args.config), args.overrides + options,
                          given({"data.dataset": args.dataset, "data.root": args.root}))
    return cfg


def run(args: argparse.Namespace) -> int:
    from .build import open_dataset

    cfg = _config(args)
    split = args.split or cfg.data.train_split
    ds = open_dataset(cfg.data, split)
    if args.data_command == "weights":
        return _weights(args, cfg, ds, split)
    if args.data_command == "samples":
        return _samples(args, ds)
    from .check import check_dataset, format_report

    report = check_dataset(ds)
    print(format_report(report, ds, f"{cfg.data.dataset}/{split}"))
    return 1 if report.bad else 0


def _weights(args: argparse.Namespace, cfg: Config, ds: SegmentationDataset, split: str) -> int:
    from ..runtime import atomic_write_text, check_output
    from .weights import class_pixels, class_weights

    if args.out:
        check_output(args.out, "--out")
    pixels, present_in = class_pixels(ds)
    weights = [round(w, 4) for w in class_weights(pixels, present_in, args.method)]
    share = pixels / pixels.sum()
    print(f"{cfg.data.dataset}/{split}: class weights ({args.method}) from {int(pixels.sum())} labelled pixels")
    for i, (name, w, p) in enumerate(zip(ds.classes, weights, share)):
        print(f"  {i:3d} {name:<16} {100 * p:6.2f}%  weight {w:.4f}")
    print("train.class_weights=" + json.dumps(weights).replace(" ", ""))
    if args.out:
        out = apply_overrides(cfg, values={"train.class_weights": weights})
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, out.to_yaml())
        print(f"written {args.out}")
    return 0


def unique(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``, ...: the first not in ``taken`` (which it joins)."""
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name)
    return name


def _samples(args: argparse.Namespace, ds: SegmentationDataset) -> int:
    from ..runtime import atomic_path, check_output
    from ..visualize import label_image

    out = check_output(args.out, "--out", folder=True)
    n = min(args.limit, len(ds))
    taken: set[str] = set()
    for i in range(n):
        image, mask = ds.load(i)
        name = unique(Path(ds.name(i)).name, taken)  # one folder: the same name from two cities gets a suffix
        for kind, picture in (("images", image.convert("RGB")), ("labels", label_image(mask, ds.palette))):
            (out / kind).mkdir(parents=True, exist_ok=True)
            with atomic_path(out / kind / f"{name}.png") as tmp:
                picture.save(tmp, format="PNG")
    print(f"{n} images and their labels written to {out / 'images'} and {out / 'labels'}")
    return 0
