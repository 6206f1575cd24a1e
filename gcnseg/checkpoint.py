"""Checkpoints that survive a kill at any moment.

A checkpoint is a folder ``RUN/checkpoints/step-NNNNNNN/`` holding
``model.safetensors`` (weights), ``model.json`` (the sidecar: config, class
names, palette, step, metrics) and ``train_state.pt`` (optimiser, scheduler and
RNG state; tensors and plain values only, read back with ``weights_only=True``).
It is written into a temporary folder, synced to disk and renamed into place; then
the pointers ``RUN/last.json`` and ``RUN/best.json`` are replaced atomically. A run
killed at any moment therefore always points at a complete checkpoint. The sidecar
holds the SHA-256 of the weights and of the training state, checked at every load:
a flipped byte is an error naming the file, never a silently different result.
Pointers name folders inside ``RUN/checkpoints``; one that leads elsewhere is refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .config import Config, config_from_dict
from .config.loading import read_text_bounded
from .config.schema import MAX_CLASSES, MAX_LABEL, ConfigError
from .errors import GcnsegError
from .runtime import atomic_write_text, default_mode, file_sha256, fsync_path, name_in_error, warn
from .zoo import ZOO, named_checkpoint

MODEL_FILE, META_FILE, STATE_FILE = "model.safetensors", "model.json", "train_state.pt"
SIDECAR_VERSION = 2  # 2: holds the SHA-256 of every file of its checkpoint (1: earlier, none)
# the header metadata of every weights file: one key, since safetensors writes a metadata
# dict of several keys in a random order (the same weights would get another SHA-256)
WEIGHTS_METADATA = {"format": "pt"}
_unchecked: set[Path] = set()  # version-1 checkpoints already warned about
MAX_SIDECAR_BYTES = 64 * 1024 * 1024  # a sidecar holds a C x C confusion matrix: ~8 MB of JSON at 1024 classes
MAX_POINTER_BYTES = 64 * 1024  # last.json / best.json: a step and a path


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
    """Write a checkpoint folder for ``meta["step"]`` and point ``pointers`` at it. A write
    that fails (a full disk, a read-only place) is a :class:`CheckpointError` naming the
    path and the last good checkpoint, which stays as it was."""
    run_dir = Path(run_dir)
    try:
        return _save(run_dir, model, meta, train_state, pointers)
    except CheckpointError:
        raise
    except Exception as e:
        good = last_good(run_dir)
        first = (str(e).strip().splitlines() or [""])[0]
        why = e.strerror if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {first}"
        raise CheckpointError(
            f"{getattr(e, 'filename', None) or run_dir}: could not write the checkpoint of step {meta['step']} "
            f"({why}); the last good checkpoint is {good or 'not written yet'}"
        ) from None


def _save(
    run_dir: Path, model: nn.Module, meta: dict[str, Any], train_state: dict[str, Any] | None, pointers: tuple[str, ...]
) -> Path:
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{int(meta['step']):07d}"
    n = 1
    while final.exists():  # the same step again (a resumed finished run): a new folder, never a removed one
        n += 1
        final = ckpt_root / f"step-{int(meta['step']):07d}-{n}"
    tmp = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=".tmp-"))
    try:
        os.chmod(tmp, default_mode(folder=True))
        state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
        # serialised in memory, written by Python: a full disk is an OSError naming the file
        _write_bytes(tmp / MODEL_FILE, safetensors_bytes(state, metadata=WEIGHTS_METADATA), final / MODEL_FILE)
        written = [MODEL_FILE]
        if train_state is not None:
            buffer = io.BytesIO()
            torch.save(train_state, buffer)
            _write_bytes(tmp / STATE_FILE, buffer.getbuffer(), final / STATE_FILE)
            written.append(STATE_FILE)
        meta = {**meta, "sidecar": SIDECAR_VERSION, "sha256": {name: file_sha256(tmp / name) for name in written}}
        _write_bytes(tmp / META_FILE, json.dumps(meta, indent=2).encode(), final / META_FILE)
        for name in (*written, META_FILE):
            os.chmod(tmp / name, default_mode())
            try:
                fsync_path(tmp / name)  # (where a full disk may first show)
            except OSError as e:
                name_in_error(e, final / name, tmp / name)
                raise
        fsync_path(tmp)
        os.replace(tmp, final)
        fsync_path(ckpt_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for name in pointers:
        atomic_write_text(
            run_dir / f"{name}.json", json.dumps({"step": meta["step"], "path": str(final.relative_to(run_dir))})
        )
    _prune(run_dir)
    return final


def _write_bytes(path: Path, data: bytes | memoryview, shown: Path) -> None:
    """Write ``data`` to ``path``; a failure names ``shown``, the file's place once renamed."""
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        name_in_error(e, shown, path)
        raise


