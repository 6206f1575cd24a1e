"""The optimised inference path (used by ``predict`` and ``eval`` by default).

- BatchNorm folded into the preceding convolution (exact up to float rounding);
- channels-last memory layout, for which oneDNN has faster kernels on CPU;
- ``precision="bf16"``: the backbone runs in bfloat16 (oneDNN uses the CPU's
  native bf16 dot products: AVX512-BF16 or AMX), and so do the GCN heads' first
  convolutions, which read its bf16 features (the k x 1 and 1 x k kernels over 256
  to 2048 channels: the heads' heavy half); their outputs, the rest of the heads,
  the BR blocks and the decoder are float32. ``"auto"`` (the default) picks bf16
  where the CPU has native bf16 and float32 elsewhere.

Predictions stay those of the eager fp32 model: argmax agreement >= 99.9% on
trained networks at working sizes (tested in ``tests/test_optimize.py``); near-tied
scores, as in an untrained network, can flip. Which convolutions join the bf16 part is
declared by the model (``GlobalConv.feature_readers``), not found by walking its
internals. Measured speeds and agreement: ``docs/performance.md``.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.resnet import BasicBlock, Bottleneck

from .runtime import native_bf16, notice


def _after_folding(bn: nn.BatchNorm2d) -> nn.Module:
    """What is left of a folded BatchNorm: nothing, or the activation that timm's
    ``BatchNormAct2d`` applies after it."""
    rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if isinstance(m, nn.Module)]
    return nn.Sequential(*rest) if rest else nn.Identity()


def _fold(parent: nn.Module, conv_name: str, bn_name: str) -> bool:
    conv, bn = parent.get_submodule(conv_name), parent.get_submodule(bn_name)
    if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
        return False
    for name, new in ((conv_name, fuse_conv_bn_eval(conv, bn)), (bn_name, _after_folding(bn))):
        owner, _, child = name.rpartition(".")
        setattr(parent.get_submodule(owner) if owner else parent, child, new)
    return True


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every ``Conv2d -> BatchNorm2d`` pair into the convolution, in place
    (the model must be in eval mode). Pairs are consecutive members of an
    ``nn.Sequential``, siblings named ``convN`` / ``bnN`` (torchvision's ResNet blocks),
    and the pairs a module declares (``conv_bn_pairs()``, e.g. a timm encoder's). An
    activation fused into the BatchNorm (timm's ``BatchNormAct2d``) stays. Returns the
    number of folded pairs."""
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (BatchNorm with running statistics)")
    folded = 0
    for parent in list(model.modules()):
        pairs: list[tuple[str, str]] = []
        if isinstance(parent, nn.Sequential):
            pairs += list(itertools.pairwise(parent._modules))
        if isinstance(parent, (BasicBlock, Bottleneck)):  # convN -> bnN in torchvision's blocks
            pairs += [("conv" + name[2:], name) for name, _ in parent.named_children() if name.startswith("bn")]
        pairs += list(getattr(parent, "conv_bn_pairs", list)())
        for conv_name, bn_name in pairs:
            if _has(parent, conv_name) and _has(parent, bn_name):
                folded += _fold(parent, conv_name, bn_name)
    return folded


