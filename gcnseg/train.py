"""``gcnseg train``: the paper's training recipe (Section 4) as one loop.

SGD (momentum 0.99, weight decay 5e-4 in the paper configs) or Adam, a poly
schedule, cross-entropy with the ignore index; validation (mIoU) every N
steps with the best checkpoint kept beside the last; exact resume; several
processes through ``torchrun`` and DistributedDataParallel.

Determinism: the order of samples is a function of (seed, epoch) and the random
augmentation of each sample a function of (seed, epoch, index), whatever the
number of processes or data workers. So a resumed run repeats exactly what the
uninterrupted run would have done, and N processes with batch B see the same
global batches as one process with batch N*B.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from .checkpoint import (
    CheckpointError,
    atomic_write_text,
    load_train_state,
    load_weights,
    resolve_checkpoint,
    save_checkpoint,
)
from .config import Config, load_config
from .errors import GcnsegError


class TrainingError(GcnsegError):
    """Training cannot go on (e.g. a non-finite loss)."""


# ----------------------------------------------------------------------------- set-up


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GcnsegError(f"train.device={name}: CUDA is not available on this machine (use cpu or auto)")
    return device


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); initialises the process group when started by ``torchrun``."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def build_model(cfg: Config, num_classes: int) -> nn.Module:
    from .models import GCNSeg

    m = cfg.model
    return GCNSeg(num_classes, m.backbone, m.head, m.k, m.br, m.upsample, m.weights, m.m)


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    # no weight decay on BatchNorm and biases (as in torchvision's references)
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr)
    raise GcnsegError(f"optim.name={o.name!r}: expected sgd, adam or adamw")


def lr_factor(cfg: Config, step: int, total: int) -> float:
    """Linear warm-up, then poly decay ``(1 - t)^power`` (or constant)."""
    o = cfg.optim
    if step < o.warmup_iters:
        return (step + 1) / o.warmup_iters
    if o.schedule == "constant":
        return 1.0
    if o.schedule == "poly":
        return max(0.0, 1 - step / max(total, 1)) ** o.power
    raise GcnsegError(f"optim.schedule={o.schedule!r}: expected poly or constant")


# ----------------------------------------------------------------------------- data order


class SeededSamples(Dataset):
    """Each item is fetched as ``(index, seed)``: augmentation runs under its own seed."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


class EpochSampler(Sampler):
    """This process's share of one epoch, from ``start`` batches on.

    The permutation depends only on (seed, epoch); process ``rank`` takes every
    ``world``-th sample, so the global batch is the same for any process count.
    """

    def __init__(self, n: int, batch: int, rank: int, world: int, seed: int, epoch: int, start: int = 0) -> None:
        self.n, self.batch, self.rank, self.world = n, batch, rank, world
        self.seed, self.epoch, self.start = seed, epoch, start

    def steps(self) -> int:
        return self.n // (self.batch * self.world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g)[: self.steps() * self.batch * self.world]
        global_order = perm.view(-1, self.world)  # row t: samples t*world .. t*world+world-1
        mine = global_order[:, self.rank].tolist()
        base = (self.seed * 7919 + self.epoch) * 1_000_003
        for i in mine[self.start * self.batch :]:
            yield i, base + i

    def __len__(self) -> int:
        return (self.steps() - self.start) * self.batch


# ----------------------------------------------------------------------------- logging


class RunLog:
    """metrics.jsonl and TensorBoard events (rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is a dependency; keep training without it anyway
                self.tb = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            tag = record.get("split", "train")
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step" and not (isinstance(v, float) and math.isnan(v)):
                    self.tb.add_scalar(f"{tag}/{k}", v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# ----------------------------------------------------------------------------- the loop


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Cross-entropy averaged over the labelled pixels (0 when there are none)."""
    logits = logits.float()
    if logits.device.type == "cpu" and logits.dim() == 4 and logits.is_contiguous(memory_format=torch.channels_last):
        # GCNSeg's channels-last scores as a (pixels, classes) view: log-softmax over
        # contiguous rows, and the gradient comes back channels-last (512x512, 21
        # classes: loss + gradient 34 -> 9 ms). Not on CUDA, whose 2-D NLL loss reduces
        # in one block (15% of an H200 training step); NCHW scores take the plain call
        n, c, h, w = logits.shape
        if target.shape != (n, h, w):  # what the plain call would refuse
            raise ValueError(f"target of shape {tuple(target.shape)} for scores of shape {tuple(logits.shape)}: "
                             f"expected {(n, h, w)}")
        logits, target = logits.permute(0, 2, 3, 1).reshape(-1, c), target.reshape(-1)
    loss = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    return loss / (target != ignore_index).sum().clamp(min=1)