def last_good(run_dir: Path) -> Path | None:
    """The checkpoint that ``run_dir/last.json`` names, if it names a complete one (never raises)."""
    try:
        return resolve_checkpoint(run_dir / "last.json")
    except (CheckpointError, OSError):
        return None


def _check_digest(ckpt: Path, name: str, meta: dict[str, Any] | None = None) -> None:
    """The file ``name`` of checkpoint ``ckpt`` has the SHA-256 that its sidecar recorded.
    Every sidecar must hold it, except one written before digests were kept (version 1,
    :func:`_undigested`), which has none to check: that is said once, never silent.
    ``meta``: the sidecar, where the caller has read it already."""
    meta = read_meta(ckpt) if meta is None else meta
    if _undigested(meta):
        if ckpt not in _unchecked:
            _unchecked.add(ckpt)
            warn(f"{ckpt}: saved before gcnseg kept digests; not checked for corruption")
        return
    expected = meta.get("sha256")
    if not isinstance(expected, dict) or not isinstance(expected.get(name), str):
        raise CheckpointError(f"{ckpt / META_FILE}: no SHA-256 of {name} (every checkpoint saved now has one)")
    if file_sha256(ckpt / name) != expected[name]:
        raise CheckpointError(
            f"{ckpt / name}: corrupted (its SHA-256 differs from the one recorded in {META_FILE} when it was saved)"
        )


# what a sidecar written before digests were kept (version 1, before 2026-12-01) cannot hold:
# the keys version 2 introduced, and the config keys added since (data.void and
# data.label_map, written into every sidecar's config from then on)
_SINCE_V2 = ("sidecar", "sha256", "runtime")
_SINCE_V2_CONFIG = {"data": ("void", "label_map")}


def _undigested(meta: dict[str, Any]) -> bool:
    """Whether ``meta`` is a version-1 sidecar, whose files have no digests to check.

    Version 1 is told by content, never by a number an edit could set: gcnseg wrote no
    ``sidecar`` key into version-1 sidecars (``"sidecar": 1`` was never written; it is
    refused by :func:`_check_sidecar`), nor ``sha256`` or ``runtime``, nor a config with
    ``data.void`` / ``data.label_map``, which every sidecar since holds. A current sidecar
    edited to look older (its version set to 1, its digests deleted) therefore keeps one of
    those marks and still has its weights checked: an edit cannot turn the check into a
    warning. Removing every mark makes it the sidecar of an old checkpoint, which loads
    with the warning (said, never silent). A date (refuse version 1 for files written
    after one) was not chosen: a file's time is as easy to change as its text, and a copy
    may reset it. The named models of :mod:`gcnseg.zoo` have their weights' SHA-256 in
    the code and are checked whatever their sidecar says."""
    if any(key in meta for key in _SINCE_V2):
        return False
    config = meta.get("config")
    for section, keys in _SINCE_V2_CONFIG.items():
        part = config.get(section) if isinstance(config, dict) else None
        if isinstance(part, dict) and any(k in part for k in keys):
            return False
    return True


def _pointed(run_dir: Path, name: str) -> Path | None:
    """The checkpoint folder that ``run_dir/NAME.json`` names (None without that file);
    only a folder inside ``run_dir/checkpoints`` is accepted."""
    p = run_dir / f"{name}.json"
    if not p.is_file():
        return None
    try:
        target = _read_json(p, MAX_POINTER_BYTES, "checkpoint pointer")["path"]
        rel = Path(target)
    except (ValueError, KeyError, TypeError):  # TypeError: JSON that is not an object, or a path that is not a string
        raise CheckpointError(f"{p}: not a checkpoint pointer") from None
    if rel.is_absolute() or len(rel.parts) != 2 or rel.parts[0] != "checkpoints" or rel.parts[1] in ("..", "."):
        raise CheckpointError(f"{p}: points outside the run's checkpoints/ folder ({target!r}); refused")
    return run_dir / rel


