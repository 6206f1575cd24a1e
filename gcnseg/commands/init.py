"""``gcnseg init DATA``: start a project on a folder of one's own images and masks: every
file checked, class weights from the training split, a config named after the data and
sized to it, with a comment on each choice (written to ``--out``, never over a file)."""

from __future__ import annotations

import argparse

from .args import add_overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", metavar="DATA", help="the folder: images/, masks/, classes.txt (train.txt, val.txt)")
    p.add_argument("--recipe", default="camvid_lite0", metavar="NAME|FILE", help="the recipe to start from")
    p.add_argument("--out", metavar="FILE", help="the config to write (default: DATA_NAME.yaml here)")
    p.add_argument(
        "--method", default="enet", choices=["enet", "median"], help="class weights: 1/ln(1.02+p) or median frequency"
    )
    add_overrides(p, "data.void=[11] (the recipe's keys, before the data is read)")


def data_and_overrides(first: str, rest: list[str]) -> tuple[str, list[str]]:
    """DATA and the KEY=VALUE overrides, in whichever order they were given
    (``gcnseg init data.void=[11] my_data`` as well as ``gcnseg init my_data data.void=[11]``)."""
    from ..config import is_override

    if not is_override(first):
        return first, rest
    folders = [item for item in rest if not is_override(item)]
    if len(folders) != 1:
        from ..errors import GcnsegError

        raise GcnsegError(f"expected one DATA folder beside the KEY=VALUE overrides, got {[first, *rest]}")
    return folders[0], [first, *(item for item in rest if item is not folders[0])]


def run(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from ..data.check import format_report
    from ..data.io import require_dir
    from ..errors import GcnsegError
    from ..project import init_project
    from ..runtime import atomic_write_text, check_output

    args.root, args.overrides = data_and_overrides(args.root, args.overrides)
    root = require_dir(Path(args.root), "a folder of images/ and masks/", "DATA/images/, DATA/masks/, DATA/classes.txt")
    out = Path(args.out) if args.out else Path(f"{root.resolve().name}.yaml")
    check_output(out, "--out")
    if out.exists():
        raise GcnsegError(f"--out {out}: exists; gcnseg init writes a new file (remove it or choose another)")
    project = init_project(root, args.recipe, args.overrides, args.method)
    cfg = project.config
    for split, report in project.reports.items():
        print(format_report(report, project.datasets[split], f"{root}/{split}"))
    if any(r.bad for r in project.reports.values()):
        again = shlex.join(["gcnseg", "data", "check", "--dataset", "folder", "--root", str(root), "--split", "all",
                            *args.overrides])  # fmt: skip
        print(f"gcnseg init: bad files above; nothing written (to list them again: {again})")
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, project.text)
    print(
        f"written {out}: {cfg.name}, {project.train_images} training and {project.val_images} validation images, "
        f"{cfg.train.epochs} epochs, class weights {project.weights}\n"
        f"next: gcnseg train --config {out}"
    )
    return 0
