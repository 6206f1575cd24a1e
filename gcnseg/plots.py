"""Charts as PNG files: training curves (loss; learning rate; validation mIoU) and an
ablation table (paper beside measured). matplotlib is imported when a chart is drawn, not before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ablate.tables import Table


def _pct(v: Any) -> float:
    """A [0, 1] metric in percent; NaN (a gap in the line) where undefined."""
    return 100 * float(v) if isinstance(v, (int, float)) else float("nan")


def curves_figure(metrics_jsonl: Path) -> Any:
    """The figure of :func:`plot_curves` (a matplotlib Figure; the caller closes it): the
    training loss (log scale), the learning rate (its schedule: warm-up, poly decay) and the
    validation metrics, by step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    for line in Path(metrics_jsonl).read_text().splitlines():
        r = json.loads(line)
        (val if r.get("split") == "val" else train).append(r)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    ax = axes[0]
    if train:
        marker = "o" if len(train) == 1 else None  # one logged step: a point, not an invisible line
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], marker=marker, label="training loss")
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax = axes[1]
    with_lr = [r for r in train if isinstance(r.get("lr"), (int, float))]
    if with_lr:
        marker = "o" if len(with_lr) == 1 else None
        ax.plot([r["step"] for r in with_lr], [r["lr"] for r in with_lr], color="#2ca02c", marker=marker, label="lr")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.set_xlabel("step")
    ax.set_ylabel("lr")
    ax.set_title("learning rate")
    ax.grid(alpha=0.3)
    ax = axes[2]
    if val:
        steps = [r["step"] for r in val]
        ax.plot(steps, [_pct(r.get("miou")) for r in val], "o-", label="val mIoU")
        if "boundary_acc" in val[0]:
            ax.plot(steps, [_pct(r.get("boundary_acc")) for r in val], "s--", label="boundary acc")
            ax.plot(steps, [_pct(r.get("internal_acc")) for r in val], "^--", label="internal acc")
        ax.legend()
    ax.set_xlabel("step")
    ax.set_title("validation (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_curves(metrics_jsonl: Path, out_png: Path) -> Path:
    """``curves.png`` of a run: the training loss, the learning rate and the validation
    metrics by step (:func:`curves_figure`)."""
    fig = curves_figure(metrics_jsonl)  # (which picks matplotlib's file-only backend)
    import matplotlib.pyplot as plt

    try:
        fig.savefig(out_png, dpi=100)
    finally:
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
