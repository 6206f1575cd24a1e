"""Bad input is one line, and bounded (Reliability, round 2): hostile or careless config
files, overrides, sizes and hand-edited checkpoint sidecars, driven through the real
command line (``gcnseg.commands.main``), end with a non-zero exit, one ``gcnseg: error:``
line (or argparse's usage line) and no traceback, within seconds, with nothing written."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
import types
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import make_folder, save
from test_faults import TINY, gcnseg, inproc, one_line

import gcnseg.checkpoint as ck
from gcnseg.config import Config, ConfigError, load_config
from gcnseg.config.loading import MAX_CONFIG_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES
from gcnseg.config.schema import MAX_CLASSES
from gcnseg.errors import DataError

FAST = 5.0  # seconds: a refusal is quick


def timed(*args: str | Path):
    start = time.monotonic()
    proc = inproc(*args)
    assert time.monotonic() - start < FAST, f"took {time.monotonic() - start:.1f} s"
    return proc


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a config that were accepted would write runs/ here, never into the repository


# 1. config files ------------------------------------------------------------------------


def billion_laughs() -> str:
    """1 KB of YAML that expands to 9**9 strings (nine levels of nine aliases)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + f"\nmodel: {{k: *{prev}}}\n"


HOSTILE: dict[str, tuple[bytes, str]] = {
    "alias bomb": (billion_laughs().encode(), f"more than {MAX_YAML_NODES} values once its aliases are expanded"),
    "alias cycle": (b"model: &m {k: [*m]}\n", "an alias inside the value it names"),
    "alias nesting": (
        b"data:\n  options:\n    a: &a "
        + b"[" * 25
        + b"1"
        + b"]" * 25
        + b"\n    b: "
        + b"[" * 25
        + b"*a"
        + b"]" * 25
        + b"\n",
        f"nested deeper than {MAX_YAML_DEPTH} levels (its aliases expanded)",
    ),
    "deep nesting": (
        b"model:\n  k: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        f"nested deeper than {MAX_YAML_DEPTH}",
    ),
    "deep block nesting": (
        b"".join(b"  " * i + b"a:\n" for i in range(300)) + b"  " * 300 + b"1\n",
        f"nested deeper than {MAX_YAML_DEPTH}",
    ),
    "5000 digits": (b"train:\n  seed: " + b"9" * 5000 + b"\n", "an integer of 5000 characters"),
    "binary digits": (b"train:\n  seed: 0b" + b"1" * 20000 + b"\n", "an integer of 20002 characters"),
    "out of range": (b"train:\n  batch_size: " + b"9" * 30 + b"\n", "train.batch_size: must be at most"),
    "not UTF-8": ("name: caf\xe9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 9)"),
    "UTF-16": ("name: x\n".encode("utf-16"), "not UTF-8 text"),
    "too large": (b"# " + b"x" * MAX_CONFIG_BYTES + b"\n", f"at most {MAX_CONFIG_BYTES} bytes"),
    "a value for a section": (b"model: 5\n", "model: expected a mapping (a section), got 5"),
    "a list at the top": (b"- 1\n- 2\n", "expected a mapping at the top level"),
    "false at the top": (b"false\n", "expected a mapping at the top level"),
    "empty": (b"# nothing but a comment\n", "empty; expected a mapping of sections"),
    "a section twice": (b"train:\n  lr: 1\ntrain:\n  seed: 2\n", "the key 'train' is given twice at line 3"),
    "a key twice": (b"train:\n  seed: 1\n  seed: 2\n", "the key 'seed' is given twice at line 3, column 3"),
    "a NUL in a path": (b'data:\n  root: "data/a\\0b"\n', "data.root: a NUL character"),
    "two documents": (
        b"name: a\n---\nname: b\n",
        "not valid YAML (expected a single document in the stream, but found another document",
    ),
    "not YAML": (b"model: {k: [7, 7\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
@pytest.mark.parametrize("command", ["train", "resume", "info"])
def test_a_hostile_config_file_is_one_line_quickly_and_writes_nothing(tmp_path, command, case):
    content, message = HOSTILE[case]
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_bytes(content)
    before = digest(tmp_path)
    args = {
        # (the overrides keep a config accepted by mistake short; none touches what a case tests)
        "train": ["train", "--config", run / "config.yaml", f"out_dir={tmp_path / 'out'}", "train.iterations=1"],
        "resume": ["train", "--resume", run],
        "info": ["info", "--config", run / "config.yaml"],
    }[command]
    one_line(timed(*args), str(run / "config.yaml"), message)  # the file is named
    assert digest(tmp_path) == before  # nothing written, nothing created


def test_a_config_that_is_a_fifo_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    one_line(gcnseg("info", "--config", fifo, timeout=60), f"{fifo}: is not a file")


def test_a_few_anchors_and_aliases_are_still_a_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  crop_size: &size [64, 96]\n  pad_size: *size\neval:\n  pad_size: *size\n")
    cfg = load_config(path)
    assert cfg.data.crop_size == cfg.data.pad_size == cfg.eval.pad_size == [64, 96]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model=5", "model: expected a mapping, got 5"),
        ("data=[1]", "data: expected a mapping, got [1]"),
        ("model.k=[7,7", "model.k: '[7,7' is not valid YAML (while parsing a flow sequence, expected ',' or ']'"),
        ("model.k=" + "[" * 100_000, "is not valid YAML (nested deeper than 32"),
        ("train.seed=" + "9" * 5000, "an integer of 5000 characters"),
        ("train.seed=" + "9" * 30, f"train.seed: must be at most {2**31 - 1}"),
        ("train.seed=-1", "train.seed: must be at least 0"),
        ("model.k=99999", "model.k: must be at most 255, got 99999"),
        ("model.k=[7,7,7,99999]", "model.k[3]: must be at most 255"),
        ("data.crop_size=[64,100000]", "data.crop_size[1]: must be at most 16384"),
        ("data.ignore_index=70000", "data.ignore_index: must be at most 65535"),
        ("eval.scales=[1e9]", "eval.scales[0]: must be at most 16"),
        ("data.mean=[.inf,0,0]", "data.mean[0]: must be a finite number"),
        ("eval.boundary_width=1000000", "eval.boundary_width: must be at most 256"),
        ("train.iterations=" + "9" * 30, "train.iterations: must be at most 9999999"),
    ],
)
def test_overrides_go_through_the_same_bounds(tmp_path, override, message):
    err = one_line(timed("train", *TINY, f"out_dir={tmp_path / 'run'}", override), message)
    assert "function" not in err and "0x" not in err and len(err) < 600, err
    assert not (tmp_path / "run").exists()


