"""Issue 24's recipe search on CamVid: every candidate of camvid_recipe_table.yaml
trained on two training sequences and scored, at its last step, on the third (unseen)
and on the official val, each without and with flip at test time.

    python benchmarks/camvid_recipe.py --camvid CAMVID --out runs/recipe [--only SLUG ...] \
        [--seed 0] [--threads 1] [--amp auto]

Runs resume (and finished ones are skipped), so the search may span sessions. Writes
benchmarks/results/camvid_recipe/seedN-SLUG.json (the scores, with the instruction set the
run trained on and its time) and table.md (every candidate done so far).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from gcnseg.ablate import load_table, network_configs, run_network
from gcnseg.commands import main as gcnseg
from gcnseg.data.camvid import CAMVID_CLASSES
from gcnseg.runtime import atomic_write_text

HERE = Path(__file__).resolve().parent
TABLE = HERE / "camvid_recipe_table.yaml"
RESULTS = HERE / "results" / "camvid_recipe"  # (--results)
UNSEEN, VAL = "train:0006R0", "val"


def score(run_dir: Path, split: str, flip: bool) -> dict:
    """``gcnseg eval`` of the run's last checkpoint on ``split`` (float32, the plain model)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "metrics.json"
        argv = ["eval", "--checkpoint", str(run_dir / "last.json"), "--split", split, "--eager", "--no-progress"]
        if gcnseg(argv + (["--flip"] if flip else []) + ["--json", str(out)]) != 0:
            raise SystemExit(f"eval of {run_dir} on {split} failed")
        return json.loads(out.read_text())


def row(result: dict) -> str:
    """One Markdown row: unseen and val mIoU, without and with flip."""
    s = result["scores"]
    cells = [f"{100 * s[k]['miou']:.2f}" for k in ("unseen", "unseen_flip", "val", "val_flip")]
    minutes = result["train_seconds"] / 60
    changes = ", ".join(f"`{k}={v}`" for k, v in result["set"].items()) or "the shipped recipe"
    where = f"{result['threads']} thread{'s' * (result['threads'] > 1)}, {result['isa']}, {result['amp']}"
    return f"| {result['name']} | {result['seed']} | {' | '.join(cells)} | {minutes:.0f} min ({where}) | {changes} |"


def write_table(order: list[str], results: Path) -> Path:
    """table.md: every candidate with results (every seed), in the table file's order."""
    rows = []
    for slug in order:
        for path in sorted(results.glob(f"seed*-{slug}.json")):
            rows.append(row(json.loads(path.read_text())))
    head = (
        "| candidate | seed | unseen 0006R0 | + flip | val | + flip | training | changes |\n"
        "|---|---:|---:|---:|---:|---:|---|---|\n"
    )
    out = results / "table.md"
    atomic_write_text(out, head + "\n".join(rows) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--camvid", required=True, help="the CamVid folder (SegNet layout)")
    ap.add_argument("--out", default="runs/recipe", help="one run folder per candidate (seeds: one --out each)")
    ap.add_argument("--only", nargs="*", help="candidates' folder names (default: all)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the JSON files and table.md go")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--amp", default="auto", help="train.amp of every run (keep one per search)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    table = load_table(TABLE)
    overrides = [
        f"data.root={args.camvid}",
        f"train.threads={args.threads}",
        f"train.amp={args.amp}",
        "train.max_minutes=null",
        "train.previews=0",
    ]
    configs = network_configs(table, Path(args.out), overrides=overrides, seed=args.seed)
    slugs = [n.slug for n in table.networks]
    unknown = set(args.only or []) - set(slugs)
    if unknown:
        sys.exit(f"--only: no candidates {sorted(unknown)} (the table has {', '.join(slugs)})")
    args.results.mkdir(parents=True, exist_ok=True)
    for net, cfg in zip(table.networks, configs):
        if args.only and net.slug not in args.only:
            continue
        print(f"{net.name} -> {cfg.out_dir}", flush=True)
        _, summary = run_network(cfg, show_progress=False)
        run_dir = Path(cfg.out_dir)
        scores = {
            "unseen": score(run_dir, UNSEEN, False),
            "unseen_flip": score(run_dir, UNSEEN, True),
            "val": score(run_dir, VAL, False),
            "val_flip": score(run_dir, VAL, True),
        }
        result = {
            "name": net.name,
            "slug": net.slug,
            "set": net.set,
            "seed": args.seed,
            "steps": summary["steps"],
            "train_seconds": summary["train_seconds"],
            "isa": summary["runtime"]["cpu"],
            "threads": summary["runtime"]["threads"],
            "amp": summary["runtime"]["amp"],
            "classes": CAMVID_CLASSES,
            "scores": {
                k: {m: v[m] for m in ("miou", "boundary_acc", "internal_acc", "iou")} for k, v in scores.items()
            },
        }
        atomic_write_text(args.results / f"seed{args.seed}-{net.slug}.json", json.dumps(result, indent=2))
        print(row(result), flush=True)
        print(write_table(slugs, args.results), flush=True)  # after each candidate: a search may stop any time


if __name__ == "__main__":
    main()
