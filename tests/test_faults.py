"""Fault injection through the real command line: a careless user and a hostile file.
Every failure must be one line without a traceback, a non-zero exit, and nothing lost:
the last good checkpoint still loads and holds the same weights. Signals, locks, full
disks, closed pipes and DataLoader workers are driven as subprocesses; the rest through
the same entry point in this process (``inproc``), as a subprocess each is seconds of
imports."""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fakes import make_folder, save
from PIL import Image
from safetensors.torch import load_file

from gcnseg.checkpoint import load_model, resolve_checkpoint
from gcnseg.commands import main
from gcnseg.runtime import file_sha256

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}

# a network small enough to checkpoint often (280k parameters), trained from scratch
TINY = [
    "model.backbone=timm/mobilenetv3_small_050",
    "model.weights=null",
    "model.k=3",
    "data.dataset=synthetic-shapes",
    "data.options={size: 32, num_classes: 3, length: 8, eval_length: 2, seed: 1}",
    "optim.name=adam",
    "optim.lr=0.001",
    "train.batch_size=2",
    "train.iterations=4",
    "train.previews=0",
    "train.threads=1",
]


def gcnseg(*args: str | Path, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gcnseg", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        **kw,
    )


def inproc(*args: str | Path) -> subprocess.CompletedProcess:
    """The command run in this process, through the same entry point (``gcnseg.commands.main``),
    its output captured: for the cases where a process of its own adds nothing but the
    seconds of its imports (signals, locks, file-size limits and pipes keep one)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's usage errors
            code = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess(list(map(str, args)), code, out.getvalue(), err.getvalue())


def one_line(proc: subprocess.CompletedProcess, *parts: str, code: int = 2) -> str:
    """The process failed with ``code`` and said so in one line holding ``parts``."""
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert proc.returncode == code, (proc.returncode, err)
    assert len(err.splitlines()) == 1, err
    for part in parts:
        assert part in err, err
    return err


def weights(run: Path, prefer: str = "last") -> dict[str, torch.Tensor]:
    return load_file(str(resolve_checkpoint(run, prefer) / "model.safetensors"))


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))  # same size


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("faults") / "tiny"
    proc = gcnseg("train", *TINY, f"out_dir={run}", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return run


@pytest.fixture
def tiny_copy(tiny_run, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_run, tmp_path / "tiny"))


def test_train_takes_its_run_folder_and_data_root_as_flags(tiny_copy, tmp_path):
    """``--out`` and ``--root`` are ``out_dir=`` and ``data.root=``: a missing root is one
    line naming it, before any folder is made; ``--out`` or ``out_dir=`` with ``--resume`` is refused."""
    missing = tmp_path / "no-camvid"
    one_line(inproc("train", "--config", "camvid_lite0", "--root", missing, "--out", tmp_path / "run"), f"{missing}: not found")  # fmt: skip
    assert not (tmp_path / "run").exists()
    one_line(inproc("train", "--resume", tiny_copy, "--out", tmp_path / "run"), "--out is for a new run")
    one_line(inproc("train", "--resume", tiny_copy, f"out_dir={tmp_path / 'run'}"), "out_dir= is for a new run")
    assert not (tmp_path / "run").exists()
    done = inproc("train", *TINY, "train.iterations=1", "--out", tmp_path / "run", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["out_dir"] == str(tmp_path / "run")


# 1. silent corruption -----------------------------------------------------------------


@pytest.mark.parametrize("command", ["eval", "predict", "export", "vrf", "resume", "init_from"])
def test_flipped_bytes_in_the_weights_are_refused_everywhere(tiny_copy, tmp_path, command):
    ckpt = resolve_checkpoint(tiny_copy, "last")
    flip_bytes(ckpt / "model.safetensors")
    image = tmp_path / "in" / "a.png"
    save(image, np.zeros((32, 32, 3), np.uint8))
    args = {
        "eval": ["eval", "--checkpoint", tiny_copy],
        "predict": ["predict", "--checkpoint", tiny_copy, image, "--out", tmp_path / "out"],
        "export": ["export", "--checkpoint", tiny_copy, "--out", tmp_path / "m.onnx"],
        "vrf": ["vrf", "--checkpoint", tiny_copy, "--image", image, "--out", tmp_path / "v.png"],
        "resume": ["train", "--resume", tiny_copy, "train.iterations=6"],
        "init_from": ["train", *TINY, f"train.init_from={tiny_copy}", f"out_dir={tmp_path / 'next'}"],
    }[command]
    one_line(inproc(*args), f"{ckpt / 'model.safetensors'}: corrupted")


def test_a_sidecar_without_its_digests_is_refused_and_an_old_one_is_said_unchecked(tiny_copy):
    ckpt = resolve_checkpoint(tiny_copy, "last")
    meta = json.loads((ckpt / "model.json").read_text())
    del meta["sha256"]  # a current sidecar without digests: not accepted as unchecked
    (ckpt / "model.json").write_text(json.dumps(meta))
    one_line(gcnseg("eval", "--checkpoint", tiny_copy), "no SHA-256 of model.safetensors")
    del meta["sidecar"]  # as written before digests were kept (and the keys that came after them):
    meta.pop("runtime")  # loads, and says it is unchecked
    meta["config"]["data"].pop("void")
    meta["config"]["data"].pop("label_map")
    (ckpt / "model.json").write_text(json.dumps(meta))
    proc = gcnseg("eval", "--checkpoint", tiny_copy)
    assert proc.returncode == 0, proc.stderr
    assert "saved before gcnseg kept digests; not checked for corruption" in proc.stderr


def test_flipped_bytes_in_the_training_state_are_refused(tiny_copy):
    ckpt = resolve_checkpoint(tiny_copy, "last")
    flip_bytes(ckpt / "train_state.pt")
    config = (tiny_copy / "config.yaml").read_text()
    one_line(inproc("train", "--resume", tiny_copy, "train.iterations=6"), f"{ckpt / 'train_state.pt'}: corrupted")
    assert (tiny_copy / "config.yaml").read_text() == config  # a refused resume changes nothing


# 2, 3, 10. one writer per run folder; SIGTERM saves; a resumed log has each step once --


def _wait_for(cond, proc: subprocess.Popen, what: str, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"training ended before {what}: {proc.communicate()[1]}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"no {what} after {seconds} s")
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_second_writer_refused_reader_free_and_a_signal_saves_the_step(tmp_path, sig):
    run = tmp_path / "run"
    args = [*TINY, "train.iterations=100000", "train.checkpoint_every=3", "train.log_every=1", f"out_dir={run}"]
    first = subprocess.Popen(
        [sys.executable, "-m", "gcnseg", "train", *args, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        _wait_for(lambda: (run / "last.json").is_file(), first, "checkpoint")
        # the lock is the other process's: this one is refused as a process of its own would be
        second = inproc("train", *args)  # the same out_dir at once: refused, nothing touched
        one_line(second, f"{run}: in use by gcnseg train (pid {first.pid})")
        third = inproc("train", "--resume", run)
        one_line(third, f"{run}: in use by gcnseg train (pid {first.pid})")
        reader = inproc("eval", "--checkpoint", run)  # readers stay free
        assert reader.returncode == 0, reader.stderr
        first.send_signal(sig)
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 128 + sig, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert f"stopped by {sig.name} at step" in last and f"gcnseg train --resume {run}" in last
    step = json.loads((run / "last.json").read_text())["step"]
    assert f"at step {step};" in last  # the step it stopped at is the one saved
    load_model(run, prefer="last")  # loads

    done = inproc("train", "--resume", run, f"train.iterations={step + 2}", "--no-progress")
    assert done.returncode == 0, done.stderr
    steps = [(r["split"], r["step"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert len(steps) == len(set(steps)), "a resumed run repeats log records"
    assert ("train", step + 2) in steps


def test_a_killed_run_resumes_with_each_step_logged_once(tmp_path):
    run = tmp_path / "run"
    args = [*TINY, "train.iterations=100000", "train.checkpoint_every=4", "train.log_every=1", f"out_dir={run}"]
    proc = subprocess.Popen([sys.executable, "-m", "gcnseg", "train", *args, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip

    def logged_past_checkpoint() -> bool:  # records written after the last checkpoint: to be dropped
        if not (run / "last.json").is_file() or not (run / "metrics.jsonl").is_file():
            return False
        saved = json.loads((run / "last.json").read_text())["step"]
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return any(json.loads(x)["step"] >= saved + 2 for x in lines[:-1])

    try:
        _wait_for(logged_past_checkpoint, proc, "log records past a checkpoint")
        proc.kill()  # SIGKILL: no handler runs
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    step = json.loads((run / "last.json").read_text())["step"]
    done = inproc("train", "--resume", run, f"train.iterations={step + 3}", "--no-progress")
    assert done.returncode == 0, done.stderr
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    assert train_steps == list(range(1, step + 4)), train_steps  # each step once, in order


# 4. values are checked when the config is loaded, before anything is written ----------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.iterations=0", "train.iterations: must be at least 1, got 0"),
        ("train.iterations=-5", "train.iterations: must be at least 1, got -5"),
        ("model.backbone=resnet7", "model.backbone: expected one of resnet18"),
        ("model.backbone=timm/no_such_net", "timm has no model 'no_such_net'"),
        ("model.k=4", "model.k: expected a positive odd kernel size"),
        ("model.k=[7,7]", "model.k: expected one odd size or four"),
        ("train.batch_size=0", "train.batch_size: must be at least 1, got 0"),
        ("optim.lr=-0.1", "optim.lr: must be above 0, got -0.1"),
        ("optim.momentum=1", "optim.momentum: must be below 1"),
        ("data.options={size: -3}", "data.options size must be a positive integer, got -3"),
        ("data.options={radius: abc}", "synthetic-shapes: bad data.options"),
        ("data.scale_range=[0.5,1.5]", "without data.crop_size (or pad_size) gives images of different sizes"),
        ("data.scale_range=[2,1]", "data.scale_range: expected [low, high] with low <= high"),
        ("train.class_weights=[1,2]", "train.class_weights: 2 weights for the 3 classes"),
        ("train.class_weights=[1,-2,1]", "train.class_weights[1]: must be at least 0"),
        ("train.ohem_thresh=1.5", "train.ohem_thresh: must be at most 1"),
        ("train.max_minutes=0", "train.max_minutes: must be above 0"),
        ("eval.scales=[]", "eval.scales: expected at least one scale"),
        ("train.device=tpu", "train.device=tpu: expected auto, cpu, cuda or cuda:N"),
        ("out_dir=FILE", "is a file, not a folder"),
    ],
)
def test_bad_values_are_one_line_before_anything_is_written(tmp_path, capsys, override, message):
    # in this process (the same entry point as the command; a subprocess each is slow), and a
    # few of them as subprocesses below
    if override == "out_dir=FILE":
        (tmp_path / "file").write_text("x")
        override = f"out_dir={tmp_path / 'file'}"
    assert main(["train", *TINY, f"out_dir={tmp_path / 'run'}", override]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override", ["train.iterations=0", "model.k=4", "optim.lr=-0.1"])
def test_bad_values_as_subprocesses(tmp_path, override):
    one_line(gcnseg("train", *TINY, f"out_dir={tmp_path / 'run'}", override), override.split("=")[0])
    assert not (tmp_path / "run").exists()


# 5. malformed run files -----------------------------------------------------------------


@pytest.mark.parametrize("content", [[1, 2], {"step": 3}, {"optimizer": {}, "scheduler": {}, "step": "3"}])
def test_a_training_state_that_is_not_one_is_one_line(tiny_copy, content):
    ckpt = resolve_checkpoint(tiny_copy, "last")
    torch.save(content, ckpt / "train_state.pt")
    meta = json.loads((ckpt / "model.json").read_text())
    meta["sha256"]["train_state.pt"] = file_sha256(
        ckpt / "train_state.pt"
    )  # replaced on purpose: the content is tested
    (ckpt / "model.json").write_text(json.dumps(meta))
    one_line(inproc("train", "--resume", tiny_copy, "train.iterations=6"), "train_state.pt: not a training state")


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', "", "\xff\xfe"])
def test_a_sidecar_that_is_not_an_object_is_one_line(tiny_copy, content):
    ckpt = resolve_checkpoint(tiny_copy, "last")
    (ckpt / "model.json").write_bytes(content.encode("latin-1"))
    one_line(inproc("eval", "--checkpoint", tiny_copy), f"{ckpt / 'model.json'}: not")


# 6. outputs that eat inputs or fail late --------------------------------------------------


def test_predict_into_or_around_its_input_folder_is_refused(tiny_run, tmp_path):
    """Pictures written among the inputs would be segmented by the next run on them."""
    photos = tmp_path / "photos"
    for i in range(2):
        save(photos / f"p{i}.png", np.full((32, 32, 3), 60 * i, np.uint8))
    for out in (photos / "out", tmp_path):  # inside the input folder; holding it
        one_line(inproc("predict", "--checkpoint", tiny_run, photos, "--out", out), "which this command reads")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["p0.png", "p1.png", "photos"]  # nothing written


def test_output_paths_are_checked_before_the_work(tiny_run, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    image = tmp_path / "a.png"
    save(image, np.zeros((32, 32, 3), np.uint8))
    one_line(inproc("predict", "--checkpoint", tiny_run, image, "--out", a_file), f"--out {a_file}: is a file")
    one_line(
        inproc("eval", "--checkpoint", tiny_run, "--json", a_file / "eval.json"), f"{a_file} is a file, not a folder"
    )
    one_line(inproc("eval", "--checkpoint", tiny_run, "--json", tmp_path), "is a folder, not a file")
    one_line(
        inproc("export", "--checkpoint", tiny_run, "--out", a_file / "m.onnx"), f"{a_file}: output folder does not"
    )


# 7. a full disk ---------------------------------------------------------------------------


def _file_size_limit(limit: int):
    def apply() -> None:  # files cannot grow past ``limit``: writes fail as on a full disk (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_is_one_line_naming_the_last_good_checkpoint(tiny_copy):
    before = weights(tiny_copy)
    good = resolve_checkpoint(tiny_copy, "last")
    ckpt_bytes = (good / "model.safetensors").stat().st_size
    proc = gcnseg(
        "train",
        "--resume",
        tiny_copy,
        "train.iterations=6",
        "--no-progress",
        preexec_fn=_file_size_limit(ckpt_bytes // 2),
    )
    one_line(
        proc,
        f"{tiny_copy / 'checkpoints' / 'step-0000006' / 'model.safetensors'}: could not write the checkpoint of step 6 "
        f"(File too large); the last good checkpoint is {good}",
    )
    assert same(weights(tiny_copy), before)
    assert not list((tiny_copy / "checkpoints").glob(".tmp-*"))  # no half-written folder left
    load_model(tiny_copy, prefer="last")


def test_a_full_disk_names_the_output_and_leaves_no_part_of_it(tiny_run, tmp_path):
    # limits below what coverage's own data file needs at exit: the process runs without it
    uncovered = {k: v for k, v in ENV.items() if not k.startswith(("COV_CORE", "COVERAGE"))}
    out = tmp_path / "eval.json"
    argv = [sys.executable, "-m", "gcnseg", "eval", "--checkpoint", tiny_run, "--json", out, "--no-progress"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=uncovered, preexec_fn=_file_size_limit(64))
    one_line(proc, f"{out}: File too large")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    scripted = tmp_path / "m.pt"  # torch's own writer would abort the process (c10::Error)
    argv = [sys.executable, "-m", "gcnseg", "export", "--checkpoint", tiny_run, "--format", "torchscript"]
    proc = subprocess.run([*argv, "--out", scripted], capture_output=True, text=True, env=uncovered,
                          preexec_fn=_file_size_limit(4096))  # fmt: skip
    one_line(proc, f"{scripted}: File too large")
    assert list(tmp_path.iterdir()) == []


# 8. pointers that leave the run -------------------------------------------------------------


@pytest.mark.parametrize("target", ["ABS", "../other/checkpoints/step-0000004", "checkpoints/../../x", "."])
def test_pointers_outside_the_run_are_refused(tiny_copy, tmp_path, target):
    other = Path(shutil.copytree(tiny_copy, tmp_path / "other"))
    if target == "ABS":
        target = str(resolve_checkpoint(other, "last").resolve())
    for name in ("last", "best"):
        (tiny_copy / f"{name}.json").write_text(json.dumps({"step": 4, "path": target}))
    one_line(inproc("eval", "--checkpoint", tiny_copy), "points outside the run's checkpoints/ folder")


# 9. a bad file met in training -------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 1])
def test_a_bad_training_image_names_the_file_and_data_check(tmp_path, workers):
    root = tmp_path / "data"
    make_folder(root, [f"s{i}" for i in range(4)], ["bg", "thing"], size=(32, 32))
    (root / "images" / "s2.png").write_bytes(b"not a png")
    args = ["data.dataset=folder", f"data.root={root}", "data.options={}", "data.train_split=all", "data.val_split=all",
            f"data.workers={workers}"]  # fmt: skip
    command = inproc if workers == 0 else gcnseg  # a DataLoader worker's failure in a process of its own
    proc = command("train", *TINY, *args, f"out_dir={tmp_path / 'run'}", "train.seed=3", "--no-progress")
    one_line(proc, str(root / "images" / "s2.png"), "gcnseg data check --config")


# 12. small ones --------------------------------------------------------------------------------


def test_a_closed_pipe_ends_quietly(tmp_path):
    root = tmp_path / "data"
    make_folder(root, ["a", "b"], ["bg", "thing"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "gcnseg", "data", "check", "data.dataset=folder", f"data.root={root}",
         "data.train_split=all", "data.val_split=all"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
    )  # fmt: skip
    proc.stdout.close()  # the reader is gone before the first line, as ``| head -0``
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert proc.returncode == 141 and "Traceback" not in err and "Exception ignored" not in err, err


def test_limit_zero_and_other_usage_mistakes_are_one_line(tiny_run):
    one_line(inproc("eval", "--checkpoint", tiny_run, "--limit", "0"), "--limit: expected a positive integer, got 0")
    one_line(inproc("eval", "--checkpoint", tiny_run, "--no-such-flag"), "unrecognized arguments: --no-such-flag")


def test_resume_before_the_first_checkpoint_says_start_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: x\n")
    one_line(inproc("train", "--resume", run), "no checkpoint yet", "start it again without --resume")


def test_resume_with_only_best_left_says_so(tiny_copy):
    (tiny_copy / "last.json").unlink()
    one_line(inproc("train", "--resume", tiny_copy), "last.json: missing (only best.json is left)", "train.init_from=")


# 13. a predicted ignore index -------------------------------------------------------------------


def test_score_counts_a_predicted_ignore_index_as_wrong_where_it_is_scored(tmp_path):
    gt = np.array([[0, 1, 255], [1, 1, 0]], np.uint8)
    pred = np.array([[0, 255, 255], [1, 255, 0]], np.uint8)  # 255 on two labelled pixels, one ignored
    for folder, arr in (("gt", gt), ("pred", pred)):
        (tmp_path / folder).mkdir()
        Image.fromarray(arr).save(tmp_path / folder / "a.png")
    proc = inproc("score", tmp_path / "pred", tmp_path / "gt", "--num-classes", "2", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # class 0: 2 of 2 right, predicted twice -> IoU 1; class 1: 1 of 3 right, predicted once -> IoU 1/3
    assert out["pixels"] == 5 and out["unassigned_pixels"] == 2
    assert out["iou"] == [1.0, pytest.approx(1 / 3)]
    assert out["pixel_acc"] == pytest.approx(3 / 5)