def _holds_int(tp) -> bool:
    if tp is int:
        return True
    return any(_holds_int(a) for a in typing.get_args(tp) if not isinstance(a, types.FunctionType))


def int_fields() -> list[tuple[str, bool]]:
    """``(section.key, takes a bare int)`` of every field of the config that holds integers."""
    found = []
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        if not dataclasses.is_dataclass(cls):
            continue
        hints = typing.get_type_hints(cls, include_extras=True)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if typing.get_origin(tp) is dict or not _holds_int(tp):
                continue
            members = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, type(int | None)) else (tp,)
            bare = any(m is int or typing.get_args(m)[:1] == (int,) for m in members)
            found.append((f"{section.name}.{f.name}", bare))
    return found


@pytest.mark.parametrize(("key", "bare"), int_fields())
def test_every_integer_of_the_config_has_an_upper_bound(key, bare):
    """2**64 (an OverflowError somewhere, once) is refused by the type's range for every
    integer field, as a file's value and as an override's."""
    value = 2**64 + 1 if bare else [2**64 + 1]  # odd: model.k checks that first
    with pytest.raises(ConfigError, match=re.escape(key) + r"(\[0\])?: must be (at most|below) "):
        load_config(None, [f"{key}={json.dumps(value)}"])


def test_the_integer_fields_are_found():
    keys = {k for k, _ in int_fields()}
    assert {"model.k", "model.m", "train.batch_size", "train.seed", "eval.tile", "data.void", "train.threads"} <= keys


# 2. sizes without an upper bound ----------------------------------------------------------


