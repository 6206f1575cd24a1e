"""``gcnseg info``: parameters and FLOPs of a network, per part of Figure 2A."""

from __future__ import annotations

import argparse

from .args import add_config, add_json, add_overrides, check_json, human, listed, positive_int, write_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config(p, "the config whose model is counted (default: GCN k=15 + BR on ResNet-50)")
    # shorthands for model.* overrides
    p.add_argument("--backbone", help="model.backbone: resnet18..resnet152, resnet50_gcn or timm/NAME")
    p.add_argument("--head", help="model.head: gcn, conv1x1, convkxk or stack")
    p.add_argument("--k", type=listed(positive_int), nargs="+", help="model.k: kernel size, one or four (res-2..res-5)")
    p.add_argument("--m", type=positive_int, help="model.m: intermediate width of 'stack' heads")
    p.add_argument("--no-br", action="store_true", help="model.br=false: without Boundary Refinement (Table 1)")
    p.add_argument("--upsample", help="model.upsample: deconv or bilinear")
    p.add_argument(
        "--num-classes", type=positive_int, help="classes of the score maps (default: the config's dataset's, else 21)"
    )
    p.add_argument(
        "--size",
        type=listed(positive_int),
        nargs="+",
        default=[512],
        help="input size: S or H W (at most 16384 a side)",
    )
    add_json(p, "the counts")
    add_overrides(p, "model.k=[15,15,11,7]")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..config import apply_overrides, given, load_config
    from ..config.schema import MAX_SIZE, check_num_classes
    from ..errors import GcnsegError
    from ..info import config_classes, format_info, model_info
    from ..models import build_model

    if (args.k and len(args.k) not in (1, 4)) or len(args.size) not in (1, 2):
        raise GcnsegError("--k takes one or four values, --size one or two")
    if max(args.size) > MAX_SIZE:
        raise GcnsegError(f"--size {' '.join(map(str, args.size))}: at most {MAX_SIZE} pixels a side")
    if args.num_classes is not None:
        try:
            check_num_classes(args.num_classes)
        except ValueError as e:
            raise GcnsegError(f"--num-classes: {e}") from None
    check_json(args.json)
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
    num_classes = args.num_classes or (config_classes(cfg) if args.config else 21)
    size = (args.size[0], args.size[-1])
    try:
        check_num_classes(num_classes)
        with torch.device("meta"):  # shapes only: counted without weights or pixels, at any size in no time
            model = build_model(cfg.model, num_classes, pretrained=False)
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
        "num_classes": num_classes,
    }
    print(format_info(info), file=human(args.json))
    write_json(args.json, info)
    return 0
