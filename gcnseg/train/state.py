"""What a run needs, built once (:func:`setup`), and the state that changes as it goes
(:class:`TrainState`)."""

from __future__ import annotations

import contextlib
import random
import shutil
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import torch
import yaml
from torch import nn

from ..checkpoint import foreign_entries, load_train_state, load_weights, resolve_checkpoint
from ..config import Config, size_hw, with_input_normalisation
from ..config.schema import MAX_CLASSES, MAX_STEPS
from ..data import TransformedDataset, build_dataset
from ..data.base import FileSegmentation
from ..errors import GcnsegError
from ..models import build_model
from ..packaged import check_packaged_weights
from ..runtime import (
    any_process,
    atomic_write_text,
    folder_holder,
    in_use,
    init_distributed,
    instruction_set,
    lock_folder,
    native_bf16,
    resolve_amp,
    resolve_compile,
    resolve_device,
    resolve_threads,
    warn,
)
from .ema import WeightAverage
from .log import RunLog
from .optim import build_optimizer, lr_factor
from .sampling import EpochSampler

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}
# a step of configs/camvid_lite0.yaml on an AMD EPYC with AVX2 only: 75 s in emulated bf16, 7 s in float32
EMULATED_BF16 = "about 10x slower than float32 (a step of the camvid_lite0 recipe: 75 s against 7 s on an AVX2 CPU)"


@dataclass
class TrainState:
    """What changes as a run goes on: the step, the best validation and the training time
    (which a checkpoint saves), and the clocks of the time budget and the log's images/s."""

    step: int = 0
    best: dict[str, Any] = field(default_factory=lambda: {"miou": -1.0, "step": None})
    seconds_before: float = 0.0  # training time of earlier sessions of a resumed run
    started: float = field(default_factory=time.perf_counter)
    seen: int = 0  # images since the last train log record, and when that record was
    window_start: float = field(default_factory=time.perf_counter)
    saved_step: int | None = None  # the step of the last checkpoint
    stopping: bool = False  # all processes agreed to stop (a signal reached one of them)
    stop_signal: int | None = None  # SIGTERM / SIGINT received: stop at the next step boundary

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started


@dataclass
class Run:
    """What :func:`setup` builds once: the model, its optimiser and data, where they run."""

    cfg: Config
    run_dir: Path
    device: torch.device
    amp_dtype: torch.dtype | None
    resolved: dict[str, Any]  # what auto meant here: device, precision, threads, CPU (recorded in the run)
    changes: dict[str, tuple[Any, Any]]  # a resumed run's settings that differ from its saved config
    rank: int
    world: int
    train_set: TransformedDataset
    val_set: TransformedDataset
    model: nn.Module  # the bare model (saved, validated)
    ddp: nn.Module  # what the steps call: the model, or DDP around it
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    steps_per_epoch: int
    total: int
    log: RunLog
    state: TrainState
    class_weights: torch.Tensor | None  # of the loss (train.class_weights), on the run's device
    lock: IO[str] | None  # the main process's lock on run_dir (one writer per run folder)
    made_dir: bool = False  # the main process made run_dir (discard_unsaved removes it again)
    ema: WeightAverage | None = None  # train.ema's average of the weights

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def network(self) -> nn.Module:
        """The network the run validates and saves: the average of the weights with
        ``train.ema``, else the trained model."""
        return self.ema.module if self.ema is not None else self.model


def set_batchnorm_eval(model: nn.Module) -> None:
    """BatchNorm in eval mode (``train.freeze_bn``: the paper trains with batch size 1)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global generator that user code and libraries draw from)
    torch.manual_seed(seed)


def _amp_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device`` (``auto``: :func:`~gcnseg.runtime.resolve_amp`)."""
    amp = resolve_amp(cfg.train.amp, device)
    if amp not in AMP_DTYPES:
        raise GcnsegError(f"train.amp={cfg.train.amp!r}: expected auto, bf16, fp16, fp32 or null")
    dtype = AMP_DTYPES[amp]
    if dtype == torch.float16 and device.type != "cuda":
        raise GcnsegError(f"train.amp=fp16 needs a CUDA device (this run is on {device}); use train.amp=auto on a CPU")
    return dtype