# what a training run writes into its folder (gcnseg.train), and the names inside its sub-folders
RUN_FILES = (
    "config.yaml",
    "metrics.jsonl",
    "train.log",
    "summary.json",
    "curves.png",
    "last.json",
    "best.json",
    ".lock",
)
_RUN_FOLDERS = {
    "checkpoints": re.compile(r"step-\d{7}(-\d+)?|\.tmp-.*"),
    "tensorboard": re.compile(r"events\.out\.tfevents\..*"),
    "previews": re.compile(r".*\.png"),
}
_ATOMIC_TMP = re.compile(r"\..+\.tmp")  # runtime.atomic_path's temporary files (a kill leaves them)


def foreign_entries(run_dir: Path) -> list[str]:
    """What ``run_dir`` holds that no gcnseg run writes (empty: a new run may use it; a run
    only ever removes or replaces what it wrote)."""
    if not run_dir.is_dir():
        return []
    found = []
    for entry in sorted(run_dir.iterdir()):
        name = entry.name
        if name in RUN_FILES and entry.is_file() and not entry.is_symlink():
            continue
        if name in _RUN_FOLDERS and entry.is_dir() and not entry.is_symlink():
            found += [f"{name}/{e.name}" for e in sorted(entry.iterdir()) if not _RUN_FOLDERS[name].fullmatch(e.name)]
            continue
        if _ATOMIC_TMP.fullmatch(name) and entry.is_file():
            continue
        found.append(name)
    return found


def checkpoint_files(ckpt: Path) -> list[Path]:
    """The files that loading and resuming ``ckpt`` read: its own, and where it lies in a
    run folder, that run's (config, pointers, logs, its other checkpoints): no command may
    write onto them."""
    files = [ckpt / name for name in (MODEL_FILE, META_FILE, STATE_FILE)]
    if ckpt.parent.name == "checkpoints":  # and the run's other checkpoints: its resume point among them
        others = [d for d in ckpt.parent.iterdir() if d.is_dir() and d != ckpt]
        files += [d / name for d in sorted(others) for name in (MODEL_FILE, META_FILE, STATE_FILE)]
        files += [ckpt.parent.parent / name for name in RUN_FILES]
    return files


def _prune(run_dir: Path) -> None:
    """Keep only the checkpoints that a pointer names: of the others, in folders of gcnseg's
    own naming (``step-NNNNNNN``), the files a checkpoint is made of go, and the folder with
    them unless something else was put in it (an export's ``model.onnx``: kept)."""
    keep = {p.resolve() for p in (_pointed(run_dir, "last"), _pointed(run_dir, "best")) if p is not None}
    for d in (run_dir / "checkpoints").iterdir():
        if d.is_dir() and not d.is_symlink() and re.fullmatch(r"step-\d{7}(-\d+)?", d.name) and d.resolve() not in keep:
            for name in (MODEL_FILE, META_FILE, STATE_FILE):
                with contextlib.suppress(OSError):
                    (d / name).unlink()
            with contextlib.suppress(OSError):  # not empty: another's file stays, in its folder
                d.rmdir()


def resolve_checkpoint(path: str | os.PathLike, prefer: str = "best") -> Path:
    """A checkpoint folder from a run folder (its ``best``, else ``last``), a
    pointer file, a checkpoint folder, its ``model.safetensors``, or the name of a
    model that ships with gcnseg (:data:`gcnseg.zoo.ZOO`). An empty or blank name is an
    error (``Path("")`` would be the current folder)."""
    if not isinstance(path, (str, os.PathLike)):
        raise CheckpointError(f"expected a run folder, checkpoint or named model, got {type(path).__name__}")
    if not os.fspath(path).strip():
        raise CheckpointError(
            f"{os.fspath(path)!r}: an empty name; give a run folder, checkpoint or named model ({', '.join(ZOO)})"
        )
    if not Path(path).exists():
        if str(path) in ZOO:
            return named_checkpoint(str(path))
        raise CheckpointError(
            f"{path}: no such run folder, checkpoint or named model ({', '.join(ZOO)}; gcnseg models lists them)"
        )
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
            raise CheckpointError(_no_checkpoint(path, order))
    if not (path / MODEL_FILE).is_file() or not (path / META_FILE).is_file():
        raise CheckpointError(f"{path}: incomplete checkpoint (expected {MODEL_FILE} and {META_FILE})")
    return path


