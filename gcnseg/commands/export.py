"""``gcnseg export``: a checkpoint as ONNX or TorchScript with dynamic height and width."""

from __future__ import annotations

import argparse

from .args import add_checkpoint, add_overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint(p)
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument(
        "--out", help="output file (default: beside the checkpoint, model.onnx / model.pt; NAME.onnx for --model NAME)"
    )
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (17 to 23)")
    add_overrides(p, "data.mean=[0.5,0.5,0.5]")


def run(args: argparse.Namespace) -> int:
    import warnings
    from pathlib import Path

    from ..checkpoint import load_model, resolve_checkpoint
    from ..config import apply_overrides
    from ..errors import GcnsegError
    from ..export import export_onnx, export_torchscript
    from ..runtime import check_output
    from ..zoo import ZOO

    if args.format == "onnx" and not 17 <= args.opset <= 23:
        raise GcnsegError(f"--opset {args.opset}: expected 17 to 23 (what torch's exporter writes)")
    ckpt = resolve_checkpoint(args.checkpoint)
    suffix = "onnx" if args.format == "onnx" else "pt"
    if args.out:
        out = Path(args.out)
    elif args.checkpoint in ZOO:  # the package's own folder is not a place to write
        out = Path(f"{args.checkpoint}.{suffix}")
    else:
        out = ckpt / f"model.{suffix}"
    if not out.parent.is_dir():
        raise GcnsegError(f"{out.parent}: output folder does not exist")
    check_output(out, "--out")
    model, cfg, meta = load_model(args.checkpoint)
    cfg = apply_overrides(cfg, args.overrides)
    with warnings.catch_warnings():  # the exporters' notes on traced sizes are expected here
        warnings.simplefilter("ignore")
        if args.format == "onnx":
            export_onnx(model, out, opset=args.opset)
        else:
            export_torchscript(model, out)
    print(
        f"written {out} ({out.stat().st_size / 1e6:.1f} MB); input 'image' N x 3 x H x W normalised with "
        f"mean {cfg.data.mean} and std {cfg.data.std}, output 'logits' N x {meta['num_classes']} x H x W"
    )
    return 0