def _warn_emulated_bf16(amp_dtype: torch.dtype | None, device: torch.device) -> None:
    if amp_dtype == torch.bfloat16 and device.type == "cpu" and not native_bf16():
        warn(
            f"train.amp=bf16 on a CPU without native bf16 (AVX512-BF16 or AMX) is emulated, "
            f"{EMULATED_BF16}; train.amp=auto trains in float32 here"
        )


def compile_step(cfg: Config, device: torch.device, steps: int) -> bool:
    """Whether this run compiles its training step: ``train.compile`` (auto: by the schedule's
    length, :func:`~gcnseg.runtime.resolve_compile`), where a compiler is there for Inductor."""
    from ..compiled import compiler_available

    if not resolve_compile(cfg.train.compile, device, steps):
        return False
    if compiler_available(device):
        return True
    if cfg.train.compile is True:
        warn("train.compile=true, but torch.compile has no compiler here; training uncompiled")
    return False


def resolved_runtime(
    cfg: Config, device: torch.device, amp_dtype: torch.dtype | None, world: int, compiled: bool = False
) -> dict[str, Any]:
    """What the run's ``auto`` settings became on this machine, in words and numbers."""
    return {
        "device": str(device),
        "amp": {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[amp_dtype],
        "amp_asked": cfg.train.amp,
        "compile": compiled,
        "threads": torch.get_num_threads(),
        "processes": world,
        "cpu": instruction_set(),
        "torch": torch.__version__,
    }


def _prepare_model(cfg: Config, num_classes: int, device: torch.device, world: int) -> nn.Module:
    t = cfg.train
    net = build_model(cfg.model, num_classes)
    if t.init_from:
        load_weights(net, resolve_checkpoint(t.init_from, prefer="best"))
    if t.freeze_backbone:
        # only the score heads, BR blocks and deconvolutions learn (the backbone's BatchNorm
        # statistics still follow the data unless freeze_bn)
        for p in net.backbone.parameters():
            p.requires_grad_(False)
    if t.freeze_encoder_bn:  # the pretrained statistics and affine stay (statistics: _train_mode)
        for m in net.backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.requires_grad_(False)
    if t.sync_bn and world > 1 and device.type == "cpu":
        raise GcnsegError(
            "train.sync_bn: PyTorch's SyncBatchNorm needs GPUs; on CPU use train.freeze_bn=true or sync_bn=false"
        )
    model: nn.Module = _sync_batchnorm(net) if t.sync_bn and world > 1 else net
    model.to(device)
    if t.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def _sync_batchnorm(model: nn.Module) -> nn.Module:
    """PyTorch's SyncBatchNorm in place of every BatchNorm; timm's converter where the model
    holds timm's BatchNormAct2d (PyTorch's would drop the activation fused into it)."""
    if any(type(m).__name__ == "BatchNormAct2d" for m in model.modules()):
        from timm.layers import convert_sync_batchnorm

        return convert_sync_batchnorm(model)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def setup(cfg: Config, resume: bool = False) -> Run:
    """Everything a run needs, in an order that makes runs reproducible: device,
    precision and process group, then the seed, the run folder, the data, the model
    (initialised under the seed), its optimiser, and a resumed run's state."""
    cfg = with_input_normalisation(cfg)  # saved so: eval, predict and export normalise alike
    t = cfg.train
    device = resolve_device(t.device, "train.device")
    amp_dtype = _amp_dtype(cfg, device)
    rank, world = init_distributed(device)
    if rank == 0:
        _warn_emulated_bf16(amp_dtype, device)
    threads = resolve_threads(t.threads)
    if threads:
        torch.set_num_threads(threads)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    _seed_everything(t.seed)
    check_packaged_weights(cfg.model)  # before anything is written: one line says what to install

    run_dir = Path(cfg.out_dir)
    changes: dict[str, tuple[Any, Any]] = {}
    if not resume:  # every process refuses, none is left waiting
        _check_new_run_dir(run_dir)
    else:
        resolve_checkpoint(run_dir, prefer="last")  # a run without a checkpoint says so first
        changes = resume_changes(run_dir, cfg)
    train_set = build_dataset(cfg.data, cfg.data.train_split, train=True)  # (no random draws)
    val_set = build_dataset(cfg.data, cfg.data.val_split, train=False)
    if t.class_weights is not None and len(t.class_weights) != train_set.num_classes:
        raise GcnsegError(
            f"train.class_weights: {len(t.class_weights)} weights for the {train_set.num_classes} classes of "
            f"{cfg.data.dataset} (gcnseg data weights computes them)"
        )
    if train_set.num_classes > MAX_CLASSES:
        raise GcnsegError(f"{cfg.data.dataset}: {train_set.num_classes} classes; gcnseg trains at most {MAX_CLASSES}")
    steps_per_epoch = EpochSampler(len(train_set), t.batch_size, rank, world, t.seed, 0).steps()
    if steps_per_epoch == 0:
        raise GcnsegError(
            f"data: {len(train_set)} training images are fewer than one global batch ({t.batch_size} x {world} processes)"
        )
    if t.epochs is not None and t.epochs * steps_per_epoch > MAX_STEPS:
        raise GcnsegError(
            f"train.epochs={t.epochs}: {t.epochs * steps_per_epoch} steps, more than the {MAX_STEPS} a run can count"
        )
    check_batch_shapes(cfg, train_set, world)
    made = rank == 0 and not resume and not run_dir.exists()
    lock, refused = _take_run_dir(run_dir, resume) if rank == 0 else (None, None)
    if any_process(refused is not None, device):  # every process stops, none is left waiting
        raise refused or GcnsegError(f"{run_dir}: refused by the main process")
    try:
        return _build_run(cfg, resume, run_dir, changes, device, amp_dtype, rank, world, train_set, val_set,
                          steps_per_epoch, lock, made)  # fmt: skip
    except BaseException:  # (e.g. train.init_from's weights refused): the new run's folder goes again
        if rank == 0 and not resume:
            discard_unsaved(run_dir, made)
        if lock is not None:
            lock.close()
        raise


def _build_run(
    cfg: Config,
    resume: bool,
    run_dir: Path,
    changes: dict[str, tuple[Any, Any]],
    device: torch.device,
    amp_dtype: torch.dtype | None,
    rank: int,
    world: int,
    train_set: TransformedDataset,
    val_set: TransformedDataset,
    steps_per_epoch: int,
    lock: IO[str] | None,
    made: bool,
) -> Run:
    """:func:`setup`'s part from the model on, once the run folder is taken."""
    t = cfg.train
    model = _prepare_model(cfg, train_set.num_classes, device, world)
    ema = WeightAverage(model, t.ema) if t.ema is not None else None
    optimizer = build_optimizer(cfg.optim, model)
    total = t.epochs * steps_per_epoch if t.epochs is not None else t.iterations
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(cfg.optim, s, total))

    state = _restore(cfg, run_dir, changes, model, ema, optimizer, scheduler, total) if resume else TrainState()

    finished = (run_dir / "summary.json").is_file() and state.step == total  # validated and summarised
    if resume and (state.step > total or finished):
        raise GcnsegError(
            f"{run_dir}: the run is at step {state.step} of a schedule of {total}: nothing to train; "
            f"to train longer, give train.iterations (or train.epochs) beyond step {state.step}"
        )
    if rank == 0:  # once the resumed state fits: a refused resume leaves the run's config as it was
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    ddp: nn.Module = model
    if world > 1:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    compiled = compile_step(cfg, device, total)
    if compiled:  # the training step's forward and backward, one graph per shape
        ddp = cast(nn.Module, torch.compile(ddp))
    # autocast on CUDA and, for bf16, on the CPU (oneDNN's native bf16 where the CPU has it)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    return Run(
        cfg,
        run_dir,
        device,
        amp_dtype,
        resolved_runtime(cfg, device, amp_dtype, world, compiled),
        changes,
        rank,
        world,
        train_set,
        val_set,
        model,
        ddp,
        optimizer,
        scheduler,
        scaler,
        steps_per_epoch,
        total,
        RunLog(run_dir, rank == 0, resume_at=state.step if resume else None),
        state,
        None if t.class_weights is None else torch.tensor(t.class_weights, device=device),
        lock,
        made,
        ema,
    )


