"""Round-robin timing in one process: medians, and ratios against a reference timed in
the same rounds (these machines are noisy; ratios are what compare)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def round_times(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each function, ``repeats`` rounds, each round calling every function once."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def median_times(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin."""
    return {name: statistics.median(ts) for name, ts in round_times(fns, repeats, warmup).items()}


def ratio_rows(times: dict[str, list[float]], reference: str) -> list[dict[str, Any]]:
    """Median ms and ratio of each function; the ratio is the median over rounds of
    (time / the reference's time in the same round), so a slow spell of the machine
    that lasts a few rounds moves both and cancels out."""
    ref = times[reference]
    return [
        {"name": n, "ms": 1000 * statistics.median(ts), "ratio": statistics.median(t / r for t, r in zip(ts, ref))}
        for n, ts in times.items()
    ]


def sync(device: str) -> None:
    """Wait for the GPU's queued work, so that a timed call includes it."""
    if device != "cpu":
        torch.cuda.synchronize()


def describe_path(model: Any, amp: Any = None) -> str:
    """The inference path a bench row ran, in words: eager, optimised (and its precision),
    compiled, or int8 (ONNX Runtime)."""
    from ..compiled import CompiledModel
    from ..int8 import Int8Model
    from ..optimize import InferenceModel

    if isinstance(model, CompiledModel):
        return "compiled " + describe_path(model.model)
    if isinstance(model, Int8Model):
        records = list(model.records.values())
        if not records:
            return f"{describe_path(model.fallback)} (int8 refused: agreement)"
        r = records[0]
        return f"int8 onnxruntime ({r['float32_convolutions']}/{r['convolutions']} convs float32)"
    if isinstance(model, InferenceModel):
        return "optimised bf16 backbone" if model.backbone_dtype != torch.float32 else "optimised fp32"
    return "eager bf16 autocast" if amp is not None else "eager fp32"
