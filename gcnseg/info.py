"""``gcnseg info``: parameters and FLOPs of a network, per part of Figure 2A.

FLOPs are counted by torch's own counter (``torch.utils.flop_counter``; one
multiply-add is two FLOPs) on one image of the given size.
"""

from __future__ import annotations

import argparse
import json
import re

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .models import GCNSeg
from .models.gcn import HEAD_KINDS, StripConv
from .models.backbones import BACKBONES

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
    """Parameters and forward FLOPs of each part of ``model`` for a ``1x3xHxW`` input."""
    was_training = model.training
    model.eval()
    # the plain convolutions: StripConv's faster CPU paths do the same products in other shapes
    with torch.no_grad(), StripConv.plain(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, *size))
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default="resnet50", choices=list(BACKBONES))
    p.add_argument("--head", default="gcn", choices=list(HEAD_KINDS))
    p.add_argument("--k", type=int, nargs="+", default=[15], help="kernel size, one or four (res-2..res-5)")
    p.add_argument("--m", type=int, default=None, help="intermediate width of 'stack' heads")
    p.add_argument("--no-br", action="store_true", help="without Boundary Refinement (Table 1 networks)")
    p.add_argument("--upsample", default="deconv", choices=["deconv", "bilinear"])
    p.add_argument("--num-classes", type=int, default=21)
    p.add_argument("--size", type=int, nargs="+", default=[512], help="input size: S or H W")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    if len(args.k) not in (1, 4) or len(args.size) not in (1, 2):
        raise SystemExit("gcnseg info: --k takes one or four values, --size one or two")
    k = args.k[0] if len(args.k) == 1 else args.k
    size = (args.size[0], args.size[-1])
    try:
        model = GCNSeg(args.num_classes, args.backbone, args.head, k, not args.no_br, args.upsample, m=args.m)
    except ValueError as e:
        raise SystemExit(f"gcnseg info: {e}")
    info = model_info(model, size)
    info["model"] = {"backbone": args.backbone, "head": args.head, "k": k, "br": not args.no_br,
                     "upsample": args.upsample, "num_classes": args.num_classes}
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0