def labels(folder: Path, values: int = 3) -> Path:
    save(folder / "a.png", (np.arange(64).reshape(8, 8) % values).astype(np.uint8))
    return folder


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--num-classes", "1000000"], f"--num-classes 1000000: at most {MAX_CLASSES}"),
        (["--num-classes", "3", "--boundary-width", "nan"], "--boundary-width must be 0 to 256 pixels, got nan"),
        (["--num-classes", "3", "--boundary-width", "inf"], "--boundary-width must be 0 to 256 pixels, got inf"),
        (["--num-classes", "3", "--boundary-width", "1e9"], "--boundary-width must be 0 to 256 pixels"),
        (["--num-classes", "3", "--ignore-index", "9" * 30], "--ignore-index must be a label value of 0 to 65535"),
    ],
)
def test_score_sizes_are_bounded(tmp_path, flags, message):
    folder = labels(tmp_path / "l")
    one_line(timed("score", folder, folder, *flags, "--json", tmp_path / "s.json"), message)
    assert not (tmp_path / "s.json").exists()


def test_score_bounds_the_class_count_in_the_library(tmp_path):
    from gcnseg.score import score_folders

    folder = labels(tmp_path / "l")
    with pytest.raises(DataError, match=f"at most {MAX_CLASSES}"):
        score_folders(folder, folder, MAX_CLASSES + 1)
    metrics, images, problems = score_folders(folder, folder, MAX_CLASSES)  # the bound itself: scored
    assert images == 1 and not problems and metrics is not None


@pytest.mark.parametrize(
    ("flags", "message", "code"),
    [
        (["--num-classes", "100000000"], f"--num-classes: expected a class count of 1 to {MAX_CLASSES}", 2),
        (["--size", "0"], "argument --size: expected a positive integer, got 0", 2),
        (["--size", "99999"], "--size 99999: at most 16384 pixels a side", 2),
        (["--size", "512", "99999"], "at most 16384 pixels a side", 2),
        (["--k", "99999"], "model.k: must be at most 255, got 99999", 2),
        (["--m", "100000000", "--head", "stack"], "model.m: must be at most 4096", 2),
    ],
)
def test_info_sizes_are_bounded(flags, message, code):
    one_line(timed("info", *flags), message, code=code)


