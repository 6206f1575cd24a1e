"""``gcnseg bench``: GCNSeg timed side by side with what users would pick instead (ratios
against a reference run in the same process; see :mod:`gcnseg.bench`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .args import add_json, check_json, human, positive_int, write_json


def format_rows(title: str, rows: list[dict[str, Any]]) -> str:
    """A table of bench rows: name, ms, ratio, images/s where known, and the path each ran."""
    per_s = all("images_per_s" in r for r in rows)
    lines = [title, f"  {'':<50}{'ms':>10}{'ratio':>9}" + (f"{'img/s':>9}" if per_s else "") + "  path"]
    lines += [f"  {r['name']:<50}{r['ms']:>10.1f}{r['ratio']:>8.2f}x" + (f"{r['images_per_s']:>9.2f}" if per_s else "")
              + f"  {r.get('path', '')}" for r in rows]  # fmt: skip
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=positive_int, default=512, help="square input size")
    p.add_argument(
        "--threads", type=positive_int, help="torch intra-op threads (default: every core this process may use)"
    )
    p.add_argument("--repeats", type=positive_int, default=5, help="timed calls per model (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per model first")
    p.add_argument(
        "--paths",
        metavar="CAMVID",
        help="also time the inference paths of camvid-gcn-lite0 (eager, optimised, compiled, int8: agreement on "
        "CamVid val, int8 calibrated on its train) and its training step eager and compiled, on the CamVid "
        "folder CAMVID (minutes: it compiles and quantises)",
    )
    add_json(p, "the measurements")
    p.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["inference", "train", "lite", "metrics", "memory", "gpu"],
        help="parts to leave out",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from ..bench import bench_inference, bench_metrics, bench_peak_memory, bench_train_step
    from ..runtime import available_cores, cpu_features, instruction_set

    check_json(args.json)
    if args.paths and not Path(args.paths).is_dir():  # said now, not after the other parts have run
        from ..errors import GcnsegError

        raise GcnsegError(f"--paths {args.paths}: not a folder (expected a CamVid folder: train/, val/, ...)")
    args.threads = args.threads or available_cores()
    out = human(args.json)
    say = lambda *a: print(*a, file=out)
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "size": args.size,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "cpu": _cpu_name(),
        "instruction_set": instruction_set(),  # what torch dispatches to: name it beside every figure
        "cpu_flags": [f for f, has in cpu_features().items() if has],
    }
    say(
        f"gcnseg bench: 1x3x{args.size}x{args.size}, {args.threads} threads, median of {args.repeats} "
        f"after {args.warmup} warm-up, torch {torch.__version__}, {result['cpu']}"
    )
    say(
        f"  instruction set (torch's dispatch): {result['instruction_set']}; CPU flags: {' '.join(result['cpu_flags'])}"
    )
    if "inference" not in args.skip:
        r = bench_inference(args.size, args.repeats, args.warmup)
        result["inference"] = r
        say(format_rows(f"inference (eval), {result['instruction_set']}", r["rows"]))
        a = r["optimised_argmax_agreement"]
        say(
            f"  argmax agreement with eager on this untrained network (near-tied scores): fp32 "
            f"{100 * a['fp32']:.3f}%, default ({r['default_backbone_dtype']} backbone) {100 * a['default']:.3f}%"
        )
    if "train" not in args.skip:
        r = bench_train_step(args.size, max(3, args.repeats // 2), 1)
        result["train"] = r
        say(format_rows(f"training step (batch 1), {result['instruction_set']}", r["rows"]))
    if "lite" not in args.skip:
        from ..bench.lite import bench_lite
        from ..errors import GcnsegError

        try:
            r = bench_lite(args.repeats, args.warmup)
        except (ImportError, GcnsegError) as e:  # timm is the pretrained extra
            say(f"light encoders: skipped ({e})")
        else:
            result["lite"] = r
            say(
                format_rows(
                    f"light encoders, inference 1x3x360x480 (eval), {result['instruction_set']}",
                    r["inference"],
                )
            )
            say(
                format_rows(
                    f"light encoders, training step, 4 crops of 352x480, {result['instruction_set']}", r["train"]
                )
            )
            say("  GCNSeg-lite0 eager inference: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["shares"].items()))
    if "metrics" not in args.skip:
        r = bench_metrics(args.repeats)
        result["metrics"] = r
        say(
            "metric accumulation, 1024x2048 label maps: "
            + ", ".join(f"{k} {v:.0f} Mpx/s" for k, v in r["mpx_per_s"].items())
        )
    if "memory" not in args.skip:
        r = bench_peak_memory(args.threads)
        result["memory"] = r
        say(
            f"peak memory, optimised inference on 1x3x1024x2048: {r['peak_rss_gib']:.2f} GiB "
            f"(process with the model loaded: {r['model_loaded_rss_gib']:.2f} GiB)"
        )
    if args.paths:
        from ..bench.paths import bench_paths

        r = bench_paths(args.paths, args.repeats, args.warmup, say=lambda line: say(f"  {line}"))
        result["paths"] = r
        isa = result["instruction_set"]
        title = (
            f"inference paths, camvid-gcn-lite0 1x3x{r['size'][0]}x{r['size'][1]}, {isa}, {args.threads} threads "
            "(goals: compiled faster "
            "than optimised; int8 at least 2x eager fp32 with 99.5% agreement)"
        )
        say(format_rows(title, r["inference"]))
        for row in r["inference"]:
            extra = f", int8: {row['int8']}" if "int8" in row else ""
            say(
                f"  {row['name']}: {row['speedup']:.2f}x eager fp32, argmax agreement {100 * row['argmax_agreement']:.2f}% "
                f"on CamVid val, first call {row['first_call_s']:.0f} s{extra}"
            )
        if "train" in r:
            n, h, w = r["train_crops"]
            say(format_rows(f"training step, {n} crops of {h}x{w}, fp32, {isa} (goal: at most 1.2x)", r["train"]))
    if "gpu" not in args.skip and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # every model autotuned alike, in the warm-up calls
        rows = {}
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
            rows[name] = bench_inference(args.size, args.repeats, args.warmup, batch=16, device="cuda", amp=dtype)
            say(format_rows(f"GPU inference, batch 16, {name}", rows[name]["rows"]))
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
            r = bench_train_step(args.size, args.repeats, args.warmup, batch=16, device="cuda", amp=dtype)
            rows[f"train {name}"] = r
            say(format_rows(f"GPU training step, batch 16, {name}", r["rows"]))
        result["gpu"] = {"device": torch.cuda.get_device_name(), **rows}
    write_json(args.json, result)
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
