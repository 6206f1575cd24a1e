"""Issue 24's recipe search on CamVid: every candidate of camvid_recipe_table.yaml
trained on two training sequences and scored, at its last step, on the third (unseen)
and on the official val, each without and with flip at test time.

    python benchmarks/camvid_recipe.py --camvid CAMVID --out runs/recipe [--only SLUG ...] \
        [--seed 0] [--threads 1] [--amp auto] [--unseen 0006R0]

``--unseen`` is the training sequence left out (0006R0 or 0001TP; the other two train;
val is all 0016E5, which always trains). Runs resume, and finished ones already scored
are not scored again, so the search may span sessions. Writes one JSON per candidate
and seed into benchmarks/results/camvid_recipe/: the scores, with the instruction set
the run trained on and its time, named seedN-SLUG.json (seedN-SLUG-unseen-SEQ.json where
another sequence than 0006R0 is left out); and table.md, every candidate done so far.
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
from gcnseg.errors import GcnsegError, Stopped
from gcnseg.runtime import atomic_write_text

HERE = Path(__file__).resolve().parent
TABLE = HERE / "camvid_recipe_table.yaml"
RESULTS = HERE / "results" / "camvid_recipe"  # (--results)
SEQUENCES = ("0016E5", "0001TP", "0006R0")  # CamVid's training sequences (val: 0016E5's frames)
UNSEEN, VAL = "0006R0", "val"  # the table file's left-out sequence, and the official val


def result_name(seed: int, slug: str, unseen: str) -> str:
    return f"seed{seed}-{slug}" + ("" if unseen == UNSEEN else f"-unseen-{unseen}") + ".json"


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
    changes = ", ".join([f"`{k}={v}`" for k, v in result["set"].items()] + [f"`{x}`" for x in result.get("extra", [])])
    changes = changes or "the shipped recipe"
    where = f"{result['threads']} thread{'s' * (result['threads'] > 1)}, {result['isa']}, {result['amp']}"
    unseen = result.get("unseen", UNSEEN)
    return (
        f"| {result['name']} | {result['seed']} | {unseen} | {' | '.join(cells)} | {minutes:.0f} min ({where}) "
        f"| {changes} |"
    )


def write_table(order: list[str], results: Path) -> Path:
    """table.md: every candidate with results (every seed), in the table file's order."""
    found = [json.loads(path.read_text()) for path in sorted(results.glob("seed*.json"))]
    # by each result's own slug: a file name's pattern would also match a slug that ends another
    # ("ohem-0-7" in "scale-0-5-2-0-ema-0-998-ohem-0-7")
    key = {slug: i for i, slug in enumerate(order)}
    found = [r for r in found if r["slug"] in key]
    found.sort(key=lambda r: (key[r["slug"]], r.get("unseen", UNSEEN) != UNSEEN, r.get("unseen", UNSEEN), r["seed"]))
    rows = [row(r) for r in found]
    head = (
        "| candidate | seed | unseen sequence | its mIoU | + flip | val | + flip | training | changes |\n"
        "|---|---:|---|---:|---:|---:|---:|---|---|\n"
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
    ap.add_argument("--unseen", default=UNSEEN, choices=SEQUENCES[1:], help="the training sequence left out")
    ap.add_argument(
        "--set", nargs="*", default=[], help="more overrides of every run (a dry run: data.crop_size=[64,64] ...)"
    )
    args = ap.parse_args()
    if args.set and args.results == RESULTS:
        sys.exit("--set changes the recipe of every run: give --results DIR, not the search's own results")
    torch.set_num_threads(args.threads)
    table = load_table(TABLE)
    overrides = [
        f"data.root={args.camvid}",
        f"train.threads={args.threads}",
        f"train.amp={args.amp}",
        "train.max_minutes=null",
        "train.previews=0",
        "data.train_split=train:" + ",".join(s for s in SEQUENCES if s != args.unseen),
        f"data.val_split=train:{args.unseen}",
        *args.set,
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
        status, summary = run_network(cfg, show_progress=False)
        saved = args.results / result_name(args.seed, net.slug, args.unseen)
        if status == "done" and saved.is_file() and json.loads(saved.read_text())["steps"] == summary["steps"]:
            print(row(json.loads(saved.read_text())), "(scored before)", flush=True)
            continue
        run_dir = Path(cfg.out_dir)
        scores = {
            "unseen": score(run_dir, f"train:{args.unseen}", False),
            "unseen_flip": score(run_dir, f"train:{args.unseen}", True),
            "val": score(run_dir, VAL, False),
            "val_flip": score(run_dir, VAL, True),
        }
        result = {
            "name": net.name,
            "slug": net.slug,
            "set": net.set,
            "seed": args.seed,
            "unseen": args.unseen,
            "extra": args.set,
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
        atomic_write_text(saved, json.dumps(result, indent=2))
        print(row(result), flush=True)
        print(write_table(slugs, args.results), flush=True)  # after each candidate: a search may stop any time


if __name__ == "__main__":
    try:
        main()
    except GcnsegError as e:  # a bad folder or setting: one line, as gcnseg's own commands say it
        sys.exit(f"camvid_recipe: error: {e}")
    except Stopped as e:  # SIGTERM / Ctrl-C: the same command takes the search up again (and scores)
        print(f"camvid_recipe: {e.message}; go on with the same command", file=sys.stderr)
        sys.exit(e.exit_code)
