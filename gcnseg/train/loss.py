"""The training loss (Section 4): per-pixel cross-entropy over the labelled pixels, with
optional class weights (class-balanced cross-entropy) and online hard example mining."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int,
    weight: torch.Tensor | None = None,
    ohem_thresh: float | None = None,
    ohem_min_kept: int = 100_000,
) -> torch.Tensor:
    """Cross-entropy averaged over the labelled pixels (0 when there are none), in float32.

    ``weight``: one weight per class; the average is then over the pixels' weights (as
    ``F.cross_entropy``'s mean). ``ohem_thresh``: online hard example mining (as
    mmsegmentation's OHEM pixel sampler) - only the labelled pixels whose true class has a
    softmax probability below the threshold count, and at least ``ohem_min_kept`` of the
    hardest ones.

    On the CPU, channels-last scores (GCNSeg's own layout) of 16 classes or more are taken
    as a (pixels, classes) view: the log-softmax runs over contiguous rows of at least one
    vector and the gradient comes back channels-last; fewer classes (CamVid's 11) make
    short rows, for which the NCHW call is faster. CUDA takes the plain call (see
    docs/performance.md).
    """
    logits = logits.float()
    cpu_cl = (
        logits.device.type == "cpu" and logits.dim() == 4 and logits.is_contiguous(memory_format=torch.channels_last)
    )
    if cpu_cl and logits.shape[1] < 16:
        logits = logits.contiguous()
    elif cpu_cl:
        n, c, h, w = logits.shape
        if target.shape != (n, h, w):  # what the plain call would refuse
            raise ValueError(
                f"target of shape {tuple(target.shape)} for scores of shape {tuple(logits.shape)}: expected {(n, h, w)}"
            )
        logits, target = logits.permute(0, 2, 3, 1).reshape(-1, c), target.reshape(-1)
    if weight is not None:
        weight = weight.to(device=logits.device, dtype=torch.float32)
    labelled = target != ignore_index
    if ohem_thresh is None:
        loss = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction="sum")
        if weight is None:
            return loss / labelled.sum().clamp(min=1)
        return loss / weight[target[labelled]].sum().clamp(min=1e-12)
    per_pixel = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    with torch.no_grad():
        prob = torch.exp(-per_pixel)  # the true class's softmax probability (1 where ignored)
        kept = labelled & (prob < ohem_thresh)
        n_labelled = int(labelled.sum())
        if int(kept.sum()) < min(ohem_min_kept, n_labelled):  # too few hard pixels: the hardest ones
            hardest = torch.where(labelled, prob, torch.full_like(prob, 2.0)).flatten()
            kth = hardest.kthvalue(min(ohem_min_kept, n_labelled)).values
            kept = labelled & (prob <= kth)
    pixel_weight = kept.float() if weight is None else kept.float() * weight[target.clamp(0, len(weight) - 1)]
    return (per_pixel * pixel_weight).sum() / pixel_weight.sum().clamp(min=1e-12)