def _restore(
    cfg: Config,
    run_dir: Path,
    changes: dict[str, tuple[Any, Any]],
    model: nn.Module,
    ema: WeightAverage | None,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    total: int,
) -> TrainState:
    """A resumed run's state from its last checkpoint: the weights (and, with ``train.ema``,
    the trained ones beside their average), the optimiser, the schedule, the random state
    and the step; the optimiser's ``changes`` take effect from that step on."""
    fresh_groups = [{k: g[k] for k in _GROUP_KEYS if k in g} for g in optimizer.param_groups]  # as cfg sets them
    ckpt = resolve_checkpoint(run_dir, prefer="last")
    saved = load_train_state(ckpt)
    load_weights(model if ema is None else ema.module, ckpt)  # the checkpoint's weights: what the run saves
    if ema is not None:  # the trained weights, beside their average
        if not isinstance(saved.get("model"), dict):
            raise GcnsegError(f"{ckpt}: the training state holds no trained weights beside the average (train.ema)")
        model.load_state_dict(saved["model"])
    try:
        optimizer.load_state_dict(saved["optimizer"])
    except ValueError as e:  # another number or size of parameter groups
        raise GcnsegError(
            f"{ckpt}: the saved optimiser does not fit this config ({e}); was optim.encoder_lr_mult or "
            "train.freeze_* changed for the resumed run?"
        ) from None
    scheduler.load_state_dict(saved["scheduler"])
    state = TrainState(step=int(saved["step"]), best=saved["best"], seconds_before=float(saved.get("seconds", 0.0)))
    if any(k.startswith("optim.") for k in changes):  # the new settings, from this step on
        _apply_optim_changes(optimizer, scheduler, fresh_groups, lr_factor(cfg.optim, state.step, total))
    torch.set_rng_state(saved["rng"])
    state.saved_step = state.step  # the log records of the steps after the checkpoint go: they are done again
    return state


