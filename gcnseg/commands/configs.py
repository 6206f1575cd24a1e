"""``gcnseg configs``: the recipes that ship with gcnseg, by name (``--config NAME`` in every
command that takes a config); ``gcnseg configs NAME`` prints one, to copy and edit."""

from __future__ import annotations

import argparse

from .args import add_json, check_json, human, write_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", metavar="NAME", help="print this recipe's YAML (comments included)")
    add_json(p, "the list (name, file, summary)")


def run(args: argparse.Namespace) -> int:
    from ..config import config_path, recipe_summary, recipes

    if args.name:
        print(config_path(args.name).read_text(), end="")
        return 0
    check_json(args.json)
    rows = [{"name": n, "file": str(p), "summary": recipe_summary(p)} for n, p in recipes().items()]
    width = max(len(r["name"]) for r in rows)
    out = human(args.json)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['summary']}", file=out)
    print("use: gcnseg train --config NAME [KEY=VALUE ...]; gcnseg configs NAME prints one", file=out)
    write_json(args.json, rows)
    return 0
