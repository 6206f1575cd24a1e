"""Reliability, round 2, what loses or damages data: a run only ever removes what it wrote;
an output is written through links and streamed into FIFOs and devices, never replaced;
no command writes onto what it reads; a resumed run takes the changes that can take
effect and refuses the others. Each case through the real command line, the user's files
compared byte for byte."""

import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from fakes import make_folder
from PIL import Image
from test_faults import TINY, inproc, one_line

from gcnseg.checkpoint import resolve_checkpoint


def digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (links as their target's name), by content."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained run, made in this process."""
    out = tmp_path_factory.mktemp("own") / "run"
    assert inproc("train", *TINY, f"out_dir={out}", "--no-progress").returncode == 0
    return out


# 1. train removes only what it wrote ---------------------------------------------------


def test_train_refuses_a_folder_of_other_files_and_touches_none(tmp_path):
    d = tmp_path / "d"
    (d / "checkpoints" / "mine").mkdir(parents=True)
    (d / "checkpoints" / "mine" / "w.pt").write_bytes(b"x")
    (d / "metrics.jsonl").write_text('{"mine": 1}\n')
    before = digest(d)
    err = one_line(inproc("train", *TINY, "train.iterations=3", f"out_dir={d}", "--no-progress"), "checkpoints/mine")
    assert "holds files that no gcnseg run wrote" in err and "choose another out_dir" in err
    assert digest(d) == before and not (d / ".lock").exists()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    one_line(inproc("train", *TINY, f"out_dir={notes}", "--no-progress"), "todo.txt")
    assert digest(notes) == {"todo.txt": hashlib.sha256(b"mine").hexdigest()}


def test_a_run_that_stopped_before_its_first_checkpoint_starts_again(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "config.yaml").write_text("name: old\n")
    (d / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 9}\n')
    assert inproc("train", *TINY, "train.iterations=2", f"out_dir={d}", "--no-progress").returncode == 0
    records = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert all(r.get("loss") != 9 for r in records)  # the earlier start's log is not this run's


def test_pruning_removes_only_checkpoints_of_its_own_naming(run, tmp_path):
    import shutil

    r = Path(shutil.copytree(run, tmp_path / "r"))
    (r / "checkpoints" / "mine").mkdir()
    (r / "checkpoints" / "mine" / "w.pt").write_bytes(b"keep me")
    (r / "notes.txt").write_text("keep me too")
    olds = []
    for steps in (6, 8):  # two resumes: of steps 4 and 6, at least one is neither last nor best
        olds.append(resolve_checkpoint(r, "last"))
        (olds[-1] / "model.onnx").write_bytes(b"an export")  # gcnseg export's default place
        assert inproc("train", "--resume", r, f"train.iterations={steps}", "--no-progress").returncode == 0
    best = resolve_checkpoint(r, "best")  # which validation was best varies with the CPU's arithmetic
    assert best.name != olds[0].name or best.name != olds[1].name
    for old in olds:
        kept = sorted(p.name for p in old.iterdir())
        # a pruned checkpoint's files went, the export stays; the best one is kept whole
        assert kept == (
            ["model.json", "model.onnx", "model.safetensors", "train_state.pt"] if old == best else ["model.onnx"]
        )
    assert (r / "checkpoints" / "mine" / "w.pt").read_bytes() == b"keep me"
    assert (r / "notes.txt").read_text() == "keep me too"
    assert resolve_checkpoint(r, "last").name == "step-0000008"


# 2. writes through links, streams into FIFOs -------------------------------------------


def test_json_output_through_a_symlink_keeps_the_link(run, tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert inproc("eval", "--checkpoint", run, "--json", link, "--no-progress").returncode == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "miou" in json.loads(target.read_text())


def _reader(fifo: Path, into: list[bytes]) -> threading.Thread:
    t = threading.Thread(target=lambda: into.append(fifo.read_bytes()), daemon=True)
    t.start()
    return t


def test_a_fifo_output_is_streamed_into_never_replaced(run, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _reader(fifo, got)
    assert inproc("eval", "--checkpoint", run, "--json", fifo, "--no-progress").returncode == 0
    reader.join(30)
    assert fifo.is_fifo() and "miou" in json.loads(got[0])  # still a FIFO: written as a stream
    link = tmp_path / "to-fifo"
    link.symlink_to(fifo)
    got.clear()
    reader = _reader(fifo, got)
    assert inproc("models", "--json", link).returncode == 0
    reader.join(30)
    assert link.is_symlink() and fifo.is_fifo() and json.loads(got[0])[0]["name"] == "camvid-gcn-lite0"


def test_special_files_take_the_streamed_path(tmp_path, monkeypatch):
    """A stand-in for a device node: a path that stat() calls a character device is
    written as a stream, as /dev/full or /dev/stdout would be, never renamed over."""
    import stat as st

    from gcnseg import runtime

    dev = tmp_path / "dev"
    dev.write_text("")
    real_stat = os.stat

    def as_device(p, *a, **k):
        s = real_stat(p, *a, **k)
        return os.stat_result((st.S_IFCHR | 0o666, *s[1:])) if Path(p) == dev else s

    monkeypatch.setattr(runtime.os, "stat", as_device)
    inode = real_stat(dev).st_ino
    runtime.atomic_write_text(dev, "streamed")
    assert real_stat(dev).st_ino == inode and dev.read_text() == "streamed"  # the same file, written into


# 3. no command writes onto what it reads -----------------------------------------------


def test_commands_never_write_onto_their_inputs(run, tmp_path):
    import shutil

    r = Path(shutil.copytree(run, tmp_path / "r"))
    ckpt = resolve_checkpoint(r)
    other = Path(shutil.copytree(ckpt, ckpt.parent / "step-0000002"))  # another checkpoint of the run: a resume point
    before = digest(r)
    one_line(inproc("export", "--checkpoint", r, "--out", ckpt / "model.safetensors"), "which this command reads")
    for name in ("model.safetensors", "model.json"):
        one_line(inproc("export", "--checkpoint", r, "--out", other / name), "which this command reads")
    export_state = ("export", "--checkpoint", r, "--format", "torchscript", "--out", other / "train_state.pt")
    one_line(inproc(*export_state), "which this command reads")
    one_line(inproc("eval", "--checkpoint", r, "--json", other / "model.json"), "which this command reads")
    image = tmp_path / "x.png"  # a real image: the refusal is the output's, not a missing input's
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    one_line(
        inproc("predict", "--checkpoint", r, "--out", tmp_path / "p", image, "--json", other / "model.json"),
        "which this command reads",
    )
    one_line(inproc("eval", "--checkpoint", r, "--json", r / "last.json"), "which this command reads")
    one_line(inproc("eval", "--checkpoint", r, "--json", ckpt / "model.json"), "which this command reads")
    one_line(
        inproc("predict", "--checkpoint", r, "--out", tmp_path / "p", image, "--json", r / "config.yaml"),
        "which this command reads",
    )
    assert digest(r) == before
    data = tmp_path / "data"
    make_folder(data, ["a", "b"], ["bg", "fg"])
    data_before = digest(data)
    for out in (data, data / "images"):
        one_line(
            inproc("data", "samples", "--dataset", "folder", "--root", data, "--split", "all", "--out", out),
            "which this command reads",
        )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"data: {{dataset: folder, root: {data}, train_split: all}}\n")
    one_line(inproc("data", "weights", "--config", recipe, "--out", recipe), "which this command reads")
    one_line(inproc("data", "check", "--config", recipe, "--json", data / "report.json"), "which this command reads")
    one_line(inproc("score", data / "masks", data / "masks", "--num-classes", "2", "--json", data / "masks" / "s.json"))
    one_line(
        inproc("ablate", "--table", "1", "--dataset", "folder", "--root", data, "--out", data / "ablation"),
        "which this command reads",
    )
    assert digest(data) == data_before and recipe.read_text().startswith("data: {dataset: folder")


# 4. resume with changed settings -------------------------------------------------------


def test_resume_takes_changes_that_can_take_effect(run, tmp_path):
    import shutil

    r = Path(shutil.copytree(run, tmp_path / "r"))
    assert yaml.safe_load((r / "config.yaml").read_text())["optim"]["lr"] == 0.001
    out = inproc("train", "--resume", r, "optim.lr=0.5", "train.iterations=8", "train.log_every=1", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "resumed with optim.lr: 0.001 -> 0.5" in out.stdout
    assert yaml.safe_load((r / "config.yaml").read_text())["optim"]["lr"] == 0.5
    lrs = {rec["step"]: rec["lr"] for rec in map(json.loads, (r / "metrics.jsonl").read_text().splitlines())
           if rec.get("split") == "train"}  # fmt: skip
    assert lrs[5] > 0.01  # from the resumed step on, the new rate (0.5 on the poly schedule)
    assert "resumed with optim.lr" in (r / "train.log").read_text()


def test_a_finished_run_trained_further_keeps_no_summary_of_its_earlier_end(run, tmp_path, monkeypatch):
    """``summary.json`` marks a finished run (``gcnseg ablate`` skips it): a finished run
    resumed for more steps and stopped before them has none until it finishes again."""
    import shutil

    import gcnseg.train.loop as loop

    r = Path(shutil.copytree(run, tmp_path / "r"))
    assert json.loads((r / "summary.json").read_text())["steps"] == 4
    step = loop.train_step

    def interrupted_at_6(run_, images, masks):
        if run_.state.step == 5:
            raise KeyboardInterrupt
        return step(run_, images, masks)

    monkeypatch.setattr(loop, "train_step", interrupted_at_6)
    assert inproc("train", "--resume", r, "train.iterations=8", "--no-progress").returncode == 130
    assert not (r / "summary.json").exists() and json.loads((r / "last.json").read_text())["step"] == 4
    monkeypatch.setattr(loop, "train_step", step)
    assert inproc("train", "--resume", r, "train.iterations=8", "--no-progress").returncode == 0
    assert json.loads((r / "summary.json").read_text())["steps"] == 8


@pytest.mark.parametrize(
    ("override", "key"),
    [("train.batch_size=4", "train.batch_size"), ("optim.name=sgd", "optim.name"), ("model.k=5", "model.k")],
)
def test_resume_refuses_what_cannot_change_and_leaves_the_run(run, tmp_path, override, key):
    import shutil

    r = Path(shutil.copytree(run, tmp_path / "r"))
    before = digest(r)
    err = one_line(inproc("train", "--resume", r, override, "--no-progress"), key, "cannot change on a resumed run")
    assert "train.init_from=" in err
    assert digest(r) == before


def test_hostile_pass_fixes(run, tmp_path):
    """A run never goes inside the data it reads; a finished run resumed without a longer
    schedule, or one shorter than the step reached, is one line; predict --out onto its
    input folder says so."""
    import shutil

    data = tmp_path / "data"
    make_folder(data, ["a", "b", "c"], ["bg", "fg"], size=(40, 40))
    inside = data / "masks" / "run"
    one_line(
        inproc(
            "train",
            *TINY,
            "data.dataset=folder",
            f"data.root={data}",
            "data.train_split=all",
            "data.val_split=all",
            f"out_dir={inside}",
            "--no-progress",
        ),
        "which this command reads",
    )
    assert not inside.exists()
    r = Path(shutil.copytree(run, tmp_path / "r"))
    before = digest(r)
    one_line(inproc("train", "--resume", r, "--no-progress"), "nothing to train")
    one_line(inproc("train", "--resume", r, "train.iterations=2", "--no-progress"), "nothing to train")
    assert digest(r) == before
    one_line(
        inproc("predict", "--checkpoint", r, data / "images", "--out", data / "images"), "which this command reads"
    )
