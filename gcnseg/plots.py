"""Charts as PNG files: training curves (loss; validation mIoU) and an ablation table
(paper beside measured). matplotlib is imported when a chart is drawn, not before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ablate.tables import Table


def plot_curves(metrics_jsonl: Path, out_png: Path) -> Path:
    """The training loss (log scale) and the validation metrics of one run, by step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    for line in Path(metrics_jsonl).read_text().splitlines():
        r = json.loads(line)
        (val if r.get("split") == "val" else train).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    ax = axes[0]
    if train:
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="training loss")
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax = axes[1]
    if val:
        steps = [r["step"] for r in val]
        ax.plot(steps, [100 * r["miou"] for r in val], "o-", label="val mIoU")
        if "boundary_acc" in val[0]:
            ax.plot(steps, [100 * r["boundary_acc"] for r in val], "s--", label="boundary acc")
            ax.plot(steps, [100 * r["internal_acc"] for r in val], "^--", label="internal acc")
        ax.legend()
    ax.set_xlabel("step")
    ax.set_title("validation (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_table(table: Table, rows: list[dict[str, Any]], out_png: Path, labels: dict[str, str]) -> Path:
    """One panel per column: the paper's values (left axis) and the measured ones (right
    axis, its own scale: another dataset or budget shifts the level, the trend is what compares);
    head parameters share one log axis. ``rows``: :func:`gcnseg.ablate.report.network_row`;
    ``labels``: a column's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols = table.columns
    width = max(4.5, 0.7 * len(rows) + 2)
    fig, axes = plt.subplots(1, len(cols), figsize=(width * len(cols), 4.2), squeeze=False)
    x = np.arange(len(rows))
    nan = float("nan")
    for ax, c in zip(axes[0], cols):
        paper = np.array([r["paper"].get(c, nan) for r in rows], dtype=float)
        measured = np.array([r["measured"].get(c, nan) for r in rows], dtype=float)
        ax.set_xticks(x, [r["name"] for r in rows], rotation=30, ha="right")
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_title(labels[c])
        ax.grid(alpha=0.3)
        if c == "head_params":
            ax.plot(x - 0.1, paper, "D", color="#7f7f7f", label="paper")
            ax.plot(x + 0.1, measured, "o", color="#1f77b4", label="measured")
            ax.set_yscale("log")
            ax.set_ylabel("parameters of the res-5 head")
            ax.legend(fontsize=8)
            continue
        ax.plot(x - 0.1, paper, "D", color="#7f7f7f", label="paper")
        ax.set_ylabel("paper (%)", color="#7f7f7f")
        if np.isnan(paper).all():
            ax.set_yticks([])
        right = ax.twinx()
        right.plot(x + 0.1, measured, "o", color="#1f77b4", markersize=8, label="measured")
        right.set_ylabel("measured (%)", color="#1f77b4")
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="best")
    fig.suptitle(f"Table {table.number}: {table.title}")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)
