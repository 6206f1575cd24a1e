"""The training loop (Section 4) as short functions over one small state.

:func:`setup` builds what a run needs (:class:`Run`); :func:`train_one_epoch` runs
the steps of one epoch (:func:`train_step`), validating (:func:`validate`) and saving
(:func:`save`) on schedule; :func:`train` ties them together and writes the summary.
Several processes under ``torchrun`` train one DistributedDataParallel model; a
non-finite loss or the time budget stops all of them together. SIGTERM (what Slurm,
Kubernetes and ``timeout`` send) and Ctrl-C stop the run at the next step boundary with
a checkpoint (:class:`~gcnseg.errors.Stopped`); a second one stops it at once.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from ..checkpoint import last_good, resolve_checkpoint, save_checkpoint
from ..config import Config
from ..data.build import shared_images
from ..errors import DataError, GcnsegError, Stopped
from ..evaluate import evaluate, write_previews
from ..runtime import any_process, atomic_write_text, warn
from .log import format_summary, pct
from .loss import segmentation_loss
from .sampling import EpochSampler, SeededSamples
from .state import Run, TrainState, discard_unsaved, set_batchnorm_eval, setup


class TrainingError(GcnsegError):
    """Training cannot go on (e.g. a non-finite loss)."""


def save(run: Run, metrics: dict[str, Any] | None, is_best: bool) -> None:
    """A checkpoint of the current step (main process): weights, sidecar, training state."""
    s, ds = run.state, run.train_set
    if not run.is_main:
        s.saved_step = s.step
        return
    meta = {
        "config": run.cfg.to_dict(),
        "num_classes": ds.num_classes,
        "classes": list(ds.classes),
        "palette": [list(c) for c in ds.palette],
        "ignore_index": run.cfg.data.ignore_index,
        "step": s.step,
        "epoch": s.step / run.steps_per_epoch,
        "metrics": metrics or {},
        "runtime": run.resolved,
    }
    train_state = {
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "step": s.step,
        "best": s.best,
        "rng": torch.get_rng_state(),
        "seconds": s.seconds(),
    }
    if run.ema is not None:  # the checkpoint's weights are the average; resuming needs the trained ones too
        train_state["model"] = run.model.state_dict()
    save_checkpoint(run.run_dir, run.network, meta, train_state, pointers=("last", "best") if is_best else ("last",))
    s.saved_step = s.step


def _train_mode(run: Run) -> None:
    run.model.train()
    if run.cfg.train.freeze_bn:
        set_batchnorm_eval(run.model)
    elif run.cfg.train.freeze_encoder_bn:
        set_batchnorm_eval(getattr(run.model, "backbone", run.model))


def validate(run: Run) -> dict[str, Any]:
    """Score the model on the validation split, log it (with the IoU of each class by name:
    ``per_class_iou``), keep the best, save a checkpoint. In float32 whatever ``train.amp``
    is, so that ``gcnseg eval --eager`` of the checkpoint gives the same numbers."""
    cfg = run.cfg
    result = evaluate(
        run.network,
        run.val_set,
        cfg.eval,
        run.device,
        run.train_set.num_classes,
        cfg.data.ignore_index,
        show_progress=False,
        mean=run.cfg.data.mean,
        std=run.cfg.data.std,
    )
    s = run.state
    names = run.train_set.classes
    result["per_class_iou"] = {(names[c] if c < len(names) else str(c)): v for c, v in enumerate(result["iou"])}
    numbers = {k: v for k, v in result.items() if isinstance(v, (int, float))}
    run.log.write({"step": s.step, "split": "val", **numbers, "per_class_iou": result["per_class_iou"]})
    improved = result["miou"] is not None and result["miou"] > s.best["miou"]
    if improved:
        s.best = {"miou": result["miou"], "step": s.step}
    save(run, result, improved)
    _train_mode(run)
    return result


def train_step(run: Run, images: torch.Tensor, masks: torch.Tensor) -> float:
    """One optimiser step on one batch; the loss (stops every process if it is not finite)."""
    images = images.to(run.device, non_blocking=True)
    masks = masks.to(run.device, non_blocking=True)
    if run.cfg.train.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(run.device.type, dtype=run.amp_dtype) if run.amp_dtype is not None else nullcontext():
        logits = run.ddp(images)
    t = run.cfg.train  # the loss in float32, whatever the autocast dtype
    loss = segmentation_loss(
        logits, masks, run.cfg.data.ignore_index, run.class_weights, t.ohem_thresh, t.ohem_min_kept
    )
    if any_process(not bool(torch.isfinite(loss.detach())), loss.device):
        where = run.run_dir / "last.json"
        raise TrainingError(
            f"loss is {loss.item()} at step {run.state.step + 1} (lr {run.scheduler.get_last_lr()[0]:.3g}); "
            f"lower optim.lr; the last good checkpoint is {where if where.exists() else 'not written yet'}"
        )
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.state.step += 1
    if run.ema is not None:
        run.ema.update(run.state.step)
    return loss.item()


def train_one_epoch(run: Run, bar: Any, deadline: float | None) -> bool:
    """The steps left of the current epoch, with logging, validation and checkpoints on
    schedule; True when the run is to stop (its schedule or its time is over)."""
    cfg, t, s = run.cfg, run.cfg.train, run.state
    epoch, offset = divmod(s.step, run.steps_per_epoch)
    sampler = EpochSampler(len(run.train_set), t.batch_size, run.rank, run.world, t.seed, epoch, offset)
    loader = DataLoader(
        SeededSamples(run.train_set),
        batch_size=t.batch_size,
        sampler=sampler,
        num_workers=cfg.data.workers,
        drop_last=True,
        pin_memory=run.device.type == "cuda",
        persistent_workers=False,
    )
    for images, masks in loader:
        loss = train_step(run, images, masks)
        s.seen += images.shape[0] * run.world
        if run.is_main and (s.step % max(t.log_every, 1) == 0 or s.step == run.total):
            now = time.perf_counter()
            ips = s.seen / max(now - s.window_start, 1e-9)
            s.seen, s.window_start = 0, now
            lr = run.scheduler.get_last_lr()[0]
            run.log.write({"step": s.step, "split": "train", "loss": loss, "lr": lr, "img_per_s": ips})
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{ips:.1f}", refresh=False)
        bar.update(1)
        if t.val_every and s.step % t.val_every == 0 and s.step < run.total:
            run.log.line(f"step {s.step}: val mIoU {pct(validate(run)['miou'])}", echo=bar.write)
        elif t.checkpoint_every and s.step % t.checkpoint_every == 0 and s.step < run.total:  # (the end validates)
            save(run, None, False)
        out_of_time = deadline is not None and any_process(time.perf_counter() >= deadline, run.device)
        # one decision for all processes (a signal that lands after this vote waits a step)
        s.stopping = any_process(s.stop_signal is not None, run.device)
        if s.step >= run.total or out_of_time or s.stopping:
            return True
    return False


@contextmanager
def _stop_on_signals(s: TrainState) -> Iterator[None]:
    """SIGTERM and SIGINT ask the run to stop at the next step boundary (``s.stop_signal``);
    a second one stops it at once (KeyboardInterrupt). The handlers are this block's only."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def ask(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if s.stop_signal is not None:
            os.write(2, f"\ngcnseg: {name} again: stopped at once\n".encode())
            raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(128 + signum)
        s.stop_signal = signum
        # os.write, not print: the handler may run while tqdm is writing to stderr
        os.write(2, f"\ngcnseg: {name}: stopping after this step (again: at once)\n".encode())

    before = {sig: signal.signal(sig, ask) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _stopped(run: Run) -> Stopped:
    """Save the step where a signal stopped the run (unless just saved) and say how to go on."""
    s = run.state
    if s.saved_step != s.step:
        save(run, None, False)
    if dist.is_initialized():  # every process waits for the main one's checkpoint
        dist.barrier()
    good = last_good(run.run_dir)
    signum = s.stop_signal or signal.SIGTERM  # (None where another process was the one asked)
    name = signal.Signals(signum).name
    return Stopped(
        f"stopped by {name} at step {s.step}; checkpoint {good}", 128 + signum, f"gcnseg train --resume {run.run_dir}"
    )


def _finish(run: Run, final: dict[str, Any]) -> dict[str, Any]:
    """The summary (also ``summary.json``, and its lines in ``train.log``), curves and
    previews (also in TensorBoard: ``val/previews/NAME``) of a finished run. A picture that
    cannot be drawn is a warning."""
    s, main = run.state, run.is_main
    summary: dict[str, Any] = {
        "name": run.cfg.name,
        "steps": s.step,
        "train_seconds": round(s.seconds(), 1),
        "final": {k: v for k, v in final.items() if k != "matrix"},
        "best": s.best,
        "runtime": run.resolved,
        "run_dir": str(run.run_dir),
        "last": str(resolve_checkpoint(run.run_dir, "last")) if main else None,
        "best_checkpoint": str(resolve_checkpoint(run.run_dir, "best")) if main else None,
    }
    if main:
        atomic_write_text(run.run_dir / "summary.json", json.dumps(summary, indent=2))
        try:
            from ..plots import plot_curves

            plot_curves(run.run_dir / "metrics.jsonl", run.run_dir / "curves.png")
            summary["curves"] = str(run.run_dir / "curves.png")
        except Exception as e:  # a picture must never lose a finished run
            warn(f"could not draw curves ({e})")
        if run.cfg.train.previews:
            try:
                summary["previews"] = str(
                    write_previews(
                        run.network,
                        run.val_set,
                        run.run_dir / "previews",
                        run.cfg.train.previews,
                        run.device,
                        on_picture=lambda name, picture: run.log.image(f"val/previews/{name}", picture, s.step),
                    )
                )
            except Exception as e:  # a picture must never lose a finished run
                warn(f"could not draw the previews ({e})")
        run.log.line(format_summary(summary), echo=None)  # (gcnseg train prints it)
    return summary


def train(cfg: Config, resume: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the summary (also written to ``summary.json``). What
    the terminal shows is also kept in the run folder's ``train.log``, appended to (a resumed
    run adds to it, after a line that says the step it takes up from)."""
    from tqdm import tqdm

    run = setup(cfg, resume)
    s = run.state
    if run.is_main:
        if resume:
            run.log.line(f"resumed at step {s.step}", echo=None)
            for key, (old, new) in run.changes.items():
                run.log.line(f"resumed with {key}: {old!r} -> {new!r}")
            # a finished run trained further: its summary told of the earlier end, and a run with one is done
            (run.run_dir / "summary.json").unlink(missing_ok=True)
        run.log.line(describe_runtime(run.resolved))
        shared = shared_images(run.train_set.base, run.val_set.base)
        if shared:
            d = cfg.data
            run.log.line(
                f"note: {shared} of the {len(run.val_set)} validation images ({d.val_split}) are also training "
                f"images ({d.train_split}): validation measures what the model saw"
            )
    bar = tqdm(
        total=run.total,
        initial=s.step,
        disable=not (run.is_main and show_progress),
        dynamic_ncols=True,
        desc=cfg.name,
        unit="it",
        mininterval=1.0,
    )
    _train_mode(run)
    s.started = s.window_start = time.perf_counter()
    # train.max_minutes: a wall-clock budget over all sessions of the run (gcnseg ablate --budget 20m)
    t = cfg.train
    deadline = None if t.max_minutes is None else s.started + 60 * t.max_minutes - s.seconds_before
    first = s.step
    finished = False
    keep: tuple[str, ...] = ()  # what a run discarded before its first checkpoint leaves
    try:
        with _stop_on_signals(s):  # to the end: asked after the last step, the run finishes, then stops
            try:
                while s.step < run.total and not train_one_epoch(run, bar, deadline):
                    pass
                bar.close()
                if s.stopping:
                    raise _stopped(run)
                final = validate(run)
            except DataError as e:  # a bad file met in training: data check names every one
                keep = ("config.yaml",)  # (what the message names)
                raise DataError(
                    f"{_own_line(e)} (gcnseg data check --config {run.run_dir / 'config.yaml'} lists every bad file)"
                ) from None
            except (ValueError, RuntimeError) as e:  # (torch's out of memory and NotImplementedError too)
                if isinstance(e, GcnsegError) or s.step != first or first >= run.total:
                    raise
                raise first_step_error(run, e) from None
            finally:
                bar.close()
            summary = _finish(run, final)
            if dist.is_initialized():
                dist.barrier()
            finished = True
            if any_process(s.stop_signal is not None, run.device):  # every process stops, or none
                name = signal.Signals(s.stop_signal or signal.SIGTERM).name
                raise Stopped(
                    f"{name} after the last step: the run finished ({run.run_dir / 'summary.json'})",
                    128 + (s.stop_signal or signal.SIGTERM),
                )
        return summary
    except GcnsegError as e:  # what the command shows, kept in train.log too
        run.log.line(f"gcnseg: error: {e}", echo=None)
        raise
    except Stopped as e:
        run.log.line(f"gcnseg: {e}", echo=None)
        raise
    except KeyboardInterrupt:
        run.log.line("gcnseg: interrupted", echo=None)
        raise
    finally:
        run.log.close()
        if not finished and not resume and run.is_main:  # a new run that failed before its first checkpoint
            discard_unsaved(run.run_dir, run.made_dir, keep)  # nothing half-made left (a checkpoint: all kept)
        if run.lock is not None:  # after the run's last write
            run.lock.close()


def first_step_error(run: Run, e: Exception) -> TrainingError:
    """A failure of a run's first step as one line. That step is the first to run what the
    config asks for together (the network on the data, at its batch size, crop, precision
    and device), so what fails there is the config's; the known causes get the keys to
    change (most are refused before anything is written: :func:`~gcnseg.train.state.check_batch_shapes`)."""
    t = run.cfg.train
    text = _own_line(e).strip()
    line = text.splitlines()[0] if text else ""
    line = line.removeprefix(f"{type(e).__name__}: ")  # (a DataLoader worker's traceback's last line)
    if "Expected more than 1 value per channel when training" in line:
        hint = (
            f"BatchNorm has one value per channel to train on (train.batch_size={t.batch_size} and a 1x1 map at the "
            "network's deepest stage, stride 32): set data.crop_size above 32 px on a side, train.batch_size=2 or "
            "more, or train.freeze_bn=true"
        )
    elif isinstance(e, torch.OutOfMemoryError) or "out of memory" in line.lower():
        hint = f"out of memory on {run.device}: lower train.batch_size ({t.batch_size}) or data.crop_size"
    elif "stack expects each tensor to be equal size" in line:
        hint = (
            f"the training images differ in size and cannot share a batch (train.batch_size={t.batch_size}): set "
            "data.crop_size (or data.pad_size), or train.batch_size=1"
        )
    elif run.resolved.get("compile"):  # a compiler error surfaces at the first step
        hint = "the compiled step failed: train with train.compile=false, or check the config's model and data sizes"
    else:
        hint = "check the config's model, data sizes, train.amp and train.device"
    return TrainingError(f"the first training step failed ({type(e).__name__}: {line}); {hint}")


def describe_runtime(r: dict[str, Any]) -> str:
    """One line: where the run trains and what its ``auto`` settings became."""
    where = f"{r['device']} ({r['cpu']})" if r["device"] == "cpu" else r["device"]
    asked = f"train.amp={r['amp_asked']} -> {r['amp']}" if r["amp_asked"] != r["amp"] else f"train.amp={r['amp']}"
    procs = f", {r['processes']} processes" if r["processes"] > 1 else ""
    compiled = ", the step compiled (torch.compile: minutes before the first step)" if r.get("compile") else ""
    return f"training on {where}: {asked}, {r['threads']} threads{procs}{compiled}, torch {r['torch']}"


def _own_line(e: Exception) -> str:
    """An error's own message; from a DataLoader worker, the last line of the traceback
    text that PyTorch puts around it."""
    text = str(e)
    if "Original Traceback" not in text:
        return text
    last = text.strip().splitlines()[-1]
    return last.split(": ", 1)[1] if last.startswith(f"{type(e).__module__}.{type(e).__name__}: ") else last
