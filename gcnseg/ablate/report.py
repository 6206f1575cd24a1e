"""The report of an ablation: ``tableN.json`` (rows), ``tableN.md`` (paper beside
measured) and ``tableN.png`` (:func:`gcnseg.plots.plot_table`).

Measured values are the final validation of each run (``summary.json``
``final``, not the best step). Head parameters are counted like the paper's
Tables 2 and 4, for the res-5 head (``model.heads[3]``), and for all four heads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from .tables import LABELS, METRICS, Network, Table


def head_params(cfg: Config, num_classes: int) -> tuple[int, int]:
    """Parameters of the res-5 score head (as in Tables 2 and 4) and of all four heads."""
    from ..models import build_head, encoder_channels, per_stage_k

    channels = encoder_channels(cfg.model.backbone)
    with torch.device("meta"):  # shapes only: no memory, no initialisation (Table 4 heads hold 10^8 weights)
        counts = [
            sum(p.numel() for p in build_head(cfg.model.head, c, num_classes, k, cfg.model.m).parameters())
            for c, k in zip(channels, per_stage_k(cfg.model.k))
        ]
    return counts[3], sum(counts)


def network_row(net: Network, cfg: Config, summary: dict[str, Any] | None, num_classes: int | None) -> dict[str, Any]:
    """One network's entry of ``tableN.json``: pending until its summary exists; head
    parameters once the number of classes is known (from the first checkpoint)."""
    row: dict[str, Any] = {
        "name": net.name,
        "slug": net.slug,
        "run_dir": cfg.out_dir,
        "set": net.set,
        "paper": net.paper,
        "status": "pending",
        "measured": {},
    }
    if summary is not None:
        final = summary["final"]
        row.update(
            status="done",
            steps=summary["steps"],
            train_seconds=summary["train_seconds"],
            measured={k: 100 * final[k] for k in METRICS if isinstance(final.get(k), (int, float))},
        )
    if num_classes is not None:
        res5, heads = head_params(cfg, num_classes)
        row["head_params"] = {"res5": res5, "all": heads}
        row["measured"]["head_params"] = res5
    return row


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = round(seconds)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def _cell(value: float | None, column: str, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column == "head_params":
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def format_markdown(table: Table, rows: list[dict[str, Any]], context: dict[str, Any]) -> str:
    """The report: paper and measured values side by side, head parameters, time, and the setting."""
    header = ["Network"]
    for c in table.columns:
        header += (
            [f"{LABELS[c]} (paper)", f"{LABELS[c]} (measured)"] if c != "head_params" else [f"{LABELS[c]} (paper)"]
        )
    header += ["res-5 head params", "all heads params", "steps", "train time"]
    lines = [
        f"# Table {table.number}: {table.title}",
        "",
        "Paper: Peng et al., *Large Kernel Matters*, CVPR 2017, Section 4.1 (ResNet-152, VOC 2012 val). "
        "Measured: `gcnseg ablate`, final validation of each run, in %; "
        "head parameters counted for this setting's classes and backbone (the paper: 21 classes, ResNet-152).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" + "---:|" * (len(header) - 1),
    ]
    for r in rows:
        cells = [r["name"]]
        for c in table.columns:
            cells.append(_cell(r["paper"].get(c), c, digits=1))
            if c != "head_params":
                cells.append(_cell(r["measured"].get(c), c))
        hp = r.get("head_params", {})
        cells += [
            _cell(hp.get("res5"), "head_params"),
            _cell(hp.get("all"), "head_params"),
            str(r.get("steps", "-")),
            _duration(r["train_seconds"]) if "train_seconds" in r else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Setting",
        "",
        f"- command: `{context['command']}`",
        f"- table file: `{context['table_file']}`",
        f"- base config: `{context['config']}`",
        f"- seed: {context['seed']}",
        f"- budget: {context['budget']}",
        f"- overrides for every network: {', '.join(f'`{o}`' for o in context['overrides']) or 'none'}",
        "- networks:",
    ]
    lines += [
        f"  - {r['name']} (`{r['run_dir']}`): " + ", ".join(f"`{k}={v}`" for k, v in r["set"].items()) for r in rows
    ]
    lines += [
        "",
        "Configuration shared by the networks (each network's settings above replace its keys):",
        "",
        "```yaml",
        context["common_yaml"].rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_report(out: Path, table: Table, rows: list[dict[str, Any]], context: dict[str, Any]) -> dict[str, Path]:
    """Write ``tableN.md``, ``tableN.json`` and ``tableN.png`` into ``out``."""
    from ..plots import plot_table
    from ..runtime import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"table{table.number}"
    doc = {
        "table": table.number,
        "title": table.title,
        "columns": table.columns,
        "units": "percent; head params: count",
        **{k: v for k, v in context.items() if k != "common_yaml"},
        "networks": rows,
    }
    atomic_write_text(stem.with_suffix(".json"), json.dumps(doc, indent=2))
    atomic_write_text(stem.with_suffix(".md"), format_markdown(table, rows, context))
    plot_table(table, rows, stem.with_suffix(".png"), LABELS)
    return {"md": stem.with_suffix(".md"), "json": stem.with_suffix(".json"), "png": stem.with_suffix(".png")}