def test_info_counts_the_largest_network_it_takes_in_seconds():
    """Counted on the meta device: no weights, no pixels, the same numbers."""
    start = time.monotonic()
    proc = inproc("info", "--size", "16384", "--num-classes", str(MAX_CLASSES), "--k", "255", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 15
    info = json.loads(proc.stdout)
    assert info["input"] == [1, 3, 16384, 16384] and info["total"]["flops"] > 0


def test_info_counts_as_before():
    from gcnseg.info import model_info
    from gcnseg.models import GCNSeg

    proc = inproc("info", "--backbone", "resnet18", "--num-classes", "5", "--size", "64", "96", "--json", "-")
    on_meta = json.loads(proc.stdout)
    real = model_info(GCNSeg(5, backbone="resnet18", k=15), (64, 96))
    assert on_meta["parts"] == real["parts"] and on_meta["total"] == real["total"]
    with pytest.raises(ValueError, match="of 1 to 16384 pixels"):
        model_info(GCNSeg(5, backbone="resnet18", k=15), (64, 100000))


def no_memory(*args, **kwargs):
    """What torch says when an allocation fails (a real one: an exabyte)."""
    return torch.empty(2**60, dtype=torch.uint8)


def test_predict_out_of_memory_is_one_line_naming_the_image_and_tiles(trained_run, tmp_path, monkeypatch):
    import gcnseg.predict

    save(tmp_path / "big.png", np.zeros((40, 48, 3), np.uint8))
    monkeypatch.setattr(gcnseg.predict, "segment", no_memory)
    out = tmp_path / "out"
    err = one_line(
        timed("predict", "--checkpoint", trained_run, tmp_path / "big.png", "--out", out, "--eager"),
        f"{tmp_path / 'big.png'}: out of memory in gcnseg predict",
        "--tile SIZE",
    )
    assert "allocate" in err
    assert not list(out.rglob("*.png"))  # nothing of that image written


def test_eval_out_of_memory_is_one_line_suggesting_tiles(trained_run, monkeypatch):
    import gcnseg.evaluate

    monkeypatch.setattr(gcnseg.evaluate, "evaluate", no_memory)
    one_line(
        timed("eval", "--checkpoint", trained_run, "--eager", "--no-progress"),
        f"{trained_run}: out of memory in gcnseg eval",
        "--tile SIZE",
    )


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.1 GiB total)"),
        MemoryError(),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried"),
    ],
)
def test_any_out_of_memory_is_one_line(trained_run, tmp_path, monkeypatch, error):
    import gcnseg.predict

    def fail(*args, **kwargs):
        raise error

    save(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setattr(gcnseg.predict, "segment", fail)
    one_line(inproc("predict", "--checkpoint", trained_run, tmp_path / "a.png", "--out", tmp_path / "o", "--eager"))


def test_other_runtime_errors_still_raise(trained_run, tmp_path, monkeypatch):
    """A bug is not bad input: it keeps its traceback."""
    import gcnseg.predict

    def bug(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    save(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setattr(gcnseg.predict, "segment", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        inproc("predict", "--checkpoint", trained_run, tmp_path / "a.png", "--out", tmp_path / "o", "--eager")


def test_an_error_message_is_one_line_whatever_it_holds(tmp_path):
    weird = tmp_path / "a\nb.yaml"
    err = one_line(timed("info", "--config", weird), "no such config file")
    assert "a\\nb.yaml" in err


# 3. hand-edited sidecars ------------------------------------------------------------------


@pytest.fixture
def sidecar(trained_run, tmp_path):
    """``(run copy, edit)``: ``edit(fn)`` applies ``fn`` to the copy's sidecar dict."""
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    path = ck.resolve_checkpoint(run) / ck.META_FILE

    def edit(fn):
        meta = json.loads(path.read_text())
        fn(meta)
        path.write_text(json.dumps(meta))
        return path

    return run, edit


def _set(path: str, value):
    def fn(meta):
        *parents, last = path.split(".")
        node = meta
        for p in parents:
            node = node[p]
        node[last] = value

    return fn


BAD_SIDECARS = [
    ("palette", [[0, 0, 0]], "palette: 1 entries for num_classes 3"),
    ("palette", [[0, 0, 0], [1, 2, 3], [300, 0, 0]], "palette: expected a list of [R, G, B] colours of 0 to 255"),
    ("palette", [[0, 0], [1, 2], [3, 4]], "palette: expected a list of [R, G, B]"),
    ("palette", [[0, 0, 0.5], [1, 2, 3], [4, 5, 6]], "palette: expected a list of [R, G, B]"),
    ("palette", "red", "palette: expected a list"),
    ("classes", ["a", "b"], "classes: 2 entries for num_classes 3"),
    ("classes", ["a", 2, "c"], "classes: expected a list of class names (strings)"),
    ("classes", {"a": 1}, "classes: expected a list"),
    ("num_classes", 0, f"num_classes: expected 1 to {MAX_CLASSES}, got 0"),
    ("num_classes", 10**9, f"num_classes: expected 1 to {MAX_CLASSES}"),
    ("num_classes", True, "num_classes: expected 1 to"),
    ("num_classes", "3", "num_classes: expected 1 to"),
    ("ignore_index", -1, "ignore_index: expected a label value of 0 to 65535, got -1"),
    ("ignore_index", 70000, "ignore_index: expected a label value of 0 to 65535"),
    ("config", [], "config: expected a mapping"),
    ("step", -3, "step: expected a step count"),
    ("sha256", {"model.safetensors": "x"}, "sha256: expected file name -> SHA-256 in hex"),
    ("sidecar", 1, "sidecar: version 1 is not one gcnseg writes (2"),
    ("sidecar", "2", "sidecar: version '2' is not one gcnseg writes"),
    ("config.model", 5, "model: expected a mapping, got 5"),
    ("config.model.k", 99999, "model.k: must be at most 255, got 99999"),
    ("config.model.k", 4, "model.k: expected a positive odd kernel size"),
    ("config.model.k", [7, 7], "model.k: expected one odd size or four"),
    ("config.model.backbone", "resnet7", "model.backbone: expected one of resnet18"),
    ("config.eval.tile", 0, "eval.tile: must be at least 1, got 0"),
    ("config.eval.scales", [0], "eval.scales[0]: must be above 0"),
    ("config.eval.scales", [], "eval.scales: expected at least one scale"),
    ("config.eval.tile_overlap", 1.5, "eval.tile_overlap: must be below 1"),
    ("config.data.std", [0, 1, 1], "data.std[0]: must be above 0"),
    ("config.data.ignore_index", 10**30, "data.ignore_index: must be at most 65535"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_SIDECARS, ids=[f"{k}={v!r}"[:40] for k, v, _ in BAD_SIDECARS])
@pytest.mark.parametrize("command", ["predict", "eval"])
def test_a_hand_edited_sidecar_is_one_line(sidecar, tmp_path, command, key, value, message):
    run, edit = sidecar
    path = edit(_set(key, value))
    save(tmp_path / "a.png", np.zeros((16, 16, 3), np.uint8))
    args = {
        "predict": ["predict", "--checkpoint", run, tmp_path / "a.png", "--out", tmp_path / "out", "--eager"],
        "eval": ["eval", "--checkpoint", run, "--eager", "--json", tmp_path / "e.json"],
    }[command]
    one_line(timed(*args), str(path), message)
    assert not (tmp_path / "out").exists() and not (tmp_path / "e.json").exists()


def test_a_hand_edited_sidecar_is_refused_by_the_library_and_serve_too(sidecar):
    from gcnseg import from_pretrained
    from gcnseg.errors import GcnsegError
    from gcnseg.serve.segmenter import Segmenter

    run, edit = sidecar
    edit(_set("palette", [[0, 0, 0]] * 2))
    with pytest.raises(ck.CheckpointError, match="palette: 2 entries for num_classes 3"):
        from_pretrained(run)
    with pytest.raises(GcnsegError, match="palette: 2 entries for num_classes 3"):
        Segmenter([str(run)], eager=True).load(str(run))


def test_a_sidecar_without_a_palette_gets_colours(sidecar, tmp_path):
    from gcnseg.data.base import color_map

    run, edit = sidecar
    edit(lambda meta: meta.pop("palette"))
    assert ck.load_model(run)[2]["palette"] == [list(c) for c in color_map(3)]
    save(tmp_path / "a.png", np.zeros((16, 16, 3), np.uint8))
    proc = inproc("predict", "--checkpoint", run, tmp_path / "a.png", "--out", tmp_path / "out", "--eager")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "labels" / "a.png").is_file()


def test_saved_configs_keep_their_training_ranges_unchecked(sidecar):
    """What only training reads is checked by type alone in a sidecar (a later version that
    narrows it still reads the run); what rebuilding the network reads, by range too."""
    run, edit = sidecar
    edit(_set("config.train.iterations", 0))
    assert ck.load_model(run)[1].train.iterations == 0


def _downgrade(meta, version_key=True, digests=True, runtime=True, new_config_keys=True):
    if version_key:
        meta.pop("sidecar", None)
    if digests:
        meta.pop("sha256", None)
    if runtime:
        meta.pop("runtime", None)
    if new_config_keys:
        meta["config"]["data"].pop("void", None)
        meta["config"]["data"].pop("label_map", None)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: (m.update(sidecar=1), m.pop("sha256")),  # "version 1" by number
        lambda m: _downgrade(m, runtime=False, new_config_keys=False),  # the runtime key left
        lambda m: _downgrade(m, runtime=True, new_config_keys=False),  # data.void left in its config
        lambda m: _downgrade(m, version_key=False),  # the version key left
    ],
    ids=["sidecar=1", "runtime left", "config keys left", "version left"],
)
def test_an_edit_never_turns_the_weight_check_into_a_warning(sidecar, edit):
    from safetensors.torch import load_file, save_file

    run, change = sidecar
    ckpt = ck.resolve_checkpoint(run)
    state = load_file(str(ckpt / ck.MODEL_FILE))
    save_file({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, str(ckpt / ck.MODEL_FILE))
    change(edit)
    proc = timed("eval", "--checkpoint", run, "--eager")
    err = one_line(proc)
    assert "warning" not in err and ("no SHA-256" in err or "sidecar: version 1" in err), err


def test_a_true_version_1_sidecar_loads_with_a_warning(sidecar, capsys):
    run, edit = sidecar
    edit(_downgrade)
    ck._unchecked.clear()
    ck.load_model(run)
    assert "saved before gcnseg kept digests; not checked for corruption" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON (nested too deeply)"),
        (b'{"num_classes": ' + b"9" * 5000 + b"}", "not valid JSON (Exceeds the limit"),
        (b'{"num_classes": NaN}', "num_classes: expected 1 to"),
    ],
)
def test_a_hostile_sidecar_file_is_one_line(sidecar, content, message):
    run, _ = sidecar
    path = ck.resolve_checkpoint(run) / ck.META_FILE
    path.write_bytes(content)
    one_line(timed("eval", "--checkpoint", run), str(path), message)


def test_an_oversized_sidecar_is_refused_before_it_is_read(sidecar, monkeypatch):
    run, _ = sidecar
    path = ck.resolve_checkpoint(run) / ck.META_FILE
    monkeypatch.setattr(ck, "MAX_SIDECAR_BYTES", 100)
    one_line(timed("eval", "--checkpoint", run), f"{path}: larger than a checkpoint sidecar can be (at most 100 bytes)")


def test_a_hostile_pointer_is_one_line(sidecar):
    run, _ = sidecar
    for name in ("best.json", "last.json"):
        (run / name).write_bytes(b"[" * 100_000)
    one_line(timed("eval", "--checkpoint", run), "best.json: not a checkpoint pointer")


# 4. small ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "  ", "\t"])
def test_an_empty_checkpoint_name_is_an_error(name, tmp_path):
    from gcnseg import from_pretrained

    with pytest.raises(ck.CheckpointError, match="an empty name"):
        from_pretrained(name)
    one_line(timed("eval", "--checkpoint", name), "an empty name")


def test_predict_tile_zero_is_a_usage_error(trained_run, tmp_path):
    save(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    args = ["predict", "--checkpoint", trained_run, tmp_path / "a.png", "--out", tmp_path / "out"]
    one_line(timed(*args, "--tile", "0"), "argument --tile: expected a positive integer, got 0", code=2)
    one_line(timed(*args, "--tile", "100000"), "eval.tile: must be at most 16384")
    assert not (tmp_path / "out").exists()


def test_a_list_flag_that_swallows_an_input_says_so(trained_run, tmp_path):
    """``--scales 0.5 1 a.png``: the flag takes the image as a scale; the error says how to
    end its values, and ``--`` does."""
    save(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    args = ["predict", "--checkpoint", trained_run, "--out", tmp_path / "out"]
    image = str(tmp_path / "a.png")
    one_line(timed(*args, "--scales", "0.5", "1", image), f"got {image!r}: the flag takes every value after it; end its values with --", code=2)  # fmt: skip
    one_line(timed(*args, "--scales", "0", image), "argument --scales: expected a positive number, got 0", code=2)
    one_line(timed(*args, "--tile", "64", "x.png"), "argument --tile: expected a positive integer, got 'x.png': the flag", code=2)  # fmt: skip
    assert not (tmp_path / "out").exists()
    done = timed(*args, "--scales", "0.5", "1", "--", image)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "labels" / "a.png").is_file()


@pytest.mark.parametrize("which", ["classes.txt", "train.txt"])
def test_non_utf8_dataset_lists_are_one_line(tmp_path, which):
    root = tmp_path / "data"
    make_folder(root, ["a", "b"], ["bg", "fg"])
    (root / which).write_bytes("caf\xe9\n".encode("latin-1"))
    proc = timed(
        "data", "check", "--dataset", "folder", "--root", root, "--split", "train" if which != "classes.txt" else "all"
    )
    one_line(proc, which)
