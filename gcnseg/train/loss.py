"""The training loss (Section 4): per-pixel cross-entropy over the labelled pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Cross-entropy averaged over the labelled pixels (0 when there are none), in float32.

    On the CPU, channels-last scores (GCNSeg's own layout) are taken as a (pixels,
    classes) view: the log-softmax runs over contiguous rows and the gradient comes back
    channels-last, where the plain call would copy to NCHW and back. CUDA and NCHW scores
    take the plain call (see docs/performance.md).
    """
    logits = logits.float()
    if logits.device.type == "cpu" and logits.dim() == 4 and logits.is_contiguous(memory_format=torch.channels_last):
        n, c, h, w = logits.shape
        if target.shape != (n, h, w):  # what the plain call would refuse
            raise ValueError(
                f"target of shape {tuple(target.shape)} for scores of shape {tuple(logits.shape)}: expected {(n, h, w)}"
            )
        logits, target = logits.permute(0, 2, 3, 1).reshape(-1, c), target.reshape(-1)
    loss = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    return loss / (target != ignore_index).sum().clamp(min=1)
