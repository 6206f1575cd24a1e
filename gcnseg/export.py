"""``gcnseg export``: a checkpoint as ONNX or TorchScript with dynamic height and width."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
from torch import nn

from .cli import add_checkpoint_arguments
from .errors import GcnsegError
from .runtime import atomic_path


def export_onnx(model: nn.Module, path: Path, sample_size: tuple[int, int] = (64, 96), opset: int = 18) -> Path:
    """ONNX with dynamic batch, height and width (input ``image``, output ``logits``)."""
    model = model.eval()
    x = torch.randn(1, 3, *sample_size)
    with atomic_path(path) as tmp, torch.no_grad():  # the inference graph (as TorchScript's tracing below)
        torch.onnx.export(
            model,
            (x,),
            str(tmp),
            input_names=["image"],
            output_names=["logits"],
            opset_version=opset,
            dynamic_axes={
                "image": {0: "batch", 2: "height", 3: "width"},
                "logits": {0: "batch", 2: "height", 3: "width"},
            },
            dynamo=False,
        )
    return path


def export_torchscript(model: nn.Module, path: Path, sample_size: tuple[int, int] = (64, 96)) -> Path:
    """TorchScript by tracing; sizes are recorded symbolically, so any height and width work."""
    model = model.eval()
    x = torch.randn(1, 3, *sample_size)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
    with atomic_path(path) as tmp:
        traced.save(str(tmp))
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint_arguments(p)
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument(
        "--out", help="output file (default: beside the checkpoint, model.onnx / model.pt; NAME.onnx for --model NAME)"
    )
    p.add_argument("--opset", type=int, default=18)


def run(args: argparse.Namespace) -> int:
    from .checkpoint import load_model, resolve_checkpoint
    from .runtime import check_output
    from .zoo import ZOO

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