def _has(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True


class ToFloat32(nn.Module):
    """Casts to float32 (where the bf16 part of the optimised path ends)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def bf16_reader(head: nn.Module) -> nn.Module:
    """A score head that takes the bf16 backbone's features.

    The convolutions that the head declares as its ``feature_readers`` (a GCN head's
    two first, wide convolutions) run in bf16 on the features as they come and hand
    float32 on; a head that declares none casts its input to float32 and stays float32.
    In place where the head declares readers. The features are bf16 already, so the
    bf16 readers add only the rounding of their weights and outputs.
    """
    readers = getattr(head, "feature_readers", ())
    if not readers:
        return nn.Sequential(ToFloat32(), head)
    for name in readers:
        parent, _, child = name.rpartition(".")
        owner = head.get_submodule(parent) if parent else head
        conv = owner.get_submodule(child)
        setattr(owner, child, nn.Sequential(conv.to(torch.bfloat16), ToFloat32()))
    return head


class InferenceModel(nn.Module):
    """Wraps an optimised network: inputs are moved to channels-last, the
    backbone runs in ``backbone_dtype``, outputs come back as float32 (channels-last in
    memory, like :class:`~gcnseg.models.GCNSeg`'s)."""

    def __init__(
        self, model: nn.Module, channels_last: bool = True, backbone_dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self.backbone_dtype = backbone_dtype
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.backbone_dtype == torch.float32 or not hasattr(self.model, "decode"):
            return self.model(x)
        # the heads were made bf16 readers (bf16_reader): they take the features as they come
        # one expression: the features are dropped once scored, before the full-size decoder
        net: Any = self.model
        return net.fuse(net.score(net.backbone(x.to(self.backbone_dtype))), x.shape[-2:])


def optimize_for_inference(
    model: nn.Module, fold_bn: bool = True, channels_last: bool = True, precision: str = "auto"
) -> InferenceModel:
    """A copy of ``model`` for fast inference (the original is not changed).

    ``precision``: ``"fp32"``, ``"bf16"`` (backbone in bfloat16) or ``"auto"``: bf16
    where the CPU multiplies bf16 natively, every BatchNorm of the backbone folds and the
    backbone declares ``bf16_inference`` (torchvision's ResNets, measured to keep the
    predictions); fp32 elsewhere, and on CUDA."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    device = next(model.parameters()).device
    if precision == "auto":
        declared = getattr(getattr(model, "backbone", model), "bf16_inference", False)
        precision = "bf16" if device.type == "cpu" and native_bf16() and fold_bn and declared else "fp32"
    if precision == "bf16" and not fold_bn:
        raise ValueError(
            "precision='bf16' needs fold_bn=True (the bf16 backbone has no BatchNorm left to keep in fp32)"
        )
    model = copy.deepcopy(model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if fold_bn:
        fold_batchnorm(model)
        backbone = getattr(model, "backbone", model)
        if precision == "bf16" and any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules()):
            raise ValueError("precision='bf16' needs every BatchNorm of the backbone folded; some did not")
    # GCNSeg is built with channels-last weights: channels_last=False lays them out NCHW
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    if dtype != torch.float32 and hasattr(model, "decode"):
        # weights converted once (autocast would re-cast them on every call); only the
        # backbone and the heads' feature readers: more of the network in bf16 costs
        # argmax agreement (docs/performance.md)
        net: Any = model
        net.backbone.to(dtype)
        net.heads = nn.ModuleList(bf16_reader(h) for h in net.heads)
    return InferenceModel(model, channels_last, dtype).eval()


PRECISIONS = ("auto", "fp32", "bf16", "int8")
COMPILE = ("auto", "on", "off")


def enough_passes(passes: int | None) -> bool:
    """Whether ``passes`` forward passes (None: a long-lived process such as ``serve``)
    repay compiling: what ``compile="auto"`` asks for."""
    from .compiled import COMPILE_MIN_PASSES

    return passes is None or passes >= COMPILE_MIN_PASSES


def inference_model(
    model: nn.Module,
    *,
    eager: bool = False,
    precision: str = "auto",
    compile: str = "auto",
    passes: int | None = None,
    data: Any = None,
    notify: Callable[[str], None] | None = None,
    int8_agreement: float | None = None,
) -> nn.Module:
    """The network that ``eval``, ``predict``, ``serve`` and the API run, in one place.

    - ``eager``: ``model`` as it is (no folding, no compiling);
    - ``precision="int8"``: :class:`gcnseg.int8.Int8Model`, calibrated on the training
      split of ``data`` (a :class:`~gcnseg.config.DataConfig` with its root), CPU only,
      keeping ``int8_agreement`` (a fraction; default :data:`gcnseg.int8.AGREEMENT_TARGET`);
    - else :func:`optimize_for_inference` at ``precision``, compiled
      (:class:`gcnseg.compiled.CompiledModel`) when ``compile="on"``, or ``"auto"`` and the
      job is long enough to repay it: ``passes`` (forward passes of one input size it
      will run; None: a long-lived process such as ``serve``) at least ``COMPILE_MIN_PASSES``. The
      environment variable ``GCNSEG_COMPILE`` (on, off) decides ``"auto"`` where it is set,
      e.g. ``GCNSEG_COMPILE=off`` for a machine where compiling is not wanted.
    """
    from .compiled import CompiledModel, compiler_available
    from .errors import GcnsegError

    if precision not in PRECISIONS:
        raise GcnsegError(f"precision {precision!r}: expected {', '.join(PRECISIONS)}")
    if compile not in COMPILE:
        raise GcnsegError(f"compile {compile!r}: expected {', '.join(COMPILE)}")
    if eager:
        if precision != "auto" or compile == "on":
            raise GcnsegError("--eager runs the network as it is: it takes no --precision or --compile on")
        return model
    device = next(model.parameters()).device
    if precision == "int8":
        from .int8 import Int8Model, calibration_sets, require_onnxruntime

        if compile == "on":
            raise GcnsegError("precision int8 runs in ONNX Runtime: it takes no --compile on")
        if device.type != "cpu":
            raise GcnsegError(f"precision int8 runs on the CPU (this model is on {device}); use --device cpu")
        require_onnxruntime()
        if data is None or data.root is None:
            raise GcnsegError(
                "precision int8 calibrates on the model's training split: give its dataset's root "
                "(data.root=DIR; eval and export: --root DIR)"
            )
        fallback = optimize_for_inference(model, precision="fp32")  # for a size that int8 would change
        return Int8Model(model, *calibration_sets(data), notify=notify, target=int8_agreement, fallback=fallback)
    fast = optimize_for_inference(model, precision=precision)
    if compile == "auto":  # the environment decides "auto" only, and only here
        compile = os.environ.get("GCNSEG_COMPILE", "auto").strip().lower() or "auto"
        if compile not in COMPILE:
            raise GcnsegError(f"GCNSEG_COMPILE={compile}: expected {', '.join(COMPILE)}")
    if not (compile == "on" or (compile == "auto" and enough_passes(passes))):
        return fast
    if not compiler_available(device):
        (notify or notice)(
            "no compiler for torch.compile on this machine (a C++ compiler on the CPU); running uncompiled"
        )
        return fast
    return CompiledModel(fast, notify)
