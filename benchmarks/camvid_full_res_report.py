"""Issue 24's full-resolution Tables 1 and 5 over seeds, from the runs' summaries: per
network the mean and spread (min-max) of mIoU, boundary and internal accuracy; per seed
the difference of each network to the 1x1 baseline of the same seed, of GCN k=15 to GCN
k=5 (Table 1's question) and of GCN k=15 + BR to GCN k=15 (Table 5's); per class the
mean IoU.

    python benchmarks/camvid_full_res_report.py [RESULTS]   # default: benchmarks/results/camvid_full_res

RESULTS holds one folder per run, SEED-SLUG (seed0-baseline, seed1-gcn-k-15, ...), each
with the run's summary.json (copied there from runs/full-res/seedS/SLUG/) and eval.json,
its last checkpoint scored in float32 by

    gcnseg eval --checkpoint runs/full-res/seedS/SLUG/last.json --eager --json RESULTS/seedS-SLUG/eval.json

(the runs' own validation ran under their bf16 autocast until session 9; eval.json is what
the tables use, the summary where it is missing, marked *). Prints Markdown.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from gcnseg.data.camvid import CAMVID_CLASSES

HERE = Path(__file__).resolve().parent
ORDER = {
    "baseline": "1x1 baseline",
    **{f"gcn-k-{k}": f"GCN k={k}" for k in range(3, 16, 2)},  # Table 1's k (the CPU runs: 5 and 15)
    "gcn-k-15-br": "GCN k=15 + BR",
}
METRICS = ("miou", "boundary_acc", "internal_acc")


def read(results: Path) -> dict[str, dict[int, dict]]:
    """``slug -> seed -> metrics`` of every finished run under ``results``: its float32
    ``eval.json``, else its summary's last validation (``"from_summary": True``)."""
    runs: dict[str, dict[int, dict]] = {}
    for summary in sorted(results.glob("seed*-*/summary.json")):
        m = re.fullmatch(r"seed(\d+)-(.+)", summary.parent.name)
        if m and m.group(2) in ORDER:
            scored = summary.parent / "eval.json"
            metrics = (
                json.loads(scored.read_text())
                if scored.is_file()
                else {**json.loads(summary.read_text())["final"], "from_summary": True}
            )
            runs.setdefault(m.group(2), {})[int(m.group(1))] = metrics
    return runs


def spread(values: list[float | None], extremes: bool = True) -> str:
    """``mean (min-max)`` in % (the mean alone without ``extremes`` or for one value;
    n/a where a run has none)."""
    if any(x is None for x in values):
        return "n/a"
    v = [100 * x for x in values if x is not None]
    mean = sum(v) / len(v)
    return f"{mean:.2f}" if len(v) == 1 or not extremes else f"{mean:.2f} ({min(v):.2f}-{max(v):.2f})"


def paired(runs: dict[str, dict[int, dict]], reference: str, slugs: list[str]) -> list[str]:
    """Markdown lines: each network of ``slugs`` minus ``reference`` of the same seed, per
    seed and their mean (points, mIoU / boundary / internal)."""
    base = runs.get(reference, {})
    if not base or not any(s in runs for s in slugs):
        return []
    name = ("the " if reference == "baseline" else "") + ORDER[reference]
    lines = ["", f"Paired with {name} of the same seed (points, mIoU / boundary / internal):", ""]
    lines += ["| network | " + " | ".join(f"seed {s}" for s in sorted(base)) + " | mean |"]
    lines += ["|---|" + "---:|" * (len(base) + 1)]
    unpaired = sorted({f"{ORDER[s]} seed {seed}" for s in slugs if s in runs for seed in runs[s] if seed not in base})
    for slug in slugs:
        if slug not in runs:
            continue
        cells, diffs = [], []
        for seed in sorted(base):
            f = runs[slug].get(seed)
            if f is None:
                cells.append("")
                continue
            d = [100 * (f[k] - base[seed][k]) for k in METRICS]
            diffs.append(d)
            cells.append(" / ".join(f"{x:+.2f}" for x in d))
        mean = " / ".join(f"{sum(c) / len(diffs):+.2f}" for c in zip(*diffs)) if diffs else ""
        lines.append(f"| {ORDER[slug]} | {' | '.join(cells)} | {mean} |")
    if unpaired:
        lines += ["", f"Not paired (no {name} of that seed yet): {', '.join(unpaired)}."]
    return lines


def report(runs: dict[str, dict[int, dict]]) -> str:
    lines = ["| network | seeds | mIoU | boundary acc. | internal acc. |", "|---|---:|---:|---:|---:|"]
    for slug, name in ORDER.items():
        seeds = runs.get(slug, {})
        if seeds:
            cells = [spread([f[k] for f in seeds.values()]) for k in METRICS]
            marked = [f"{s}*" if seeds[s].get("from_summary") else str(s) for s in sorted(seeds)]
            lines.append(f"| {name} | {', '.join(marked)} | {' | '.join(cells)} |")
    if any(f.get("from_summary") for seeds in runs.values() for f in seeds.values()):
        lines += ["", "*: the run's own validation (bf16 autocast), not yet scored in float32."]
    lines += paired(runs, "baseline", [s for s in ORDER if s != "baseline"])
    lines += paired(runs, "gcn-k-5", ["gcn-k-15"])  # Table 1's question: does mIoU grow with k?
    lines += paired(runs, "gcn-k-15", ["gcn-k-15-br"])  # Table 5's question: does BR help the boundary?
    lines += ["", "Per class, IoU % (mean over seeds):", ""]
    lines += ["| class | " + " | ".join(ORDER[s] for s in ORDER if s in runs) + " |"]
    lines += ["|---|" + "---:|" * sum(s in runs for s in ORDER)]
    for c, name in enumerate(CAMVID_CLASSES):
        row = [spread([f["iou"][c] for f in runs[s].values()], extremes=False) for s in ORDER if s in runs]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(read(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "camvid_full_res")))
