"""GPU checks, run by hand where a GPU is lent (CI has none; nothing depends on it).

    python benchmarks/gpu_check.py OUT_DIR [--quick]

1. CUDA computes what the CPU computes: a small GCNSeg in float32 (TF32 off),
   eager and through the optimised inference path (which picks float32 on a GPU).
2. The command line on CUDA: ``train`` with ``train.amp=fp16`` (GradScaler) and
   ``bf16``, ``train`` under ``torchrun`` (NCCL, DistributedDataParallel), then
   ``eval`` and ``predict`` of the trained run.
3. Memory layout on the GPU: eager GCNSeg-R50, batch 16, bf16 autocast, NCHW
   weights against GCNSeg's channels-last ones (same process, round-robin; the
   decoder's score maps are channels-last in both).
4. ``gcnseg bench``'s GPU rows (inference and training step, batch 16, fp32 /
   bf16 / fp16) into ``OUT_DIR/gpu_bench.json``.
5. A profile of one bf16 training step (the CUDA kernels by time).
6. The compiled paths on CUDA: the compiled inference network at 1024x2048 (its labels
   against eager's, ms both ways) and the bf16 training step of GCNSeg-R50 eager and
   compiled (images/s), into ``OUT_DIR/gpu_check.json``.

Every check asserts; the script exits non-zero on the first failure, and at once
where there is no CUDA device. ``--quick`` shrinks sizes and steps (a dry run of
the plumbing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def gcnseg(*args: str, torchrun: bool = False) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    prefix = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m"]
        if torchrun
        else [sys.executable, "-m"]
    )
    cmd = prefix + ["gcnseg", *args]
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    print(f"$ {' '.join(cmd[2:])}  [{time.perf_counter() - t:.1f} s, rc {out.returncode}]")
    tail = (out.stdout + out.stderr).strip().splitlines()[-6:]
    print("\n".join("    " + line for line in tail))
    assert out.returncode == 0, f"{' '.join(args)} failed"
    return out.stdout + out.stderr


def check_cuda_equals_cpu() -> None:
    from gcnseg.metrics import label_agreement
    from gcnseg.models import GCNSeg
    from gcnseg.optimize import optimize_for_inference

    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = GCNSeg(5, "resnet18", k=7).eval()
    x = torch.randn(2, 3, 96, 128)
    with torch.inference_mode():
        cpu = model(x)
        gpu_model = model.to("cuda")
        gpu = gpu_model(x.cuda()).cpu()
        opt = optimize_for_inference(gpu_model)
        gpu_opt = opt(x.cuda()).cpu()
    diff = (cpu - gpu).abs().max().item()
    agree = label_agreement([(gpu.argmax(1), cpu.argmax(1))])
    agree_opt = label_agreement([(gpu_opt.argmax(1), cpu.argmax(1))])
    print(
        f"CUDA vs CPU, fp32: max |diff| {diff:.2e} (scores up to {cpu.abs().max().item():.2f}), "
        f"argmax agreement {100 * agree:.3f}%, optimised path ({opt.backbone_dtype}) {100 * agree_opt:.3f}%"
    )
    assert gpu.shape == cpu.shape == (2, 5, 96, 128)
    assert diff < 1e-3 * max(1.0, cpu.abs().max().item()), diff
    assert agree >= 0.999, agree
    assert agree_opt >= 0.999, agree_opt
    assert opt.backbone_dtype == torch.float32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32  # PyTorch's defaults back


def check_command_line(out: Path, steps: int) -> dict[str, float]:
    base = [
        "--config",
        "configs/demo.yaml",
        "--no-progress",
        "train.device=cuda",
        f"train.iterations={steps}",
        f"train.val_every={steps}",
        "train.previews=2",
        "data.options.eval_length=16",
    ]
    mious = {}
    for amp in ("fp16", "bf16"):
        run = out / f"train_{amp}"
        gcnseg("train", *base, f"out_dir={run}", f"train.amp={amp}")
        summary = json.loads((run / "summary.json").read_text())
        assert summary["steps"] == steps, summary["steps"]
        mious[amp] = float(summary["final"]["miou"])
        print(f"    train.amp={amp}: {steps} steps in {summary['train_seconds']} s, val mIoU {100 * mious[amp]:.2f}")
    ddp = out / "train_ddp"
    gcnseg("train", *base, f"out_dir={ddp}", "train.amp=bf16", torchrun=True)
    assert (ddp / "last.json").exists()
    gcnseg(
        "eval",
        "--checkpoint",
        str(out / "train_bf16"),
        "--device",
        "cuda",
        "--limit",
        "8",
        "--json",
        str(out / "eval_cuda.json"),
    )
    result = json.loads((out / "eval_cuda.json").read_text())
    print(f"eval on CUDA: {json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))})}")
    previews = sorted((out / "train_bf16" / "previews").glob("*.png"))
    assert previews, "no preview pictures"
    gcnseg(
        "predict",
        "--checkpoint",
        str(out / "train_bf16"),
        str(previews[0]),
        "--out",
        str(out / "pred"),
        "--device",
        "cuda",
    )
    assert any((out / "pred").iterdir())
    return mious


def check_layout(size: int, batch: int, repeats: int) -> dict[str, float]:
    from gcnseg.bench import ratio_rows, round_times
    from gcnseg.models import GCNSeg

    torch.backends.cudnn.benchmark = True
    x = torch.randn(batch, 3, size, size, device="cuda")
    nchw = GCNSeg(21, "resnet50").eval().cuda().to(memory_format=torch.contiguous_format)
    cl = GCNSeg(21, "resnet50").eval().cuda()  # GCNSeg's own layout: channels-last weights
    xcl = x.contiguous(memory_format=torch.channels_last)

    def call(m: torch.nn.Module, inp: torch.Tensor):
        def fn() -> None:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                m(inp)
            torch.cuda.synchronize()

        return fn

    rows = ratio_rows(round_times({"NCHW": call(nchw, x), "channels-last": call(cl, xcl)}, repeats, 3), "NCHW")
    for r in rows:
        print(f"eager GCNSeg-R50, batch {batch}, bf16, {r['name']:<14} {r['ms']:8.1f} ms  {r['ratio']:.2f}x")
    return {r["name"]: r["ms"] for r in rows}


def profile_training_step(size: int, batch: int, out: Path) -> None:
    """The CUDA kernels of one bf16-autocast training step of GCNSeg-R50, by time."""
    from torch.profiler import ProfilerActivity, profile

    from gcnseg.models import GCNSeg
    from gcnseg.train import segmentation_loss

    model = GCNSeg(21, "resnet50").train().cuda()
    opt = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device="cuda")
    y = torch.randint(0, 21, (batch, size, size), device="cuda")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x)
        segmentation_loss(out, y, 255).backward()
        opt.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        for _ in range(2):
            step()
        torch.cuda.synchronize()
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_device_time_total", row_limit=30, max_name_column_width=40, max_shapes_column_width=90
    )
    (out / "gpu_profile.txt").write_text(table)
    print(f"profile of a bf16 training step, batch {batch}: {out / 'gpu_profile.txt'}")


def check_compiled(size: int, batch: int, rounds: int, device: str = "cuda") -> dict[str, float]:
    """Issue 23 on a GPU: compiled inference (1024x2048, or ``size`` x 2``size``) and the
    compiled bf16 training step, against eager in the same process."""
    from gcnseg.metrics import label_agreement
    from gcnseg.models import GCNSeg
    from gcnseg.optimize import inference_model
    from gcnseg.train import segmentation_loss

    def timed(fn, n: int) -> float:
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t) / n

    model = GCNSeg(19, "resnet50").eval().to(device)
    compiled = inference_model(model, precision="fp32", compile="on", notify=print)
    x = torch.randn(1, 3, size, 2 * size, device=device)
    with torch.inference_mode():
        agree = label_agreement([(compiled(x).argmax(1), model(x).argmax(1))])
        eager_s, compiled_s = timed(lambda: model(x), rounds), timed(lambda: compiled(x), rounds)
    assert agree >= 0.99, f"compiled inference agrees on {agree:.4f} of the pixels"
    net = GCNSeg(21, "resnet50").train().to(device)
    step_net = torch.compile(net)
    opt = torch.optim.SGD(net.parameters(), lr=1e-6, momentum=0.9)
    xb = torch.randn(batch, 3, size // 2, size // 2, device=device)
    yb = torch.randint(0, 21, (batch, size // 2, size // 2), device=device)

    def step(m) -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16):
            out = m(xb)
        segmentation_loss(out, yb, 255).backward()
        opt.step()

    t = time.perf_counter()
    step(step_net)
    compile_s = time.perf_counter() - t
    train_eager, train_compiled = timed(lambda: step(net), rounds), timed(lambda: step(step_net), rounds)
    result = {
        "inference_agreement": agree,
        f"inference_{size}x{2 * size}_eager_ms": 1000 * eager_s,
        f"inference_{size}x{2 * size}_compiled_ms": 1000 * compiled_s,
        "train_bf16_eager_img_per_s": batch / train_eager,
        "train_bf16_compiled_img_per_s": batch / train_compiled,
        "train_compile_s": compile_s,
    }
    print("compiled paths:", json.dumps(result))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}"
    )
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 1
    report: dict[str, object] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    check_cuda_equals_cpu()
    report["demo_val_miou"] = check_command_line(args.out, 20 if args.quick else 100)
    size = 128 if args.quick else 512
    report["layout_ms"] = check_layout(size, 16, 5 if args.quick else 10)
    gcnseg(
        "bench",
        "--size",
        str(size),
        "--repeats",
        "3" if args.quick else "10",
        "--skip",
        "inference",
        "train",
        "metrics",
        "memory",
        "--json",
        str(args.out / "gpu_bench.json"),
    )
    profile_training_step(size, 16, args.out)
    report["compiled"] = check_compiled(256 if args.quick else 1024, 16, 3 if args.quick else 10)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print("all GPU checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
