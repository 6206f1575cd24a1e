"""Checkpoints that survive a kill at any moment.

A checkpoint is a folder ``RUN/checkpoints/step-NNNNNNN/`` holding
``model.safetensors`` (weights), ``model.json`` (the sidecar: config, class
names, palette, step, metrics) and ``train_state.pt`` (optimiser, scheduler and
RNG state; tensors and plain values only, read back with ``weights_only=True``).
It is written into a temporary folder and renamed into place; then the pointers
``RUN/last.json`` and ``RUN/best.json`` are replaced atomically. A run killed at
any moment therefore always points at a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import Config, config_from_dict
from .errors import GcnsegError
from .runtime import atomic_write_text

MODEL_FILE, META_FILE, STATE_FILE = "model.safetensors", "model.json", "train_state.pt"


class CheckpointError(GcnsegError):
    """A checkpoint is missing, incomplete or does not fit."""


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def save_checkpoint(
    run_dir: Path,
    model: nn.Module,
    meta: dict[str, Any],
    train_state: dict[str, Any] | None = None,
    pointers: tuple[str, ...] = ("last",),
) -> Path:
    """Write a checkpoint folder for ``meta["step"]`` and point ``pointers`` at it."""
    run_dir = Path(run_dir)
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{int(meta['step']):07d}"
    n = 1
    while final.exists():  # the same step again (a resumed finished run): a new folder, never a removed one
        n += 1
        final = ckpt_root / f"step-{int(meta['step']):07d}-{n}"
    tmp = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=".tmp-"))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
        save_file(state, str(tmp / MODEL_FILE), metadata={"format": "pt", "gcnseg": "1"})
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        if train_state is not None:
            torch.save(train_state, tmp / STATE_FILE)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for name in pointers:
        atomic_write_text(
            run_dir / f"{name}.json", json.dumps({"step": meta["step"], "path": str(final.relative_to(run_dir))})
        )
    _prune(run_dir)
    return final


def _pointed(run_dir: Path, name: str) -> Path | None:
    p = run_dir / f"{name}.json"
    if not p.is_file():
        return None
    try:
        return run_dir / json.loads(p.read_text())["path"]
    except (ValueError, KeyError, TypeError):  # TypeError: JSON that is not an object, or a path that is not a string
        raise CheckpointError(f"{p}: not a checkpoint pointer") from None


def _prune(run_dir: Path) -> None:
    """Keep only the checkpoints that a pointer names."""
    keep = {p.resolve() for p in (_pointed(run_dir, "last"), _pointed(run_dir, "best")) if p is not None}
    for d in (run_dir / "checkpoints").iterdir():
        if d.is_dir() and d.resolve() not in keep:
            shutil.rmtree(d, ignore_errors=True)


def resolve_checkpoint(path: str | os.PathLike, prefer: str = "best") -> Path:
    """A checkpoint folder from a run folder (its ``best``, else ``last``), a
    pointer file, a checkpoint folder, or its ``model.safetensors``."""
    path = Path(path)
    if path.is_file() and path.name == MODEL_FILE:
        path = path.parent
    elif path.is_file() and path.suffix == ".json" and path.name != META_FILE:
        target = _pointed(path.parent, path.stem)
        if target is None:
            raise CheckpointError(f"{path}: not a checkpoint pointer")
        path = target
    elif path.is_dir() and not (path / MODEL_FILE).is_file():
        order = (prefer, "last") if prefer != "last" else ("last",)
        for name in order:
            target = _pointed(path, name)
            if target is not None:
                path = target
                break
        else:
            raise CheckpointError(
                f"{path}: no checkpoint here (expected last.json / best.json of a run, or {MODEL_FILE})"
            )
    if not (path / MODEL_FILE).is_file() or not (path / META_FILE).is_file():
        raise CheckpointError(f"{path}: incomplete checkpoint (expected {MODEL_FILE} and {META_FILE})")
    return path


def read_meta(ckpt: Path) -> dict[str, Any]:
    try:
        return json.loads((ckpt / META_FILE).read_text())
    except ValueError as e:
        raise CheckpointError(f"{ckpt / META_FILE}: not valid JSON ({e})") from None


def load_weights(model: nn.Module, ckpt: Path) -> None:
    """Load ``model.safetensors`` of checkpoint folder ``ckpt`` into ``model`` (strict)."""
    try:
        state = load_file(str(ckpt / MODEL_FILE))
    except Exception as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(
            f"{ckpt / MODEL_FILE}: unreadable ({type(e).__name__}: {first[0] if first else ''})"
        ) from None
    target = unwrap(model).state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    shapes = [k for k in target if k in state and state[k].shape != target[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{ckpt / MODEL_FILE}: does not fit the model ({len(missing)} missing e.g. {missing[:2]}, "
            f"{len(unexpected)} unexpected e.g. {unexpected[:2]}, {len(shapes)} of another shape e.g. {shapes[:2]})"
        )
    unwrap(model).load_state_dict(state)


def load_train_state(ckpt: Path) -> dict[str, Any]:
    path = ckpt / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (the checkpoint holds weights only and cannot resume training)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__})") from None


def load_model(path: str | os.PathLike, prefer: str = "best") -> tuple[nn.Module, Config, dict[str, Any]]:
    """Rebuild the trained network of a checkpoint: ``(model in eval mode, config, sidecar)``."""
    from .config import with_input_normalisation
    from .models import build_model

    ckpt = resolve_checkpoint(path, prefer)
    meta = read_meta(ckpt)
    cfg = config_from_dict(meta.get("config", {}), str(ckpt / META_FILE), saved=True)
    if not isinstance(meta.get("num_classes"), int):
        raise CheckpointError(f"{ckpt / META_FILE}: no num_classes (not a gcnseg checkpoint sidecar)")
    model = build_model(cfg.model, meta["num_classes"], pretrained=False)
    load_weights(model, ckpt)
    cfg = with_input_normalisation(cfg)  # a run folder written by hand may leave them to the backbone
    return model.eval(), cfg, meta
