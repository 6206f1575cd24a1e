"""The per-class table and summary that ``gcnseg score`` and ``gcnseg eval`` print."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100.0 * v:.2f}"


def format_metrics(result: dict[str, Any], class_names: Sequence[str] | None = None) -> str:
    """Per-class IoU / accuracy table and a summary (percent), from a ``compute()`` dict.

    Classes absent from both ground truth and prediction show ``n/a`` and are left out of
    the means.
    """
    iou = result["iou"]
    acc = result.get("acc") or [None] * len(iou)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(iou))]
    if len(names) != len(iou):
        raise ValueError(f"{len(names)} class names for {len(iou)} classes")
    w = max([5] + [len(n) for n in names])
    lines = [f"{'class':<{w}}  {'IoU':>6}  {'acc':>6}", f"{'-' * w}  {'-' * 6}  {'-' * 6}"]
    lines += [f"{n:<{w}}  {_pct(i):>6}  {_pct(a):>6}" for n, i, a in zip(names, iou, acc)]
    lines.append("")
    summary = [
        ("mIoU", result.get("miou")),
        ("pixel acc", result.get("pixel_acc")),
        ("mean acc", result.get("mean_acc")),
        ("fwIoU", result.get("fwiou")),
    ]
    if "boundary_acc" in result:
        width = result.get("boundary_width")
        sfx = f" (width {width:g})" if isinstance(width, (int, float)) else ""
        summary += [(f"boundary acc{sfx}", result["boundary_acc"]), ("internal acc", result["internal_acc"])]
    sw = max(len(k) for k, _ in summary)
    lines += [f"{k:<{sw}}  {_pct(v):>6}" for k, v in summary]
    if "pixels" in result:
        lines.append(f"{'pixels':<{sw}}  {result['pixels']}")
    return "\n".join(lines)