# what a resumed run may change: each takes effect from the step it resumes at (the schedule
# and the validation settings are read as it goes; the optimiser's are set on its groups)
RESUMABLE = {
    "name", "out_dir", "data.root", "data.workers",
    "optim.lr", "optim.encoder_lr_mult", "optim.weight_decay", "optim.momentum",
    "optim.schedule", "optim.power", "optim.warmup_iters",
    "train.iterations", "train.epochs", "train.val_every", "train.log_every", "train.checkpoint_every",
    "train.max_minutes", "train.previews", "train.threads", "train.device", "train.amp", "train.compile",
}  # fmt: skip
_GROUP_KEYS = ("lr", "weight_decay", "momentum")


def resume_changes(run_dir: Path, cfg: Config) -> dict[str, tuple[Any, Any]]:
    """``key -> (saved, new)`` for each setting of ``cfg`` that differs from the run's
    saved ``config.yaml``; one that cannot take effect on a resumed run (the network, the
    data, the batch, the seed, the optimiser's kind...) is refused in one line naming it,
    before anything is written."""
    from ..config import flatten, load_config

    saved = flatten(with_input_normalisation(load_config(run_dir / "config.yaml")).to_dict())
    new = flatten(with_input_normalisation(cfg).to_dict())
    changes = {k: (saved.get(k), new.get(k)) for k in dict.fromkeys([*saved, *new]) if saved.get(k) != new.get(k)}
    for key, (old, value) in changes.items():
        regrouped = key == "optim.encoder_lr_mult" and (old == 1) != (value == 1)  # one group or two
        if regrouped or (key not in RESUMABLE and not key.startswith("eval.")):
            was, now = (yaml.safe_dump(v, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
                         for v in (old, value))  # fmt: skip
            raise GcnsegError(
                f"{run_dir}: {key} cannot change on a resumed run ({was} -> {now}); the run stays as it was. "
                f"Start a new run from its weights instead: train.init_from={run_dir}"
            )
    return {k: v for k, v in changes.items() if k not in ("name", "out_dir")}


def _apply_optim_changes(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    fresh: list[dict[str, Any]],
    factor: float,
) -> None:
    """The optimiser settings of the resumed run's config on its loaded groups: base
    learning rates (the schedule's), weight decay and momentum."""
    scheduler.base_lrs = [g["lr"] for g in fresh]
    for group, new in zip(optimizer.param_groups, fresh):
        group.update({k: v for k, v in new.items() if k != "lr"})
        group["initial_lr"] = new["lr"]
        group["lr"] = new["lr"] * factor
    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]  # what get_last_lr() reports


