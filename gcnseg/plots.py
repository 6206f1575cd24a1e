"""Training curves as a PNG (loss and learning rate; validation mIoU)."""

from __future__ import annotations

import json
from pathlib import Path


def plot_curves(metrics_jsonl: Path, out_png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = [], []
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
