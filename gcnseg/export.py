"""Export: a checkpoint as ONNX or TorchScript with dynamic height and width."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

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
