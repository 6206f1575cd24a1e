"""Scan a whole split for bad files and report them all at once (``gcnseg data check``)."""

from __future__ import annotations

from collections import Counter
from typing import Any
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .base import SegmentationDataset

# problem kind -> phrases that the DataError messages of gcnseg.data use
KINDS = {
    "missing file": ("is missing", "missing mask"),
    "unreadable file": ("cannot read", "not a valid"),
    "size mismatch": ("does not match",),
    "bad label values": ("label values", "label ids", "invalid"),
}


def problem_kind(message: str) -> str:
    """The kind of problem a ``DataError`` message describes (for the counts of the report)."""
    for kind, phrases in KINDS.items():
        if any(p in message for p in phrases):
            return kind
    return "other"


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`: counts and one message per bad item."""

    total: int = 0
    errors: list[str] = field(default_factory=list)
    pixels: np.ndarray | None = None  # labelled pixels per class over the good items
    ignored: int = 0

    @property
    def bad(self) -> int:
        return len(self.errors)

    @property
    def kinds(self) -> Counter:
        return Counter(problem_kind(e) for e in self.errors)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (``gcnseg data check --json``)."""
        return {
            "total": self.total,
            "bad": self.bad,
            "kinds": dict(self.kinds),
            "errors": list(self.errors),
            "pixels": None if self.pixels is None else [int(n) for n in self.pixels],
            "ignored": self.ignored,
        }


def check_dataset(ds: SegmentationDataset) -> CheckReport:
    """Load every item of ``ds``; collect each ``DataError`` instead of stopping at the first."""
    pixels = np.zeros(ds.num_classes, dtype=np.int64)
    report = CheckReport(total=len(ds), pixels=pixels)
    for i in range(len(ds)):
        try:
            _, mask = ds.load(i)
        except DataError as e:
            report.errors.append(str(e))
            continue
        valid = mask != ds.ignore_index
        pixels += np.bincount(mask[valid].ravel(), minlength=ds.num_classes)[: ds.num_classes]
        report.ignored += int((~valid).sum())
    return report


def format_report(report: CheckReport, ds: SegmentationDataset, what: str) -> str:
    """Human-readable summary: counts, problem kinds, each bad file, class pixel shares."""
    items = "item" if report.total == 1 else "items"
    lines = [f"{what}: checked {report.total} {items}, {report.total - report.bad} ok, {report.bad} bad"]
    lines += [f"  {kind}: {n}" for kind, n in sorted(report.kinds.items())]
    if report.errors:
        lines.append("bad files:")
        lines += [f"  {e}" for e in report.errors]
    if report.pixels is not None and report.pixels.sum() > 0:
        total = report.pixels.sum() + report.ignored
        lines.append(f"labelled pixels per class ({total} pixels, {100 * report.ignored / total:.1f}% ignored):")
        lines += [f"  {i:3d} {c}: {100 * n / total:.2f}%" for i, (c, n) in enumerate(zip(ds.classes, report.pixels))]
    return "\n".join(lines)
