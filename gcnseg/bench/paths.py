"""``gcnseg bench --paths``: the inference paths of the shipped CamVid model
(``camvid-gcn-lite0``, 360x480, real CamVid images) side by side, each row naming its
path (precision, compiled or not, runtime), with its argmax agreement with eager
float32 on validation images; and its training step eager and compiled, against the
encoder's eager forward+backward (the issue's goal: at most 1.2x)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..metrics.agreement import label_agreement
from .timing import describe_path, ratio_rows, round_times

MODEL = "camvid-gcn-lite0"
AGREEMENT_IMAGES = 34  # validation images spread over the split
TRAIN_CROPS = (4, 352, 480)  # the training step's batch: the camvid_lite0 recipe's crops


def _agreement(net: nn.Module, model: nn.Module, images: list[torch.Tensor]) -> float:
    """The argmax agreement of ``net`` with the eager ``model`` on ``images``."""
    with torch.inference_mode():
        return label_agreement((net(x).argmax(1), model(x).argmax(1)) for x in images)


def bench_paths(
    root: str, repeats: int, warmup: int, train: bool = True, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Rows for every inference path (and, with ``train``, the compiled training step)."""
    from ..checkpoint import load_model
    from ..config import apply_overrides
    from ..data import build_dataset
    from ..int8 import Int8Model, calibration_sets
    from ..optimize import inference_model
    from ..runtime import instruction_set

    model, cfg, _ = load_model(MODEL)
    cfg = apply_overrides(cfg, [f"data.root={root}"])
    model.eval()
    val = build_dataset(cfg.data, cfg.data.val_split, train=False)
    n = len(val)
    images = [val[round(i * (n - 1) / (AGREEMENT_IMAGES - 1))][0][None] for i in range(min(n, AGREEMENT_IMAGES))]
    x = images[0]
    fast = inference_model(model, compile="off")  # "auto" precision: what eval and predict run here
    default = "bf16" if getattr(fast, "backbone_dtype", torch.float32) == torch.bfloat16 else "fp32"
    nets: dict[str, nn.Module] = {
        "eager fp32 (reference)": model,
        "optimised fp32": inference_model(model, precision="fp32", compile="off"),
        f"optimised default ({default})": fast,
        f"compiled optimised ({default})": inference_model(model, compile="on", notify=say),
    }
    cal, check = calibration_sets(cfg.data)
    nets["int8 guarded (ONNX Runtime)"] = Int8Model(model, cal, check, notify=say)
    nets["int8 every convolution (ONNX Runtime, no guard)"] = Int8Model(model, cal, check, notify=say, target=0.0)
    first_call: dict[str, float] = {}
    with torch.inference_mode():
        for name, net in nets.items():  # compiles, quantises (cached after): timed apart
            t = time.perf_counter()
            net(x)
            first_call[name] = time.perf_counter() - t

    def call(net: nn.Module) -> Callable[[], Any]:
        def fn() -> Any:
            with torch.inference_mode():
                return net(x)

        return fn

    rows = ratio_rows(round_times({k: call(v) for k, v in nets.items()}, repeats, warmup), "eager fp32 (reference)")
    isa = instruction_set()
    for row in rows:
        net = nets[row["name"]]
        row["speedup"] = round(1 / row["ratio"], 2)
        row["instruction_set"] = isa
        row["path"] = describe_path(net)
        row["first_call_s"] = round(first_call[row["name"]], 1)
        row["argmax_agreement"] = _agreement(net, model, images) if net is not model else 1.0
        records = getattr(net, "records", None)
        if records is not None:
            rec = records.get(tuple(x.shape[-2:]))
            row["int8"] = "float32 fallback" if rec is None else {
                "float32_convolutions": rec["float32_convolutions"], "convolutions": rec["convolutions"],
                "check_agreement": rec["agreement"],
            }  # fmt: skip
    result: dict[str, Any] = {"model": MODEL, "size": list(x.shape[-2:]), "inference": rows}
    if train:
        result["train"] = _train_rows(cfg, max(3, repeats // 2), say)
        result["train_crops"] = list(TRAIN_CROPS)
    return result


def _train_rows(cfg: Any, repeats: int, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """One training step (:data:`TRAIN_CROPS`, fp32) eager and compiled, against the
    encoder's eager forward+backward."""
    from ..models import build_encoder, build_model
    from ..train.loss import segmentation_loss

    torch.manual_seed(0)
    n, h, w = TRAIN_CROPS
    crops = torch.randn(n, 3, h, w)
    target = torch.randint(0, 11, (n, h, w))
    encoder = build_encoder(cfg.model.backbone).train().to(memory_format=torch.channels_last)
    net = build_model(cfg.model, 11).train()
    compiled = torch.compile(net)

    def step(m: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def fn() -> None:
            net.zero_grad(set_to_none=True)
            segmentation_loss(m(crops), target, 255).backward()

        return fn

    def encoder_step() -> None:
        encoder.zero_grad(set_to_none=True)
        sum(f.mean() for f in encoder(crops.contiguous(memory_format=torch.channels_last))).backward()

    say("compiling the training step (torch.compile: minutes the first time)")
    t = time.perf_counter()
    step(compiled)()
    compile_s = time.perf_counter() - t
    steps = {
        "encoder fwd+bwd, eager fp32 (reference)": encoder_step,
        "GCNSeg-lite0 training step, eager fp32": step(net),
        "GCNSeg-lite0 training step, compiled fp32": step(compiled),
    }
    rows = ratio_rows(round_times(steps, repeats, 1), "encoder fwd+bwd, eager fp32 (reference)")
    for row in rows:
        row["images_per_s"] = round(1000 * n / row["ms"], 2)
        row["path"] = "compiled fp32" if "compiled" in row["name"] else "eager fp32"
    rows[-1]["first_call_s"] = round(compile_s, 1)
    return rows
