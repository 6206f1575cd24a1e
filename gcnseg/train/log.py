"""What a run tells: ``metrics.jsonl``, TensorBoard events, and the closing summary."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..runtime import atomic_write_text


class RunLog:
    """metrics.jsonl and TensorBoard events (written by the main process only).

    ``resume_at``: the step of the checkpoint a resumed run continues from; the records of
    later steps (written by the process that was stopped) are dropped, from both, so that
    each step appears once."""

    def __init__(self, run_dir: Path, enabled: bool, resume_at: int | None = None) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if enabled and resume_at is not None and self.path.is_file():
            self._keep_until(resume_at)
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                purge = None if resume_at is None else resume_at + 1
                self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)
            except ImportError:  # tensorboard is a dependency; keep training without it anyway
                self.tb = None

    def _keep_until(self, step: int) -> None:
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # the half-written last line of a killed process
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                kept.append(line + "\n")
        atomic_write_text(self.path, "".join(kept))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            tag = record.get("split", "train")
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step" and not (isinstance(v, float) and math.isnan(v)):
                    self.tb.add_scalar(f"{tag}/{k}", v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def pct(v: float | None) -> str:
    """A [0, 1] metric in percent; ``n/a`` when undefined (no scored pixel, no validation yet)."""
    return "n/a" if v is None or v < 0 else f"{100 * v:.2f}"


def format_summary(s: dict[str, Any]) -> str:
    """The lines ``gcnseg train`` prints at the end."""
    f = s["final"]
    lines = [
        f"done: {s['steps']} steps in {s['train_seconds']:.0f} s",
        f"val mIoU {pct(f['miou'])}  pixel acc {pct(f['pixel_acc'])}"
        + (
            f"  boundary acc {pct(f['boundary_acc'])}  internal acc {pct(f['internal_acc'])}"
            if "boundary_acc" in f
            else ""
        ),
        f"best mIoU {pct(s['best']['miou'])} at step {s['best']['step']}",
        f"run folder     {s['run_dir']}",
        f"best weights   {s['best_checkpoint']}",
    ]
    if "curves" in s:
        lines.append(f"curves         {s['curves']}")
    if "previews" in s:
        lines.append(f"predictions    {s['previews']}")
    return "\n".join(lines)
