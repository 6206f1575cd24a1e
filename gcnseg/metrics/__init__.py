"""Segmentation metrics, accumulated batch by batch.

* :class:`ConfusionMatrix` -- per-class IoU, mean IoU (the "standard mean IoU" of the
  paper's Tables 2-9), pixel accuracy, mean class accuracy and frequency-weighted IoU,
  all derived from one ``C x C`` matrix (rows: ground truth, columns: prediction), so
  predictions are never kept in memory and matrices from several processes add up.
* :func:`boundary_mask` and :class:`BoundaryAccuracy` -- the boundary / internal
  per-pixel accuracy of Table 5 (Peng et al., Sec. 4.1.1 (3)): the *boundary region* is
  the pixels within a distance of ``width`` (7 in the paper) of a label boundary, the
  *internal region* is all other pixels.
* :class:`SegMetrics` -- both of the above behind one ``update`` / ``compute``.
* :func:`label_agreement` -- the share of pixels where two networks predict the same
  class (how optimised, compiled, int8 and float16 networks are checked).
* :func:`format_metrics` -- the per-class table and summary printed by ``gcnseg score``
  and ``gcnseg eval``.

Conventions (where the issue left a choice):

* Pixels whose ground truth is ``ignore_index`` never count, whatever is predicted. A
  prediction of "no class" (``update(..., no_class=255)``, as label maps written by other
  tools hold) is wrong wherever the ground truth has a class.
* A class absent from both ground truth and prediction has an undefined IoU: it is
  reported as ``None`` and left out of the mean IoU. A class absent from the ground truth
  but predicted somewhere has IoU 0 and does count. A class absent from the ground truth
  has an undefined accuracy (``None``), left out of the mean class accuracy.
* Every value is a float in [0, 1], or ``None`` when undefined (e.g. nothing scored yet),
  so ``compute()`` results are JSON-ready.
"""

from __future__ import annotations

from typing import Any

from .agreement import label_agreement
from .boundary import BoundaryAccuracy, boundary_mask
from .confusion import ConfusionMatrix, as_labels
from .report import format_metrics

__all__ = [
    "BoundaryAccuracy",
    "ConfusionMatrix",
    "SegMetrics",
    "boundary_mask",
    "format_metrics",
    "label_agreement",
]


class SegMetrics:
    """:class:`ConfusionMatrix` plus (unless ``boundary_width`` is None) :class:`BoundaryAccuracy`."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255, boundary_width: float | None = 7):
        self.confusion = ConfusionMatrix(num_classes, ignore_index)
        self.boundary = None if boundary_width is None else BoundaryAccuracy(boundary_width, ignore_index)

    def update(self, pred: Any, target: Any, no_class: int | None = None) -> None:
        """Add a batch; ``no_class``: see :meth:`ConfusionMatrix.update` (the boundary
        accuracy counts such pixels wrong already)."""
        pred, target = as_labels(pred), as_labels(target)  # once for both
        self.confusion.update(pred, target, no_class)
        if self.boundary is not None:
            self.boundary.update(pred, target)

    def reset(self) -> None:
        self.confusion.reset()
        if self.boundary is not None:
            self.boundary.reset()

    def all_reduce(self) -> None:
        self.confusion.all_reduce()
        if self.boundary is not None:
            self.boundary.all_reduce()

    def compute(self) -> dict[str, Any]:
        out = self.confusion.compute()
        if self.boundary is not None:
            out.update(self.boundary.compute())
            out["boundary_width"] = self.boundary.width
        return out
