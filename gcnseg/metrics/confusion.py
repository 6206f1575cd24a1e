"""The confusion matrix (rows: ground truth, columns: prediction) and everything the
paper's "standard mean IoU" derives from it; conventions in :mod:`gcnseg.metrics`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..runtime import all_reduce_sum_


def as_labels(x: Any) -> np.ndarray:
    """Integer labels as a numpy array on the CPU, in uint8 / int16 when the values fit.

    The per-pixel work is memory-bound, so int64 labels (typical from a loader or an
    argmax) cost more than bytes. It runs in numpy, single-threaded: for these cheap
    passes on a small or busy CPU that beats torch's intra-op threads (docs/performance.md).
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype.kind == "b":
        return a.view(np.uint8)
    if a.dtype.kind not in "iu":
        raise TypeError(f"labels must be integer class ids (take argmax of scores first), got {a.dtype}")
    if a.itemsize == 1 or a.size == 0:
        return a
    lo, hi = int(a.min()), int(a.max())
    if lo >= 0 and hi <= 255:
        return a.astype(np.uint8)
    if a.itemsize > 2 and lo >= -(2**15) and hi < 2**15:
        return a.astype(np.int16)
    return a


def ratio(num: float, den: float) -> float | None:
    """``num / den``, or None (undefined) when nothing was counted."""
    return float(num) / float(den) if den > 0 else None


class ConfusionMatrix:
    """Confusion matrix ``matrix[gt, pred]`` (int64) accumulated over batches.

    ``update`` costs one ``np.bincount`` over ``target * C + pred`` on small integer
    types; ignore pixels land in bins that are dropped, so no boolean mask or indexing
    (which copies) is needed in the usual case of an ``ignore_index`` >= C. The matrix is
    a torch tensor (CPU unless ``device`` says otherwise) so it can be all-reduced.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255, device: torch.device | str = "cpu"):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=device)
        # per ground-truth class: pixels given no class (update's no_class), wrong for every class
        self.unassigned = torch.zeros(self.num_classes, dtype=torch.int64, device=device)

    def reset(self) -> None:
        self.matrix.zero_()
        self.unassigned.zero_()

    @staticmethod
    def _bad(values: np.ndarray) -> list[int]:
        return [int(v) for v in np.unique(values)[:10]]

    def update(self, pred: Any, target: Any, no_class: int | None = None) -> None:
        """Add a batch: ``pred`` (class ids) and ``target`` (labels) of the same shape
        (torch tensors on any device, or numpy arrays).

        ``no_class``: a predicted value meaning "no class" (label maps of other tools
        hold the ignore index, 255): not counted where the ground truth is ignored, and
        wrong elsewhere (a miss of the true class, a false positive of none), as
        mmsegmentation and Hugging Face's mean IoU count it.

        Raises ``ValueError`` for a predicted id outside ``[0, C)`` or a label outside
        ``[0, C)`` that is not ``ignore_index``; nothing is added then.
        """
        p, t = as_labels(pred), as_labels(target)
        if p.shape != t.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
        if p.size == 0:
            return
        c, ign = self.num_classes, self.ignore_index
        if no_class is not None and (none := p == no_class).any():
            scored = none & (t >= 0) & (t < c) & (t != ign if ign is not None else True)
            missed = np.bincount(t[scored].astype(np.int64), minlength=c)[:c]
            keep = ~none  # (a copy: the rare path of label maps from other tools)
            self._update(p[keep], t[keep], c, ign)
            self.unassigned += torch.from_numpy(missed).to(self.unassigned.device)
            return
        self._update(p, t, c, ign)

    def _update(self, p: np.ndarray, t: np.ndarray, c: int, ign: int | None) -> None:
        if p.size == 0:
            return
        if p.min() < 0 or p.max() >= c:
            raise ValueError(f"predicted class ids out of range [0, {c}): {self._bad(p[(p < 0) | (p >= c)])}")
        tmin, tmax = int(t.min()), int(t.max())
        p, t = p.reshape(-1), t.reshape(-1)
        if tmin >= 0 and (ign is None or ign >= c) and max(tmax + 1, c) * c <= 2**20:
            # Fast path (the usual ignore 255): bincount t*C+p over (tmax+1)*C bins. Bins past
            # C*C are rows of labels >= C: the ignore row is dropped, any other is an error.
            # The smallest integer type that holds the indices (fewer bytes to pass over).
            top = max(tmax + 1, c) * c
            idx = t.astype(np.int16 if top < 2**15 else np.int32)
            idx *= c
            idx += p
            counts = np.bincount(idx, minlength=top).reshape(-1, c)
            extra = counts[c:].sum(1)
            if ign is not None and c <= ign <= tmax:
                extra[ign - c] = 0
            if extra.any():
                bad = (np.flatnonzero(extra) + c)[:10].tolist()
                raise ValueError(f"ground-truth labels out of range [0, {c}) and not ignore_index={ign}: {bad}")
            counts = counts[:c]
        else:
            # General path (negative labels, an ignore_index inside [0, C), or 16-bit label
            # values that would need too many bins): mask, then bincount over C*C + 1 bins.
            valid = (t >= 0) & (t < c)
            out = ~valid if ign is None else ~valid & (t != ign)
            if out.any():
                raise ValueError(
                    f"ground-truth labels out of range [0, {c}) and not ignore_index={ign}: {self._bad(t[out])}"
                )
            if ign is not None:
                valid &= t != ign
            idx = np.where(valid, t.astype(np.int64) * c + p, c * c)
            counts = np.bincount(idx, minlength=c * c + 1)[: c * c].reshape(c, c)
        self.matrix += torch.from_numpy(counts).to(self.matrix.device)

    def all_reduce(self) -> None:
        """Sum the matrix over all processes (no-op unless torch.distributed is initialised)."""
        all_reduce_sum_(self.matrix)
        all_reduce_sum_(self.unassigned)

    def compute(self) -> dict[str, Any]:
        """Metrics from the accumulated matrix; see the module docstring for conventions.

        Keys: ``iou`` and ``acc`` (lists per class, ``None`` where undefined), ``miou``,
        ``pixel_acc``, ``mean_acc``, ``fwiou``, ``pixels`` (scored pixels) and ``matrix``
        (nested lists, rows = ground truth).
        """
        m = self.matrix.detach().to("cpu", torch.float64)
        tp = m.diagonal()
        gt = m.sum(1) + self.unassigned.detach().to("cpu", torch.float64)
        pr = m.sum(0)
        union = gt + pr - tp
        total = float(gt.sum())
        iou = [(float(tp[i] / union[i]) if union[i] > 0 else None) for i in range(self.num_classes)]
        acc = [(float(tp[i] / gt[i]) if gt[i] > 0 else None) for i in range(self.num_classes)]
        present_iou = [v for v in iou if v is not None]
        present_acc = [v for v in acc if v is not None]
        fw = None
        if total > 0:
            # frequency-weighted IoU: classes weighted by their ground-truth pixel share
            fw = float(sum(float(gt[i]) / total * v for i, v in enumerate(iou) if v is not None and gt[i] > 0))
        return {
            "iou": iou,
            "acc": acc,
            "miou": sum(present_iou) / len(present_iou) if present_iou else None,
            "pixel_acc": ratio(float(tp.sum()), total),
            "mean_acc": sum(present_acc) / len(present_acc) if present_acc else None,
            "fwiou": fw,
            "pixels": int(total),
            "unassigned_pixels": int(self.unassigned.sum()),
            "matrix": self.matrix.tolist(),
        }