def _no_checkpoint(path: Path, looked_for: tuple[str, ...]) -> str:
    """Why a folder gives no checkpoint, and what to do."""
    if (path / "config.yaml").is_file() and not any((path / f"{n}.json").exists() for n in ("last", "best")):
        return f"{path}: no checkpoint yet (the run stopped before its first one): start it again without --resume"
    if "best" not in looked_for and (path / "best.json").is_file():
        return (
            f"{path}/last.json: missing (only best.json is left); resuming needs last.json. "
            f"Start a new run from those weights with train.init_from={path / 'best.json'}"
        )
    return f"{path}: no checkpoint here (expected last.json / best.json of a run, or {MODEL_FILE})"


def _read_json(path: Path, limit: int, what: str) -> Any:
    """The JSON value of the file ``path`` (at most ``limit`` bytes, UTF-8, nested at most
    as deep as Python's recursion allows); a :class:`ValueError` saying why not."""
    try:
        text = read_text_bounded(path, limit, what)
    except ConfigError as e:
        raise ValueError(str(e).removeprefix(f"{path}: ")) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_meta(ckpt: Path) -> dict[str, Any]:
    """The sidecar of checkpoint ``ckpt``, checked (:func:`_check_sidecar`): what a reader
    takes from it is there, of its type and in its range; else a :class:`CheckpointError`
    naming the file and the key."""
    path = ckpt / META_FILE
    try:
        text = read_text_bounded(path, MAX_SIDECAR_BYTES, "checkpoint sidecar")
    except ConfigError as e:  # too large, not a file, not UTF-8: says which
        raise CheckpointError(str(e)) from None
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else " ".join(str(e).split())
        raise CheckpointError(f"{path}: not valid JSON ({why})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: not a checkpoint sidecar (a JSON {type(meta).__name__}, not an object)")
    _check_sidecar(meta, path)
    return meta


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_sidecar(meta: dict[str, Any], path: Path) -> None:
    """Each entry of a sidecar that gcnseg reads is of its type and in its range (a sidecar
    edited by hand is refused here, in one line naming the key, not by a crash later):
    ``num_classes`` 1..MAX_CLASSES; ``classes`` a list of names (strings); ``palette`` a
    list of ``[R, G, B]`` of 0..255; ``ignore_index`` 0..65535; ``config`` a mapping;
    ``step`` a count; ``sidecar`` a version gcnseg writes (2 or later: version-1 sidecars
    hold no such key); ``sha256`` file name -> hex digest. ``classes`` and ``palette`` are
    checked against ``num_classes`` by :func:`load_model` once the weights have shown the
    count right; a missing ``palette`` is filled in there."""
    problem = None
    n = meta.get("num_classes")
    if "num_classes" in meta and not _is_int(n, 1, MAX_CLASSES):
        problem = f"num_classes: expected 1 to {MAX_CLASSES}, got {_short(n)}"
    elif "classes" in meta and not (
        isinstance(meta["classes"], list) and all(isinstance(c, str) for c in meta["classes"])
    ):
        problem = f"classes: expected a list of class names (strings), got {_short(meta['classes'])}"
    elif "palette" in meta and not (
        isinstance(meta["palette"], list)
        and all(isinstance(c, list) and len(c) == 3 and all(_is_int(v, 0, 255) for v in c) for c in meta["palette"])
    ):
        problem = f"palette: expected a list of [R, G, B] colours of 0 to 255, got {_short(meta['palette'])}"
    elif "ignore_index" in meta and not _is_int(meta["ignore_index"], 0, MAX_LABEL):
        problem = f"ignore_index: expected a label value of 0 to {MAX_LABEL}, got {_short(meta['ignore_index'])}"
    elif "config" in meta and not isinstance(meta["config"], dict):
        problem = f"config: expected a mapping, got {_short(meta['config'])}"
    elif "step" in meta and not _is_int(meta["step"], 0, 2**63 - 1):
        problem = f"step: expected a step count, got {_short(meta['step'])}"
    elif "sidecar" in meta and not _is_int(meta["sidecar"], SIDECAR_VERSION, 2**31):
        problem = (
            f"sidecar: version {_short(meta['sidecar'])} is not one gcnseg writes ({SIDECAR_VERSION}; "
            "a sidecar from before digests were kept has no version key)"
        )
    elif "sha256" in meta and not (
        isinstance(meta["sha256"], dict)
        and all(isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in meta["sha256"].values())
    ):
        problem = f"sha256: expected file name -> SHA-256 in hex, got {_short(meta['sha256'])}"
    if problem is not None:
        raise CheckpointError(f"{path}: {problem}")


