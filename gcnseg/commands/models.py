"""``gcnseg models``: the trained models that ship with gcnseg, usable wherever a
checkpoint is taken (``--model NAME``)."""

from __future__ import annotations

import argparse

from .args import add_json, check_json, human, write_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_json(p, "the list")


def run(args: argparse.Namespace) -> int:
    from ..zoo import ZOO

    check_json(args.json)
    rows = [
        {"name": m.name, "summary": m.summary, "val_miou": m.val_miou, "card": str(m.folder / "README.md")}
        for m in ZOO.values()
    ]
    out = human(args.json)
    for r in rows:
        print(
            f"{r['name']:<20} val mIoU {r['val_miou']:.2f}  {r['summary']}\n{'':<20} model card: {r['card']}", file=out
        )
    print("use: gcnseg predict --model NAME IMAGES... --out DIR  (also eval, export, vrf, serve)", file=out)
    write_json(args.json, rows)
    return 0