# the encoders' deepest map is at stride 32: n px give ceil(n / 32) cells on that side
# (measured on resnet18/50 and timm's mobilenetv3: 32x32 gives 1x1, 33x32 gives 2x1)
DEEPEST_STRIDE = 32


def _cells(h: int, w: int) -> int:
    """Cells of the deepest (stride-32) map of an ``h`` x ``w`` input."""
    return -(-h // DEEPEST_STRIDE) * -(-w // DEEPEST_STRIDE)


def training_image_sizes(ds: Any) -> Iterator[tuple[str, tuple[int, int]]]:
    """``(image, (width, height))`` of the training images as loaded, before the transforms:
    every file of a dataset of files (from the headers: nothing decoded; a file that cannot
    be opened is left to the loader, which names it), each part of a joined dataset, and
    the first image of any other (the synthetic shapes are all of one size)."""
    ds = getattr(ds, "base", ds)  # a TransformedDataset's own
    parts = getattr(ds, "parts", None)
    if parts is not None:
        for part in parts:
            yield from training_image_sizes(part)
    elif isinstance(ds, FileSegmentation):
        for i, (path, _mask) in enumerate(ds.samples):
            size = ds.image_size(i)
            if size is not None:
                yield str(path), size
    elif len(ds):
        try:
            image, _mask = ds.load(0)
        except (GcnsegError, OSError):
            return
        yield ds.name(0), image.size


def check_batch_shapes(cfg: Config, train_set: Any, world: int = 1) -> None:
    """Refuse in one line, before anything is written, what would fail in the first steps
    because of the batch's shapes (:class:`~gcnseg.errors.GcnsegError` naming the keys):

    * ``train.batch_size`` > 1 without ``data.crop_size`` / ``data.pad_size`` on training
      images of different sizes, which cannot be stacked into one batch (PyTorch's
      "stack expects each tensor to be equal size", deep in the DataLoader). Refused,
      naming two files of different sizes, rather than padded or resized in the batch:
      padding every batch to its largest image trains on padding and resizing changes the
      objects' scale, silently; the config says which it wants (``data.crop_size``, or
      ``data.pad_size`` as the paper pads VOC to 512x512), and a batch of 1 takes any size.
      (``data.scale_range`` without a crop is refused by ``check_config``.)
    * a batch of one image whose deepest map (stride 32) is a single cell: BatchNorm in
      training mode then has one value per channel and fails ("Expected more than 1 value
      per channel when training"). That is an input of 32 px or less on both sides, after
      ``data.crop_size`` / ``pad_size``, or at the smallest scale of ``data.scale_range``;
      ``train.freeze_bn`` / ``freeze_encoder_bn`` (BatchNorm's statistics kept) and
      SyncBatchNorm across processes (their values counted together) avoid it.

    The images' sizes are read (from their headers) only where no crop or pad size fixes
    them."""
    d, t = cfg.data, cfg.train
    fixed = d.crop_size if d.crop_size is not None else d.pad_size
    one_value = t.batch_size == 1 and not (t.freeze_bn or t.freeze_encoder_bn or (t.sync_bn and world > 1))
    advice = "train.batch_size=2 or more, or train.freeze_bn=true"
    if fixed is not None:
        h, w = size_hw(fixed)
        if one_value and _cells(h, w) == 1:
            key = "data.crop_size" if d.crop_size is not None else "data.pad_size"
            raise GcnsegError(
                f"train.batch_size=1 on {key}={fixed} leaves BatchNorm one value per channel at the network's "
                f"deepest map (stride {DEEPEST_STRIDE}: 1x1), which it cannot train on; set {key} above "
                f"{DEEPEST_STRIDE} px on a side, {advice}"
            )
        return
    if not (one_value or t.batch_size > 1):
        return
    lo = float(d.scale_range[0])
    first: tuple[str, tuple[int, int]] | None = None
    for name, (w, h) in training_image_sizes(train_set):
        if t.batch_size > 1:
            if first is None:
                first = (name, (w, h))
            elif first[1] != (w, h):
                (a, (aw, ah)) = first
                raise GcnsegError(
                    f"data: the training images differ in size ({a} is {aw}x{ah}, {name} is {w}x{h}) and cannot "
                    f"share a batch of train.batch_size={t.batch_size}; set data.crop_size (or data.pad_size) to "
                    "train on crops of one size, or train.batch_size=1"
                )
        elif _cells(sh := max(1, round(h * lo)), sw := max(1, round(w * lo))) == 1:  # RandomScale's smallest
            scaled = f", {sw}x{sh} at data.scale_range's {lo:g}" if lo != 1 else ""
            raise GcnsegError(
                f"train.batch_size=1 on the training image {name} ({w}x{h} px{scaled}) leaves BatchNorm one value per channel at the "
                f"network's deepest map (stride {DEEPEST_STRIDE}: 1x1), which it cannot train on; set "
                f"data.crop_size above {DEEPEST_STRIDE} px on a side, {advice}"
            )


def discard_unsaved(run_dir: Path, made: bool, keep: Collection[str] = ()) -> bool:
    """Remove what a new run that stopped before its first checkpoint wrote into ``run_dir``
    (its config, logs, TensorBoard events, lock; not the names in ``keep``, e.g. the
    ``config.yaml`` that an error message names), and the folder itself where that run
    made it (``made``) and nothing is left in it, so that nothing half-made is left to
    block or confuse the next start (``train.log`` is appended to): True when it did. A
    folder holding a checkpoint (``last.json``, ``best.json`` or a ``checkpoints/step-N``
    folder) is left as it is, and files that no gcnseg run writes
    (:func:`~gcnseg.checkpoint.foreign_entries`) are never touched. The main process calls
    it (under its lock, whose file it removes last)."""
    if not run_dir.is_dir() or (run_dir / "last.json").exists() or (run_dir / "best.json").exists():
        return False
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and any(not e.name.startswith(".tmp-") for e in checkpoints.iterdir()):
        return False
    foreign = set(foreign_entries(run_dir))
    for entry in sorted(run_dir.iterdir()):
        if entry.name in foreign or entry.name == ".lock" or entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            for inner in entry.iterdir():
                if f"{entry.name}/{inner.name}" in foreign:
                    continue
                if inner.is_dir() and not inner.is_symlink():
                    shutil.rmtree(inner, ignore_errors=True)
                else:
                    inner.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # (not empty: files of someone else's)
                entry.rmdir()
        else:
            entry.unlink(missing_ok=True)
    (run_dir / ".lock").unlink(missing_ok=True)  # while the lock is still held: no second writer saw it free
    if made:
        with contextlib.suppress(OSError):  # not empty: left for its other files
            run_dir.rmdir()
    return True


def _check_new_run_dir(run_dir: Path) -> None:
    """A new run goes into a new or empty folder, or one that holds only what a gcnseg run
    that stopped before its first checkpoint wrote; never into a run (--resume it) or a
    folder of other files (which a run would mix with its own, or remove)."""
    if (run_dir / "last.json").exists():
        raise _holds_a_run(run_dir)
    foreign = foreign_entries(run_dir)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise GcnsegError(
            f"{run_dir}: holds files that no gcnseg run wrote ({shown}); a run goes into a new or empty folder: "
            "choose another out_dir"
        )


def _holds_a_run(run_dir: Path) -> GcnsegError:
    holder = folder_holder(run_dir)
    if holder is not None:
        return in_use(run_dir, holder)
    return GcnsegError(f"{run_dir}: already holds a run; use --resume {run_dir} or another out_dir")


def _take_run_dir(run_dir: Path, resume: bool) -> tuple[IO[str] | None, GcnsegError | None]:
    """Create and lock the run folder (main process): ``(lock, None)``, or ``(None, why)``
    where a second writer holds the folder, it holds a run already, or it cannot be made."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_folder(run_dir, "gcnseg train")
    except GcnsegError as e:
        return None, e
    except OSError as e:  # a read-only place, a path that is a file: every process is told
        return None, GcnsegError(f"{e.filename or run_dir}: {e.strerror or e}")
    if not resume:  # written by a run that held the lock just before
        try:
            _check_new_run_dir(run_dir)
        except GcnsegError as e:
            lock.close()
            return None, e
        for name in ("metrics.jsonl", "summary.json"):  # of an earlier start that saved no checkpoint
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
    return lock, None