def read_weights(ckpt: Path, meta: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``ckpt/model.safetensors``, after checking its SHA-256 against the
    sidecar's (``meta``, where the caller has read it already)."""
    _check_digest(ckpt, MODEL_FILE, meta)
    try:
        return load_file(str(ckpt / MODEL_FILE))
    except Exception as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(
            f"{ckpt / MODEL_FILE}: unreadable ({type(e).__name__}: {first[0] if first else ''})"
        ) from None


def load_weights(model: nn.Module, ckpt: Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """Load ``model.safetensors`` of checkpoint folder ``ckpt`` (or its ``state``, read
    before) into ``model`` (strict)."""
    state = read_weights(ckpt) if state is None else state
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


# what a training state holds (train.loop.save), and the type of each entry
STATE_KEYS = {"optimizer": dict, "scheduler": dict, "step": int, "best": dict, "rng": torch.Tensor}


def load_train_state(ckpt: Path) -> dict[str, Any]:
    """The optimiser, scheduler, step, best and RNG state of checkpoint ``ckpt``
    (tensors and plain values only: ``weights_only=True``; its digest checked)."""
    path = ckpt / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (the checkpoint holds weights only and cannot resume training)")
    _check_digest(ckpt, STATE_FILE)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a training state (a {type(state).__name__}, not a mapping)")
    bad = [k for k, tp in STATE_KEYS.items() if not isinstance(state.get(k), tp)]
    if bad:
        raise CheckpointError(f"{path}: not a training state (missing or wrong: {', '.join(bad)})")
    return state


def _read(path: str | os.PathLike, prefer: str) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    """The checkpoint that ``path`` names, its sidecar and weights, read at once. A run that
    is training meanwhile may replace the checkpoint between the pointer and the files:
    then the pointer is read again (readers never wait for the writer)."""
    tries = 5
    while True:
        ckpt = resolve_checkpoint(path, prefer)
        try:
            meta = read_meta(ckpt)  # read once: the digest checked is the one of the sidecar returned
            return ckpt, meta, read_weights(ckpt, meta)
        except (CheckpointError, FileNotFoundError):
            tries -= 1
            if tries == 0 or resolve_checkpoint(path, prefer) == ckpt:
                raise


def load_model(path: str | os.PathLike, prefer: str = "best") -> tuple[nn.Module, Config, dict[str, Any]]:
    """Rebuild the trained network of a checkpoint: ``(model in eval mode, config, sidecar)``.
    The sidecar is checked (:func:`read_meta`; its ``classes`` and ``palette`` hold one
    entry per class, a missing ``palette`` is the VOC colour map), and so is its config:
    by type, and by range where rebuilding and running the network reads it."""
    from .config import with_input_normalisation
    from .data.base import color_map
    from .models import build_model

    ckpt, meta, state = _read(path, prefer)
    where = ckpt / META_FILE
    cfg = config_from_dict(meta.get("config", {}), str(where), saved=True)
    if not isinstance(meta.get("num_classes"), int):
        raise CheckpointError(f"{where}: no num_classes (not a gcnseg checkpoint sidecar)")
    n = meta["num_classes"]
    try:
        model = build_model(cfg.model, n, pretrained=False)
    except (ValueError, TypeError, KeyError) as e:  # a config no network is built from
        raise CheckpointError(f"{where}: no network is built from its config ({_first_line(e)})") from None
    load_weights(model, ckpt, state)  # the weights tell whether num_classes is right
    for key in ("classes", "palette"):
        if key in meta and len(meta[key]) != n:
            raise CheckpointError(f"{where}: {key}: {len(meta[key])} entries for num_classes {n}")
    meta = {**meta, "palette": meta.get("palette") or [list(c) for c in color_map(n)]}
    cfg = with_input_normalisation(cfg)  # a run folder written by hand may leave them to the backbone
    return model.eval(), cfg, meta


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
