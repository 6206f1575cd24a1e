"""What a run tells: ``metrics.jsonl``, TensorBoard events, ``train.log`` (what the
terminal showed, as plain text) and the closing summary."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runtime import atomic_write_text, warn

if TYPE_CHECKING:
    import numpy as np

# values that stay the same all through a run (the validation split's pixel counts, the
# boundary band's width): kept in metrics.jsonl, never drawn as TensorBoard curves
CONSTANTS = frozenset({"pixels", "unassigned_pixels", "boundary_pixels", "internal_pixels", "boundary_width"})
GROUPS = {"per_class_iou": "iou"}  # a record's mapping -> its TensorBoard group: val/iou/<class>


def _print(text: str) -> None:
    print(text, flush=True)


def tag_part(name: str) -> str:
    """A class name as one part of a TensorBoard tag (no ``/``, no spaces)."""
    return re.sub(r"[^-\w.]", "_", str(name)) or "_"


def record_line(record: dict[str, Any]) -> str:
    """A log record as the line ``train.log`` keeps: ``step 20: loss 0.4213  lr 9.81e-03  img/s 5.2``."""
    shown = {
        "loss": ("loss", "{:.4f}"),
        "lr": ("lr", "{:.2e}"),
        "img_per_s": ("img/s", "{:.1f}"),
    }  # as the bar shows them
    parts = []
    for k, v in record.items():
        if k in ("step", "split") or not isinstance(v, (int, float)):
            continue
        label, fmt = shown.get(k, (k, "{:.4g}"))
        parts.append(f"{label} {fmt.format(v)}")
    split = record.get("split", "train")
    return f"step {record.get('step')}: {'' if split == 'train' else split + ' '}{'  '.join(parts)}"


class RunLog:
    """metrics.jsonl, TensorBoard events and train.log (written by the main process only).

    ``resume_at``: the step of the checkpoint a resumed run continues from; the records of
    later steps (written by the process that was stopped) are dropped, from metrics.jsonl
    and TensorBoard, so that each step appears once. ``train.log`` is only ever appended to
    (a resumed run says where it took up again)."""

    def __init__(self, run_dir: Path, enabled: bool, resume_at: int | None = None) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.text_path: Path | None = run_dir / "train.log" if enabled else None
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
        """One record: a line of metrics.jsonl, its changing numbers as TensorBoard scalars
        (a mapping such as ``per_class_iou`` as one scalar per key: ``val/iou/<class>``) and,
        for a training record, a readable line of train.log."""
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        tag = record.get("split", "train")
        if tag == "train":
            self._append(record_line(record))
        if self.tb is not None:
            for k, v in record.items():
                if k == "step" or k in CONSTANTS:
                    continue
                if isinstance(v, dict):
                    for name, x in v.items():
                        self._scalar(f"{tag}/{GROUPS.get(k, k)}/{tag_part(name)}", x, record["step"])
                else:
                    self._scalar(f"{tag}/{k}", v, record["step"])

    def _scalar(self, tag: str, v: Any, step: int) -> None:
        if self.tb is not None and isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            self.tb.add_scalar(tag, v, step)

    def line(self, text: str, echo: Callable[[str], None] | None = _print) -> None:
        """A line (or several) of what the run says: shown by ``echo`` (None: not shown) and,
        in the main process, appended to train.log."""
        if echo is not None:
            echo(text)
        self._append(text)

    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        """An ``HxWx3`` uint8 picture in TensorBoard; a picture that cannot be added is a warning."""
        if self.tb is None:
            return
        try:
            self.tb.add_image(tag, picture, step, dataformats="HWC")
        except Exception as e:  # a picture must never lose a finished run
            warn(f"could not add {tag} to TensorBoard ({e})")

    def _append(self, text: str) -> None:
        """Plain appends to train.log (the run folder has one writer); a log that cannot be
        written is a warning, once, never a stopped run."""
        if self.text_path is None:
            return
        try:
            with open(self.text_path, "a") as f:
                f.write(text.rstrip("\n") + "\n")
        except OSError as e:
            warn(f"{self.text_path}: {e.strerror or e}; train.log is not written")
            self.text_path = None

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


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
