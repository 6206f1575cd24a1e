"""Parameters and FLOPs of a network, per part of Figure 2A.

FLOPs are counted by torch's own counter (``torch.utils.flop_counter``; one
multiply-add is two FLOPs) on one image of the given size.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import Config
from .config.schema import MAX_SIZE
from .models import GCNSeg, plain_kernels

# part of Fig. 2A -> attribute names of GCNSeg
PARTS: dict[str, tuple[str, ...]] = {
    "backbone": ("backbone",),
    "heads": ("heads",),
    "boundary_refine": ("head_br", "fuse_br"),
    "upsampling": ("up",),
}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_info(model: GCNSeg, size: tuple[int, int] = (512, 512)) -> dict:
    """Parameters and forward FLOPs of each part of ``model`` for a ``1x3xHxW`` input
    (sides of 1 to :data:`~gcnseg.config.schema.MAX_SIZE`). A model built on the ``meta``
    device (``with torch.device("meta"): build_model(...)``, as ``gcnseg info`` does) is
    counted from shapes alone: the same counts, without weights, pixels or arithmetic."""
    if len(size) != 2 or not all(isinstance(s, int) and 1 <= s <= MAX_SIZE for s in size):
        raise ValueError(f"size: expected (height, width) of 1 to {MAX_SIZE} pixels, got {size!r}")
    was_training = model.training
    model.eval()
    # the plain convolutions: StripConv's faster CPU paths do the same products in other shapes
    with torch.no_grad(), plain_kernels(model), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, *size, device=next(model.parameters()).device))
    model.train(was_training)
    flops = counter.get_flop_counts()
    root = type(model).__name__
    parts = {}
    for part, attrs in PARTS.items():
        params = sum(count_parameters(getattr(model, a)) for a in attrs)
        # a ModuleList is never called itself: count its direct members
        pattern = re.compile(rf"^{root}\.({'|'.join(attrs)})(\.\d+)?$")
        f = sum(sum(v.values()) for k, v in flops.items() if pattern.match(k))
        parts[part] = {"params": params, "flops": int(f)}
    total = {"params": count_parameters(model), "flops": int(sum(flops.get("Global", {}).values()))}
    return {"input": [1, 3, *size], "parts": parts, "total": total}


def _human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def format_info(info: dict) -> str:
    lines = [f"input {'x'.join(map(str, info['input']))}", f"{'part':<16}{'params':>12}{'GFLOPs':>10}"]
    for name, v in list(info["parts"].items()) + [("total", info["total"])]:
        lines.append(f"{name:<16}{_human(v['params']):>12}{v['flops'] / 1e9:>10.2f}")
    return "\n".join(lines)


def config_classes(cfg: Config) -> int:
    """The class count of a config's dataset: from the dataset's own class list where it
    has one (CamVid, VOC, Cityscapes: no files needed), else read from its data."""
    from .data import DATASETS, open_dataset
    from .errors import DataError, GcnsegError

    first = cfg.data.dataset.split("+")[0].strip()
    listed = getattr(DATASETS.get(first), "classes", None)
    if listed:
        return len(listed)
    try:
        return open_dataset(cfg.data, cfg.data.val_split).num_classes
    except DataError as e:
        raise GcnsegError(f"the config's dataset gives no class count here ({e}); give --num-classes N") from None
