"""The optimised inference path (used by ``predict`` and ``eval`` by default).

- BatchNorm folded into the preceding convolution (exact up to float rounding);
- channels-last memory layout, for which oneDNN has faster kernels on CPU;
- ``precision="bf16"``: the backbone runs in bfloat16 (oneDNN uses the CPU's
  native bf16 dot products: AVX512-BF16 or AMX), the heads, BR blocks and
  decoder stay in float32. ``"auto"`` (the default) picks bf16 where the CPU has
  native bf16 and float32 elsewhere.

Predictions stay those of the eager fp32 model: argmax agreement >= 99.9% on
trained networks at working sizes (tested in ``tests/test_optimize.py``; measured
99.98% or more on the demo's networks in bf16). Near-tied scores can flip: a
network trained 25 steps agrees on 99.88% of a 64x96 noise image, where the
res-5 map is 2x3 and every pixel is near a border. Measured speeds: ``gcnseg bench`` and the README.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every ``Conv2d -> BatchNorm2d`` pair into the convolution, in place
    (the model must be in eval mode). Pairs are consecutive members of an
    ``nn.Sequential`` or siblings named ``convN`` / ``bnN`` (torchvision's
    ResNet blocks). Returns the number of folded pairs."""
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (BatchNorm with running statistics)")
    folded = 0
    for parent in list(model.modules()):
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            for a, b in zip(names, names[1:]):
                conv, bn = parent._modules[a], parent._modules[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    parent._modules[a] = fuse_conv_bn_eval(conv, bn)
                    parent._modules[b] = nn.Identity()
                    folded += 1
        for name, bn in list(parent.named_children()):
            if isinstance(bn, nn.BatchNorm2d) and name.startswith("bn"):
                conv = getattr(parent, "conv" + name[2:], None)
                if isinstance(conv, nn.Conv2d):
                    setattr(parent, "conv" + name[2:], fuse_conv_bn_eval(conv, bn))
                    setattr(parent, name, nn.Identity())
                    folded += 1
    return folded


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (oneDNN's check)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class InferenceModel(nn.Module):
    """Wraps an optimised network: inputs are moved to channels-last, the
    backbone runs in ``backbone_dtype``, outputs come back as contiguous float32."""

    def __init__(self, model: nn.Module, channels_last: bool = True, backbone_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self.backbone_dtype = backbone_dtype
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.backbone_dtype == torch.float32 or not hasattr(self.model, "decode"):
            return self.model(x).contiguous()
        feats = self.model.backbone(x.to(self.backbone_dtype))
        return self.model.decode([f.float() for f in feats], x.shape[-2:])


def optimize_for_inference(model: nn.Module, fold_bn: bool = True, channels_last: bool = True,
                           precision: str = "auto") -> InferenceModel:
    """A copy of ``model`` for fast inference (the original is not changed).

    ``precision``: ``"fp32"``, ``"bf16"`` (backbone in bfloat16) or ``"auto"``
    (bf16 where the CPU multiplies bf16 natively; on CUDA, fp32)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    device = next(model.parameters()).device
    if precision == "auto":
        precision = "bf16" if device.type == "cpu" and native_bf16() and fold_bn else "fp32"
    if precision == "bf16" and not fold_bn:
        raise ValueError("precision='bf16' needs fold_bn=True (the bf16 backbone has no BatchNorm left to keep in fp32)")
    model = copy.deepcopy(model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if fold_bn:
        fold_batchnorm(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    if dtype != torch.float32 and hasattr(model, "decode"):
        # weights converted once (autocast would re-cast them on every call). The heads
        # stay float32: in bf16 they cost argmax agreement (99.8% on real-looking inputs)
        model.backbone.to(dtype)
    return InferenceModel(model, channels_last, dtype).eval()
