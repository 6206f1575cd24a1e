"""``gcnseg bench``: GCNSeg side by side with what users would pick instead.

Everything is measured in one process, round-robin (one call of each model in
turn, repeated), and reported as medians and as ratios against a reference run
in the same process: these machines are noisy, ratios are what compare. A ratio
is the median over rounds of (time / the reference's time in that round).

Rows (CPU, fp32 unless said otherwise):

- reference: torchvision's ResNet-50 as a feature extractor (res-2..res-5), eager;
- GCNSeg-R50 (GCN k=15, BR, deconvolution) eager, and through the optimised
  inference path that ``predict`` and ``eval`` use (:mod:`gcnseg.optimize`), in
  float32 and by default (bf16 backbone where the CPU has native bf16);
- torchvision's FCN-ResNet50 and DeepLabV3-ResNet50, and
  segmentation_models_pytorch's FPN-ResNet50 where it is installed;
- one training step of GCNSeg-R50 (forward, backward, SGD) against the
  backbone's forward and backward;
- metric accumulation throughput (confusion matrix + boundary band) in Mpx/s;
- peak memory of optimised inference on one 1024x2048 image (a fresh process).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ModelConfig


def _round_times(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each function, ``repeats`` rounds, each round calling every function once."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def _median_times(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin."""
    return {name: statistics.median(ts) for name, ts in _round_times(fns, repeats, warmup).items()}


def _rows(times: dict[str, list[float]], reference: str) -> list[dict[str, Any]]:
    """Median ms and ratio of each function; the ratio is the median over rounds of
    (time / the reference's time in the same round), so a slow spell of the machine
    that lasts a few rounds moves both and cancels out."""
    ref = times[reference]
    return [
        {"name": n, "ms": 1000 * statistics.median(ts), "ratio": statistics.median(t / r for t, r in zip(ts, ref))}
        for n, ts in times.items()
    ]


def _sync(device: str) -> None:
    """Wait for the GPU's queued work, so that a timed call includes it."""
    if device != "cpu":
        torch.cuda.synchronize()


def _gcnseg_r50() -> ModelConfig:
    """The benchmarked network, spelled out: GCN k=15 + BR + deconvolution on ResNet-50."""
    return ModelConfig(backbone="resnet50", head="gcn", k=15, br=True, upsample="deconv")


def _inference_models(num_classes: int, device: str = "cpu") -> dict[str, nn.Module]:
    import torchvision

    from .models import build_encoder, build_model
    from .optimize import optimize_for_inference

    # on its device before optimising: precision "auto" picks bf16 only for a model on the CPU
    gcn = build_model(_gcnseg_r50(), num_classes).eval().to(device)
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
    models = _inference_models(num_classes, device)
    x = torch.randn(batch, 3, size, size, device=device)
    outputs: dict[str, Any] = {}

    def call(model: nn.Module) -> Callable[[], Any]:
        def fn() -> Any:
            with torch.inference_mode(), torch.autocast(device, dtype=amp, enabled=amp is not None):
                out = model(x)
            _sync(device)
            return out

        return fn

    for m in models.values():
        m.to(device)
    times = _round_times({name: call(m) for name, m in models.items()}, repeats, warmup)
    with torch.inference_mode():
        eager = models["GCNSeg-R50 eager"](x).argmax(1)
        for key, name in (("fp32", "GCNSeg-R50 optimised fp32"), ("default", "GCNSeg-R50 optimised (default)")):
            agree = (models[name](x).argmax(1) == eager).float().mean().item()
            outputs.setdefault("optimised_argmax_agreement", {})[key] = agree
    outputs["default_backbone_dtype"] = str(models["GCNSeg-R50 optimised (default)"].backbone_dtype)
    rows = _rows(times, "resnet50 features (reference)")
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
    from .models import build_encoder, build_model
    from .optimize import native_bf16
    from .train.loss import segmentation_loss

    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, num_classes, (batch, size, size), device=device)
    gcn = build_model(_gcnseg_r50(), num_classes).train().to(device)
    backbone = build_encoder("resnet50").train().to(device)
    opt_g = torch.optim.SGD(gcn.parameters(), lr=1e-6, momentum=0.99)
    opt_b = torch.optim.SGD(backbone.parameters(), lr=1e-6, momentum=0.99)

    def step_gcn(dtype: torch.dtype | None = amp) -> None:
        opt_g.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):  # what train.amp does
            logits = gcn(x)
        segmentation_loss(logits, y, 255).backward()  # the loss is computed in float32
        opt_g.step()
        _sync(device)

    def step_backbone() -> None:
        opt_b.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=amp, enabled=amp is not None):
            feats = backbone(x)
        sum(f.float().mean() for f in feats).backward()
        opt_b.step()
        _sync(device)

    steps = {"backbone forward+backward+SGD (reference)": step_backbone, "GCNSeg-R50 training step": step_gcn}
    if device == "cpu" and amp is None and native_bf16():
        steps["GCNSeg-R50 training step, bf16 autocast (train.amp=bf16)"] = lambda: step_gcn(torch.bfloat16)
    times = _round_times(steps, repeats, warmup)
    return {"rows": _rows(times, "backbone forward+backward+SGD (reference)")}