def set_batchnorm_eval(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(cfg: Config, resume: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the summary (also written to ``summary.json``)."""
    from tqdm import tqdm

    from .data import build_dataset
    from .evaluate import evaluate, write_previews

    t = cfg.train
    device = resolve_device(t.device)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}.get(t.amp, "bad")
    if amp_dtype == "bad":
        raise GcnsegError(f"train.amp={t.amp!r}: expected bf16, fp16 or null")
    if amp_dtype == torch.float16 and device.type != "cuda":
        raise GcnsegError(f"train.amp=fp16 needs a CUDA device (this run is on {device}); use train.amp=bf16 on a CPU")
    rank, world = init_distributed(device)
    is_main = rank == 0
    if amp_dtype == torch.bfloat16 and device.type == "cpu" and is_main:
        from .optimize import native_bf16

        if not native_bf16():
            print("warning: train.amp=bf16 on a CPU without native bf16 (AVX512-BF16/AMX): emulated, "
                  "likely slower than float32", file=sys.stderr)
    if t.threads:
        torch.set_num_threads(t.threads)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    _seed_everything(t.seed)

    run_dir = Path(cfg.out_dir)
    if not resume and (run_dir / "last.json").exists():  # every process refuses, none is left waiting
        raise GcnsegError(f"{run_dir}: already holds a run; use --resume {run_dir} or another out_dir")
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())

    train_set = build_dataset(cfg.data, cfg.data.train_split, train=True)
    val_set = build_dataset(cfg.data, cfg.data.val_split, train=False)
    num_classes, ignore = train_set.num_classes, cfg.data.ignore_index

    model = build_model(cfg, num_classes)
    if t.init_from:
        load_weights(model, resolve_checkpoint(t.init_from, prefer="best"))
    if t.freeze_backbone:
        # only the score heads, BR blocks and deconvolutions learn (BatchNorm statistics of the
        # backbone still follow the data unless freeze_bn); the demo's miniature of a fixed,
        # pretrained feature network whose valid receptive field the head cannot widen
        for p in model.backbone.parameters():
            p.requires_grad_(False)
    if t.sync_bn and world > 1:
        if device.type == "cpu":
            raise GcnsegError("train.sync_bn: PyTorch's SyncBatchNorm needs GPUs; on CPU use train.freeze_bn=true or sync_bn=false")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if t.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, model)

    sampler0 = EpochSampler(len(train_set), t.batch_size, rank, world, t.seed, 0)
    steps_per_epoch = sampler0.steps()
    if steps_per_epoch == 0:
        raise GcnsegError(
            f"data: {len(train_set)} training images are fewer than one global batch ({t.batch_size} x {world} processes)"
        )
    total = t.epochs * steps_per_epoch if t.epochs is not None else t.iterations
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(cfg, s, total))

    step, best = 0, {"miou": -1.0, "step": None}
    seconds_before = 0.0  # training time of earlier sessions of a resumed run
    if resume:
        ckpt = resolve_checkpoint(run_dir, prefer="last")
        load_weights(model, ckpt)
        state = load_train_state(ckpt)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, best = int(state["step"]), state["best"]
        torch.set_rng_state(state["rng"])
        seconds_before = float(state.get("seconds", 0.0))

    ddp = model
    if world > 1:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    # autocast on CUDA and, for bf16, on the CPU: oneDNN's native bf16 (AVX512-BF16 / AMX)
    # runs the convolutions about 1.8x faster (gcnseg bench); without it, the same maths emulated
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    log = RunLog(run_dir, is_main)
    meta_base = {
        "config": cfg.to_dict(),
        "num_classes": num_classes,
        "classes": list(train_set.classes),
        "palette": [list(c) for c in train_set.palette],
        "ignore_index": ignore,
    }

    def checkpoint(metrics: dict[str, Any] | None, is_best: bool) -> None:
        if not is_main:
            return
        meta = {**meta_base, "step": step, "epoch": step / steps_per_epoch, "metrics": metrics or {}}
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "best": best,
            "rng": torch.get_rng_state(),
            "seconds": seconds_before + time.perf_counter() - start_time,
        }
        save_checkpoint(run_dir, model, meta, state, pointers=("last", "best") if is_best else ("last",))

    def validate() -> dict[str, Any]:
        nonlocal best
        result = evaluate(model, val_set, cfg.eval, device, num_classes, ignore, show_progress=False, amp_dtype=amp_dtype)
        record = {"step": step, "split": "val", **{k: v for k, v in result.items() if isinstance(v, (int, float))}}
        log.write(record)
        improved = result["miou"] is not None and result["miou"] > best["miou"]
        if improved:
            best = {"miou": result["miou"], "step": step}
        checkpoint(result, improved)
        model.train()
        if t.freeze_bn:
            set_batchnorm_eval(model)
        return result

    bar = tqdm(total=total, initial=step, disable=not (is_main and show_progress), dynamic_ncols=True,
               desc=cfg.name, unit="it", mininterval=1.0)
    model.train()
    if t.freeze_bn:
        set_batchnorm_eval(model)
    seen, window_start, last_loss = 0, time.perf_counter(), float("nan")
    train_items = SeededSamples(train_set)
    start_time = time.perf_counter()
    # train.max_minutes: a wall-clock budget over all sessions of the run (gcnseg ablate --budget 20m)
    deadline = None if t.max_minutes is None else start_time + 60 * t.max_minutes - seconds_before
    stop = False
    try:
        while step < total and not stop:
            epoch, offset = divmod(step, steps_per_epoch)
            sampler = EpochSampler(len(train_set), t.batch_size, rank, world, t.seed, epoch, offset)
            loader = DataLoader(train_items, batch_size=t.batch_size, sampler=sampler, num_workers=cfg.data.workers,
                                drop_last=True, pin_memory=device.type == "cuda", persistent_workers=False)
            for images, masks in loader:
                images = images.to(device, non_blocking=True)
                masks = masks.to(device, non_blocking=True)
                if t.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext():
                    logits = ddp(images)
                loss = segmentation_loss(logits, masks, ignore)  # in float32, whatever the autocast dtype
                if not _all_finite(loss):
                    where = run_dir / "last.json"
                    raise TrainingError(
                        f"loss is {loss.item()} at step {step + 1} (lr {scheduler.get_last_lr()[0]:.3g}); "
                        f"lower optim.lr; the last good checkpoint is {where if where.exists() else 'not written yet'}"
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                seen += images.shape[0] * world
                last_loss = loss.item()
                if is_main and (step % max(t.log_every, 1) == 0 or step == total):
                    now = time.perf_counter()
                    ips = seen / max(now - window_start, 1e-9)
                    seen, window_start = 0, now
                    lr = scheduler.get_last_lr()[0]
                    log.write({"step": step, "split": "train", "loss": last_loss, "lr": lr, "img_per_s": ips})
                    bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}", img_s=f"{ips:.1f}", refresh=False)
                bar.update(1)
                _after_step(step)
                if t.val_every and step % t.val_every == 0 and step < total:
                    r = validate()
                    bar.write(f"step {step}: val mIoU {_pct(r['miou'])}")
                elif t.checkpoint_every and step % t.checkpoint_every == 0:
                    checkpoint(None, False)
                stop = step >= total or _out_of_time(deadline, device)
                if stop:
                    break
        bar.close()
        final = validate()
    finally:
        bar.close()
        log.close()

    summary = {
        "name": cfg.name,
        "steps": step,
        "train_seconds": round(seconds_before + time.perf_counter() - start_time, 1),
        "final": {k: v for k, v in final.items() if k != "matrix"},
        "best": best,
        "run_dir": str(run_dir),
        "last": str(resolve_checkpoint(run_dir, "last")) if is_main else None,
        "best_checkpoint": str(resolve_checkpoint(run_dir, "best")) if is_main else None,
    }
    if is_main:
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
        try:
            from .plots import plot_curves

            plot_curves(run_dir / "metrics.jsonl", run_dir / "curves.png")
            summary["curves"] = str(run_dir / "curves.png")
        except Exception as e:  # a picture must never lose a finished run
            print(f"gcnseg: warning: could not draw curves ({e})", file=sys.stderr)
        if t.previews:
            summary["previews"] = str(write_previews(model, val_set, run_dir / "previews", t.previews, device))
    if dist.is_initialized():
        dist.barrier()
    return summary


def _any_process(flag: bool, device: torch.device) -> bool:
    """True if ``flag`` holds on any process: under torchrun all processes stop
    together, none is left waiting for another's gradients."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor(float(flag), device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _all_finite(loss: torch.Tensor) -> bool:
    """Is the loss finite on every process?"""
    return not _any_process(not bool(torch.isfinite(loss.detach())), loss.device)


def _out_of_time(deadline: float | None, device: torch.device) -> bool:
    """Past ``train.max_minutes`` (on any process)?"""
    return deadline is not None and _any_process(time.perf_counter() >= deadline, device)


def _after_step(step: int) -> None:
    """Hook called after every optimiser step (tests use it to simulate a kill)."""


def _pct(v: float | None) -> str:
    return "n/a" if v is None or v < 0 else f"{100 * v:.2f}"


def format_summary(s: dict[str, Any]) -> str:
    f = s["final"]
    lines = [
        f"done: {s['steps']} steps in {s['train_seconds']:.0f} s",
        f"val mIoU {_pct(f['miou'])}  pixel acc {_pct(f['pixel_acc'])}"
        + (f"  boundary acc {_pct(f['boundary_acc'])}  internal acc {_pct(f['internal_acc'])}" if "boundary_acc" in f else ""),
        f"best mIoU {_pct(s['best']['miou'])} at step {s['best']['step']}",
        f"run folder     {s['run_dir']}",
        f"best weights   {s['best_checkpoint']}",
    ]
    if "curves" in s:
        lines.append(f"curves         {s['curves']}")
    if "previews" in s:
        lines.append(f"predictions    {s['previews']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (see configs/)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.iterations=100")


def run(args: argparse.Namespace) -> int:
    if args.resume:
        run_dir = Path(args.resume)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise CheckpointError(f"{saved}: not found; --resume takes the folder of an earlier run")
        cfg = load_config(saved, args.overrides)
        cfg.out_dir = str(run_dir)
    else:
        if not args.config and not args.overrides:
            raise GcnsegError("give --config FILE (see configs/) or KEY=VALUE overrides")
        cfg = load_config(args.config, args.overrides)
    summary = train(cfg, resume=bool(args.resume), show_progress=not args.no_progress)
    if int(os.environ.get("RANK", 0)) == 0:
        print(format_summary(summary))
    return 0
