"""``gcnseg models``: the trained models that ship with gcnseg, usable wherever a
checkpoint is taken (``--model NAME``)."""

from __future__ import annotations

import argparse
import json

from . import ZOO


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def run(args: argparse.Namespace) -> int:
    rows = []
    for m in ZOO.values():
        meta = json.loads((m.folder / "model.json").read_text()) if (m.folder / "model.json").is_file() else {}
        miou = (meta.get("metrics") or {}).get("miou")
        rows.append({"name": m.name, "summary": m.summary, "val_miou": miou, "card": str(m.folder / "README.md")})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        score = f"val mIoU {100 * r['val_miou']:.2f}" if r["val_miou"] is not None else "not installed"
        print(f"{r['name']:<20} {score}  {r['summary']}\n{'':<20} model card: {r['card']}")
    print("use: gcnseg predict --model NAME IMAGES... --out DIR  (also eval, export, vrf, serve)")
    return 0
