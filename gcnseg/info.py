"""``gcnseg info``: parameters and FLOPs of a network, per part of Figure 2A.

FLOPs are counted by torch's own counter (``torch.utils.flop_counter``; one
multiply-add is two FLOPs) on one image of the given size.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import get_args

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import Head, TorchvisionBackbone, Upsample
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
    """Parameters and forward FLOPs of each part of ``model`` for a ``1x3xHxW`` input."""
    was_training = model.training
    model.eval()
    # the plain convolutions: StripConv's faster CPU paths do the same products in other shapes
    with torch.no_grad(), plain_kernels(model), FlopCounterMode(display=False) as counter:
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
    p.add_argument("--config", help="YAML config whose model section is counted (default: GCN k=15 + BR on ResNet-50)")
    # shorthands for model.* overrides
    p.add_argument("--backbone", help=f"model.backbone: {', '.join(get_args(TorchvisionBackbone))} or timm/NAME")
    p.add_argument("--head", help=f"model.head: {', '.join(get_args(Head))}")
    p.add_argument("--k", type=int, nargs="+", help="model.k: kernel size, one or four (res-2..res-5)")
    p.add_argument("--m", type=int, default=None, help="model.m: intermediate width of 'stack' heads")
    p.add_argument(
        "--no-br", action="store_true", help="model.br=false: without Boundary Refinement (Table 1 networks)"
    )
    p.add_argument("--upsample", help=f"model.upsample: {' or '.join(get_args(Upsample))}")
    p.add_argument("--num-classes", type=int, default=21)
    p.add_argument("--size", type=int, nargs="+", default=[512], help="input size: S or H W")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. model.k=[15,15,11,7]")


def run(args: argparse.Namespace) -> int:
    from .config import apply_overrides, given, load_config
    from .errors import GcnsegError
    from .models import build_model

    if (args.k and len(args.k) not in (1, 4)) or len(args.size) not in (1, 2):
        raise GcnsegError("--k takes one or four values, --size one or two")
    k = None if not args.k else args.k[0] if len(args.k) == 1 else args.k
    cfg = apply_overrides(
        load_config(args.config),
        args.overrides,
        given(
            {
                "model.backbone": args.backbone,
                "model.head": args.head,
                "model.k": k,
                "model.m": args.m,
                "model.br": False if args.no_br else None,
                "model.upsample": args.upsample,
            }
        ),
    )
    size = (args.size[0], args.size[-1])
    try:
        model = build_model(cfg.model, args.num_classes, pretrained=False)
    except ValueError as e:
        raise GcnsegError(str(e)) from None
    info = model_info(model, size)
    m = cfg.model
    info["model"] = {
        "backbone": m.backbone,
        "head": m.head,
        "k": m.k,
        "br": m.br,
        "upsample": m.upsample,
        "num_classes": args.num_classes,
    }
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0
