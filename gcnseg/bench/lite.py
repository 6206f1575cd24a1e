"""``gcnseg bench``'s light-encoder rows at CamVid's size (360x480): EfficientNet-Lite0
beside ResNet-18 and ResNet-50, as feature networks and as GCNSeg (GCN k=15/15/11/7 + BR),
for inference (ms, images/s, and the share of GCNSeg-lite0's time in encoder, heads, BR
and decoder) and for one training step on 4 crops of 352x480."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..config import ModelConfig
from .timing import describe_path, ratio_rows, round_times

LITE = "timm/tf_efficientnet_lite0"
CAMVID_K = [15, 15, 11, 7]


def _gcnseg(backbone: str) -> ModelConfig:
    return ModelConfig(backbone=backbone, head="gcn", k=CAMVID_K, br=True, upsample="deconv")


def _with_images_per_s(rows: list[dict[str, Any]], batch: int) -> list[dict[str, Any]]:
    return [{**r, "images_per_s": round(1000 * batch / r["ms"], 2)} for r in rows]


def part_shares(model: nn.Module, x: torch.Tensor, repeats: int = 3) -> dict[str, float]:
    """The share of an eager GCNSeg forward spent in each part of Fig. 2A, timed by hooks
    on the parts' modules (the CPU runs them one after the other)."""
    net: Any = model
    parts = {"encoder": [net.backbone], "heads": list(net.heads), "boundary refinement": [*net.head_br, *net.fuse_br],
             "decoder (deconvolution)": list(net.up)}  # fmt: skip
    spent: dict[str, float] = defaultdict(float)
    started: dict[int, float] = {}
    handles = []
    for name, modules in parts.items():
        for m in modules:
            handles.append(
                m.register_forward_pre_hook(lambda mod, args: started.__setitem__(id(mod), time.perf_counter()))
            )
            handles.append(m.register_forward_hook(
                lambda mod, args, out, name=name: spent.__setitem__(name, spent[name] + time.perf_counter() - started[id(mod)])
            ))  # fmt: skip
    total = 0.0
    try:
        with torch.inference_mode():
            model(x)
            spent.clear()
            for _ in range(repeats):
                t = time.perf_counter()
                model(x)
                total += time.perf_counter() - t
    finally:
        for h in handles:
            h.remove()
    shares = {name: spent[name] / total for name in parts}
    shares["other (additions, layout)"] = max(0.0, 1 - sum(shares.values()))
    return shares


def bench_lite(repeats: int, warmup: int, num_classes: int = 11, size: tuple[int, int] = (360, 480)) -> dict[str, Any]:
    """Inference and training rows for the light encoder (module docstring)."""
    from ..models import build_encoder, build_model
    from ..optimize import native_bf16, optimize_for_inference
    from ..train.loss import segmentation_loss

    x = torch.randn(1, 3, *size)
    lite = build_model(_gcnseg(LITE), num_classes).eval()
    infer: dict[str, nn.Module] = {
        "EfficientNet-Lite0 features (reference)": build_encoder(LITE).eval(),
        "GCNSeg-lite0 eager": lite,
        "GCNSeg-lite0 optimised (default)": optimize_for_inference(lite),
        "ResNet-18 features": build_encoder("resnet18").eval(),
        "GCNSeg-R18 eager": build_model(_gcnseg("resnet18"), num_classes).eval(),
        "ResNet-50 features": build_encoder("resnet50").eval(),
        "GCNSeg-R50 eager": build_model(_gcnseg("resnet50"), num_classes).eval(),
    }

    def call(m: nn.Module) -> Callable[[], Any]:
        def fn() -> Any:
            with torch.inference_mode():
                return m(x.contiguous(memory_format=torch.channels_last))

        return fn

    times = round_times({k: call(m) for k, m in infer.items()}, repeats, warmup)
    inference = _with_images_per_s(ratio_rows(times, "EfficientNet-Lite0 features (reference)"), 1)
    for r in inference:
        r["path"] = describe_path(infer[r["name"]])

    crops = torch.randn(4, 3, size[0] - size[0] % 32, size[1])
    target = torch.randint(0, num_classes, (4, *crops.shape[-2:]))
    nets = {"lite0": build_model(_gcnseg(LITE), num_classes).train(),
            "r18": build_model(_gcnseg("resnet18"), num_classes).train()}  # fmt: skip
    encoder = build_encoder(LITE).train().to(memory_format=torch.channels_last)

    def step(net: nn.Module, dtype: torch.dtype | None) -> Callable[[], None]:
        def fn() -> None:
            net.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                out = net(crops)
            segmentation_loss(out, target, 255).backward()

        return fn

    def encoder_step(dtype: torch.dtype | None) -> Callable[[], None]:
        def fn() -> None:
            encoder.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                feats = encoder(crops.contiguous(memory_format=torch.channels_last))
            sum(f.float().mean() for f in feats).backward()

        return fn

    steps = {
        "EfficientNet-Lite0 features fwd+bwd (reference)": encoder_step(None),
        "GCNSeg-lite0 training step": step(nets["lite0"], None),
        "GCNSeg-R18 training step": step(nets["r18"], None),
    }
    if native_bf16():
        steps["EfficientNet-Lite0 features fwd+bwd, bf16"] = encoder_step(torch.bfloat16)
        steps["GCNSeg-lite0 training step, bf16"] = step(nets["lite0"], torch.bfloat16)
    train_times = round_times(steps, max(3, repeats // 2), 1)
    training = _with_images_per_s(ratio_rows(train_times, "EfficientNet-Lite0 features fwd+bwd (reference)"), 4)
    for r in training:
        r["path"] = "eager bf16 autocast" if "bf16" in r["name"] else "eager fp32"
    return {"size": list(size), "inference": inference, "train": training, "shares": part_shares(lite, x)}
