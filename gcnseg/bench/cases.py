"""What ``gcnseg bench`` measures: inference, a training step, metric accumulation and
peak memory (see :mod:`gcnseg.bench`)."""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..config import ModelConfig
from ..metrics.agreement import label_agreement
from .timing import describe_path, median_times, ratio_rows, round_times, sync


def gcnseg_r50() -> ModelConfig:
    """The benchmarked network, spelled out: GCN k=15 + BR + deconvolution on ResNet-50."""
    return ModelConfig(backbone="resnet50", head="gcn", k=15, br=True, upsample="deconv")


def inference_models(num_classes: int, device: str = "cpu") -> dict[str, nn.Module]:
    import torchvision

    from ..models import build_encoder, build_model
    from ..optimize import optimize_for_inference

    # on its device before optimising: precision "auto" picks bf16 only for a model on the CPU
    gcn = build_model(gcnseg_r50(), num_classes).eval().to(device)
    models: dict[str, nn.Module] = {
        "resnet50 features (reference)": build_encoder("resnet50").eval(),
        "GCNSeg-R50 eager": gcn,
        "GCNSeg-R50 optimised fp32": optimize_for_inference(gcn, precision="fp32"),
        "GCNSeg-R50 optimised (default)": optimize_for_inference(gcn),
        "torchvision FCN-ResNet50": torchvision.models.segmentation.fcn_resnet50(
            weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False
        ).eval(),
        "torchvision DeepLabV3-ResNet50": torchvision.models.segmentation.deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False
        ).eval(),
    }
    try:
        import segmentation_models_pytorch as smp

        models["smp FPN-ResNet50"] = smp.FPN("resnet50", encoder_weights=None, classes=num_classes).eval()
    except ImportError:
        pass
    return models


def bench_inference(
    size: int,
    repeats: int,
    warmup: int,
    num_classes: int = 21,
    batch: int = 1,
    device: str = "cpu",
    amp: torch.dtype | None = None,
) -> dict[str, Any]:
    models = inference_models(num_classes, device)
    x = torch.randn(batch, 3, size, size, device=device)
    outputs: dict[str, Any] = {}

    def call(model: nn.Module) -> Callable[[], Any]:
        def fn() -> Any:
            with torch.inference_mode(), torch.autocast(device, dtype=amp, enabled=amp is not None):
                out = model(x)
            sync(device)
            return out

        return fn

    for m in models.values():
        m.to(device)
    times = round_times({name: call(m) for name, m in models.items()}, repeats, warmup)
    with torch.inference_mode():
        eager = models["GCNSeg-R50 eager"](x).argmax(1)
        for key, name in (("fp32", "GCNSeg-R50 optimised fp32"), ("default", "GCNSeg-R50 optimised (default)")):
            agree = label_agreement([(models[name](x).argmax(1), eager)])
            outputs.setdefault("optimised_argmax_agreement", {})[key] = agree
    outputs["default_backbone_dtype"] = str(models["GCNSeg-R50 optimised (default)"].backbone_dtype)
    rows = ratio_rows(times, "resnet50 features (reference)")
    for r in rows:
        r["path"] = describe_path(models[r["name"]], amp)
    return {"rows": rows, **outputs}


def bench_train_step(
    size: int,
    repeats: int,
    warmup: int,
    num_classes: int = 21,
    batch: int = 1,
    device: str = "cpu",
    amp: torch.dtype | None = None,
) -> dict[str, Any]:
    """One SGD step of GCNSeg-R50 against the backbone's forward+backward+SGD.

    On the CPU: float32, plus a bf16-autocast row where the CPU has native bf16. On a
    GPU: both the GCNSeg step and the reference under ``amp`` autocast (what
    ``train.amp`` does; fp16's GradScaler is left out, it costs a few element-wise ops).
    """
    from ..models import build_encoder, build_model
    from ..optimize import native_bf16
    from ..train.loss import segmentation_loss

    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, num_classes, (batch, size, size), device=device)
    gcn = build_model(gcnseg_r50(), num_classes).train().to(device)
    backbone = build_encoder("resnet50").train().to(device)
    opt_g = torch.optim.SGD(gcn.parameters(), lr=1e-6, momentum=0.99)
    opt_b = torch.optim.SGD(backbone.parameters(), lr=1e-6, momentum=0.99)

    def step_gcn(dtype: torch.dtype | None = amp) -> None:
        opt_g.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):  # what train.amp does
            logits = gcn(x)
        segmentation_loss(logits, y, 255).backward()  # the loss is computed in float32
        opt_g.step()
        sync(device)

    def step_backbone() -> None:
        opt_b.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=amp, enabled=amp is not None):
            feats = backbone(x)
        sum(f.float().mean() for f in feats).backward()
        opt_b.step()
        sync(device)

    steps = {"backbone forward+backward+SGD (reference)": step_backbone, "GCNSeg-R50 training step": step_gcn}
    if device == "cpu" and amp is None and native_bf16():
        steps["GCNSeg-R50 training step, bf16 autocast (train.amp=bf16)"] = lambda: step_gcn(torch.bfloat16)
    rows = ratio_rows(round_times(steps, repeats, warmup), "backbone forward+backward+SGD (reference)")
    for r in rows:
        r["path"] = "eager bf16 autocast" if "bf16" in r["name"] or amp is not None else "eager fp32"
    return {"rows": rows}


def bench_metrics(repeats: int, num_classes: int = 19, size: tuple[int, int] = (1024, 2048)) -> dict[str, Any]:
    """Mpx/s of confusion matrix + boundary band on Cityscapes-sized label maps."""
    import numpy as np

    from ..metrics import SegMetrics

    rng = np.random.default_rng(0)
    h, w = size
    # real-looking label maps: blocks of classes, 5% of the prediction wrong, some ignore
    target = np.kron(rng.integers(0, num_classes, (h // 32, w // 32)), np.ones((32, 32), np.int64))
    target[rng.random((h, w)) < 0.02] = 255
    pred = np.where(rng.random((h, w)) < 0.05, rng.integers(0, num_classes, (h, w)), target)
    pred[pred == 255] = 0
    target_t, pred_t = torch.from_numpy(target), torch.from_numpy(pred)
    out = {}
    for name, width in (("confusion matrix", None), ("confusion matrix + boundary band", 7)):
        m = SegMetrics(num_classes, 255, width)
        t = median_times({"m": functools.partial(m.update, pred_t, target_t)}, repeats, 1)["m"]
        out[name] = h * w / t / 1e6
    return {"mpx_per_s": out}


_PEAK_SCRIPT = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
from gcnseg.bench import gcnseg_r50
from gcnseg.models import build_model
from gcnseg.optimize import optimize_for_inference
from gcnseg.inference import predict_scores

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

model = optimize_for_inference(build_model(gcnseg_r50(), 19).eval())
x = torch.randn(1, 3, 1024, 2048)
loaded = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # restart the peak (VmHWM) from here
with torch.inference_mode():
    pred = predict_scores(model, x).argmax(1)
print(loaded, status("VmHWM:"))
"""


def bench_peak_memory(threads: int) -> dict[str, Any]:
    """Peak resident memory of a fresh process segmenting one 1024x2048 image
    (Linux: VmHWM restarted once the model is loaded)."""
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(threads)], capture_output=True, text=True, check=True)
    loaded, peak = map(int, out.stdout.split())
    return {"peak_rss_gib": peak / 2**30, "model_loaded_rss_gib": loaded / 2**30}
