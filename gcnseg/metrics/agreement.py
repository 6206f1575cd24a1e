"""Argmax agreement: the share of pixels where two networks predict the same class (how
an optimised, compiled, int8 or float16 network is checked against float32)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


def label_agreement(pairs: Iterable[tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]]) -> float:
    """The share of pixels, over every ``(labels, reference)`` pair of label maps, whose
    class is the same in both; 0.0 if a pair's shapes differ (or there are no pixels)."""
    same = total = 0
    for labels, reference in pairs:
        a, b = torch.as_tensor(labels), torch.as_tensor(reference)
        if a.shape != b.shape:
            return 0.0
        same += int((a == b.to(a.device)).sum())
        total += b.numel()
    return same / total if total else 0.0