def bench_metrics(repeats: int, num_classes: int = 19, size: tuple[int, int] = (1024, 2048)) -> dict[str, Any]:
    """Mpx/s of confusion matrix + boundary band on Cityscapes-sized label maps."""
    import numpy as np

    from .metrics import SegMetrics

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
        t = _median_times({"m": functools.partial(m.update, pred_t, target_t)}, repeats, 1)["m"]
        out[name] = h * w / t / 1e6
    return {"mpx_per_s": out}


_PEAK_SCRIPT = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
from gcnseg.bench import _gcnseg_r50
from gcnseg.models import build_model
from gcnseg.optimize import optimize_for_inference
from gcnseg.inference import predict_scores

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

model = optimize_for_inference(build_model(_gcnseg_r50(), 19).eval())
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


def format_rows(title: str, rows: list[dict[str, Any]]) -> str:
    lines = [title, f"  {'':<42}{'ms':>10}{'ratio':>9}"]
    lines += [f"  {r['name']:<42}{r['ms']:>10.1f}{r['ratio']:>8.2f}x" for r in rows]
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, default=512, help="square input size (default 512)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per model (median; default 5)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", dest="json_out", help="write the results to this JSON file")
    p.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["inference", "train", "metrics", "memory", "gpu"],
        help="parts to leave out",
    )


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "size": args.size,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "cpu": _cpu_name(),
    }
    print(
        f"gcnseg bench: 1x3x{args.size}x{args.size}, {args.threads} threads, median of {args.repeats} "
        f"after {args.warmup} warm-up, torch {torch.__version__}, {result['cpu']}"
    )
    if "inference" not in args.skip:
        r = bench_inference(args.size, args.repeats, args.warmup)
        result["inference"] = r
        print(format_rows("inference (eval, fp32)", r["rows"]))
        a = r["optimised_argmax_agreement"]
        print(
            f"  argmax agreement with eager on this untrained network (near-tied scores): fp32 "
            f"{100 * a['fp32']:.3f}%, default ({r['default_backbone_dtype']} backbone) {100 * a['default']:.3f}%"
        )
    if "train" not in args.skip:
        r = bench_train_step(args.size, max(3, args.repeats // 2), 1)
        result["train"] = r
        print(format_rows("training step (batch 1)", r["rows"]))
    if "metrics" not in args.skip:
        r = bench_metrics(args.repeats)
        result["metrics"] = r
        print(
            "metric accumulation, 1024x2048 label maps: "
            + ", ".join(f"{k} {v:.0f} Mpx/s" for k, v in r["mpx_per_s"].items())
        )
    if "memory" not in args.skip:
        r = bench_peak_memory(args.threads)
        result["memory"] = r
        print(
            f"peak memory, optimised inference on 1x3x1024x2048: {r['peak_rss_gib']:.2f} GiB "
            f"(process with the model loaded: {r['model_loaded_rss_gib']:.2f} GiB)"
        )
    if "gpu" not in args.skip and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # every model autotuned alike, in the warm-up calls
        rows = {}
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
            rows[name] = bench_inference(args.size, args.repeats, args.warmup, batch=16, device="cuda", amp=dtype)
            print(format_rows(f"GPU inference, batch 16, {name}", rows[name]["rows"]))
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
            r = bench_train_step(args.size, args.repeats, args.warmup, batch=16, device="cuda", amp=dtype)
            rows[f"train {name}"] = r
            print(format_rows(f"GPU training step, batch 16, {name}", r["rows"]))
        result["gpu"] = {"device": torch.cuda.get_device_name(), **rows}
    if args.json_out:
        from .runtime import atomic_write_text

        atomic_write_text(Path(args.json_out), json.dumps(result, indent=2))
        print(f"written {args.json_out}")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"
