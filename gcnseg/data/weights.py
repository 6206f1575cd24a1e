"""Class weights for a class-balanced cross-entropy, from a training split's label
frequencies (``gcnseg data weights``):

- ``enet``: ``1 / ln(1.02 + p_c)`` with ``p_c`` the share of labelled pixels of class c
  (Paszke et al., ENet, 2016);
- ``median``: median frequency balancing, ``median(f) / f_c`` with ``f_c`` the pixels
  of class c over the pixels of the images where c appears (Eigen and Fergus, 2015).

A class that never appears gets weight 0 (it cannot be learnt from this split).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DataError
from .base import SegmentationDataset

METHODS = ("enet", "median")


def class_pixels(ds: SegmentationDataset) -> tuple[np.ndarray, np.ndarray]:
    """Labelled pixels of each class, and pixels of the images where each class appears."""
    c = ds.num_classes
    pixels = np.zeros(c, dtype=np.int64)
    present_in = np.zeros(c, dtype=np.int64)
    for i in range(len(ds)):
        _, mask = ds.load(i)
        valid = mask != ds.ignore_index
        counts = np.bincount(mask[valid].ravel(), minlength=c)[:c]
        pixels += counts
        present_in += np.where(counts > 0, int(valid.sum()), 0)
    if pixels.sum() == 0:
        raise DataError(f"{ds.__class__.__name__}: no labelled pixel in this split")
    return pixels, present_in


def class_weights(pixels: np.ndarray, present_in: np.ndarray, method: str = "enet") -> list[float]:
    """The weights of :func:`class_pixels`' counts by ``method`` (module docstring)."""
    if method == "enet":
        p = pixels / pixels.sum()
        return [1 / math.log(1.02 + float(q)) if n > 0 else 0.0 for q, n in zip(p, pixels)]
    if method == "median":
        seen = pixels > 0
        freq = np.where(seen, pixels / np.maximum(present_in, 1), 0.0)
        median = float(np.median(freq[seen]))
        return [median / float(f) if s else 0.0 for f, s in zip(freq, seen)]
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
