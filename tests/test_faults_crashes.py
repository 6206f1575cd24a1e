"""Crashes on ordinary use, through the real command line and the page's handlers: a CRF
on an image read as a read-only array, training images of different sizes in one batch,
BatchNorm with one value per channel, and the page of ``gcnseg serve`` on file names that
are not UTF-8 and on broken sidecars. Each failure is one line (or one message on the
page), and a run that fails before its first checkpoint leaves nothing half-made."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fakes import make_folder, save, street_scene
from PIL import Image
from test_faults import TINY, inproc, one_line

import gcnseg.crf
import gcnseg.train.state
from gcnseg.checkpoint import resolve_checkpoint
from gcnseg.errors import GcnsegError

# 5. predict --crf --------------------------------------------------------------------------------


def test_the_crf_takes_read_only_and_strided_arrays_and_leaves_them_alone():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    probs = rng.random((3, 12, 20)).astype(np.float32)
    probs /= probs.sum(0)
    expected = gcnseg.crf.dense_crf(image.copy(), probs.copy())
    frozen_image, frozen_probs = image.copy(), probs.copy()
    frozen_image.flags.writeable = False  # as np.asarray(PIL image) gives it
    frozen_probs.flags.writeable = False
    assert np.array_equal(gcnseg.crf.dense_crf(frozen_image, frozen_probs), expected)
    # another memory layout (a transposed view, a flipped one): the same labels
    tall = np.ascontiguousarray(image.transpose(1, 0, 2)).transpose(1, 0, 2)
    assert not tall.flags.c_contiguous
    assert np.array_equal(gcnseg.crf.dense_crf(tall, probs[:, :, ::-1][:, :, ::-1]), expected)
    assert np.array_equal(frozen_image, image) and np.array_equal(frozen_probs, probs)


def test_predict_with_crf_writes_the_crf_labels(trained_run, tmp_path, monkeypatch):
    photo = tmp_path / "in" / "street.png"
    save(photo, street_scene(48, 64))
    calls: list[tuple[bool, np.ndarray]] = []
    real = gcnseg.crf.dense_crf

    def spy(image, probs, *args, **kw):
        labels = real(image, probs, *args, **kw)
        calls.append((np.asarray(image).flags.writeable, labels))
        return labels

    monkeypatch.setattr(gcnseg.crf, "dense_crf", spy)
    out, report = tmp_path / "out", tmp_path / "report.json"
    proc = inproc("predict", "--checkpoint", trained_run, photo, "--out", out, "--crf", "--json", report)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(calls) == 1
    writeable, crf_labels = calls[0]
    assert not writeable  # what predict hands over: np.asarray of a PIL image, read-only
    record = json.loads(report.read_text())["images"][0]
    written = np.asarray(Image.open(record["label"]))
    assert written.shape == (48, 64) and np.array_equal(written, crf_labels)
    assert set(np.unique(written).tolist()) <= {0, 1, 2}  # the model's classes


def test_eval_with_crf_still_works(trained_run):
    proc = inproc("eval", "--checkpoint", trained_run, "--crf", "--limit", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr


# 6. training images of different sizes in one batch ---------------------------------------------


def _folder(root: Path, sizes: dict[str, tuple[int, int]]) -> list[str]:
    """A folder dataset whose images have the given (h, w); every split is all of them."""
    for stem, size in sizes.items():
        make_folder(root, [stem], ["bg", "thing"], size=size)
    return ["data.dataset=folder", f"data.root={root}", "data.options={}", "data.train_split=all",
            "data.val_split=all"]  # fmt: skip


def test_training_images_of_different_sizes_are_refused_before_anything_is_written(tmp_path):
    data = _folder(tmp_path / "data", {"a": (40, 40), "b": (40, 40), "c": (48, 56), "d": (40, 40)})
    run = tmp_path / "run"
    err = one_line(
        inproc("train", *TINY, *data, f"out_dir={run}", "--no-progress"),
        "differ in size",
        f"{tmp_path / 'data' / 'images' / 'a.png'} is 40x40",
        f"{tmp_path / 'data' / 'images' / 'c.png'} is 56x48",
        "train.batch_size=2",
        "data.crop_size",
    )
    assert "stack expects" not in err
    assert not run.exists()


def test_images_of_different_sizes_train_with_a_crop_or_one_at_a_time(tmp_path):
    data = _folder(tmp_path / "data", {"a": (40, 40), "b": (48, 56), "c": (40, 72), "d": (64, 40)})
    proc = inproc("train", *TINY, *data, "data.crop_size=36", f"out_dir={tmp_path / 'crop'}", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    proc = inproc("train", *TINY, *data, "train.batch_size=1", f"out_dir={tmp_path / 'one'}", "--no-progress")
    assert proc.returncode == 0, proc.stderr


# 7. BatchNorm with one value per channel, and the run folder of a failed start -------------------


LARGER = "data.options={size: 64, num_classes: 3, length: 8, eval_length: 2, seed: 1}"  # TINY's shapes at 64 px


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (["train.batch_size=1"], "on the training image train-000000 (32x32 px)"),  # TINY's 32 px shapes
        (["train.batch_size=1", LARGER, "data.crop_size=24"], "data.crop_size=24"),
        (["train.batch_size=1", LARGER, "data.scale_range=[0.5,1.0]"], "32x32 at data.scale_range's 0.5"),
    ],
)
def test_a_batch_of_one_small_image_is_refused_before_anything_is_written(tmp_path, overrides, said):
    run = tmp_path / "run"
    one_line(
        inproc("train", *TINY, *overrides, f"out_dir={run}", "--no-progress"),
        said,
        "BatchNorm one value per channel",
        "data.crop_size",
        "train.batch_size",
        "train.freeze_bn=true",
    )
    assert not run.exists()


def test_small_files_in_a_batch_of_one_are_refused_and_train_with_frozen_batchnorm(tmp_path):
    data = _folder(tmp_path / "data", {"a": (24, 30), "b": (24, 30)})
    run = tmp_path / "run"
    one_line(
        inproc("train", *TINY, *data, "train.batch_size=1", f"out_dir={run}", "--no-progress"),
        f"{tmp_path / 'data' / 'images' / 'a.png'} (30x24 px)",
        "train.freeze_bn=true",
    )
    assert not run.exists()
    proc = inproc(
        "train", *TINY, *data, "train.batch_size=1", "train.freeze_bn=true", f"out_dir={run}", "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    assert (run / "last.json").is_file()
    # just above the limit (33 px on one side: a 2x1 map at stride 32) BatchNorm trains
    data = _folder(tmp_path / "wide", {"a": (20, 33), "b": (20, 33)})
    proc = inproc("train", *TINY, *data, "train.batch_size=1", f"out_dir={tmp_path / 'wide-run'}", "--no-progress")
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def no_precheck(monkeypatch):
    """Training without the checks of the batch's shapes: what the first step meets."""
    monkeypatch.setattr(gcnseg.train.state, "check_batch_shapes", lambda *a, **k: None)


def test_a_first_step_that_fails_is_one_line_and_leaves_no_run_folder(tmp_path, no_precheck):
    run = tmp_path / "run"
    one_line(
        inproc("train", *TINY, "train.batch_size=1", f"out_dir={run}", "--no-progress"),
        "the first training step failed (ValueError: Expected more than 1 value per channel when training",
        "data.crop_size",
        "train.freeze_bn=true",
    )
    assert not run.exists()  # made by the run, and gone with it


def test_a_failed_start_in_a_folder_given_leaves_it_as_it_was_and_the_next_start_runs(tmp_path, no_precheck):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: earlier\n")  # an earlier start that saved no checkpoint
    (run / "train.log").write_text("an earlier start\n")
    one_line(inproc("train", *TINY, "train.batch_size=1", f"out_dir={run}", "--no-progress"), "first training step")
    assert run.is_dir() and list(run.iterdir()) == []  # the folder given stays, nothing in it
    proc = inproc("train", *TINY, f"out_dir={run}", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "an earlier start" not in (run / "train.log").read_text()


def test_mixed_sizes_that_reach_the_loader_are_one_line(tmp_path, no_precheck):
    data = _folder(tmp_path / "data", {"a": (40, 40), "b": (48, 56)})
    run = tmp_path / "run"
    one_line(
        inproc("train", *TINY, *data, f"out_dir={run}", "--no-progress"),
        "the first training step failed",
        "stack expects each tensor to be equal size",
        "data.crop_size",
    )
    assert not run.exists()


def test_a_failure_after_the_folder_is_taken_removes_it(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise GcnsegError("train.init_from: refused")

    monkeypatch.setattr(gcnseg.train.state, "_prepare_model", refuse)
    run = tmp_path / "run"
    one_line(inproc("train", *TINY, f"out_dir={run}", "--no-progress"), "train.init_from: refused")
    assert not run.exists()


def test_a_bad_file_at_the_first_step_keeps_only_the_config_its_message_names(tmp_path):
    root = tmp_path / "data"
    data = _folder(root, {f"s{i}": (32, 32) for i in range(4)})
    (root / "images" / "s2.png").write_bytes(b"not a png")
    run = tmp_path / "run"
    err = one_line(
        inproc("train", *TINY, *data, f"out_dir={run}", "train.seed=3", "--no-progress"),
        str(root / "images" / "s2.png"),
    )
    assert f"gcnseg data check --config {run / 'config.yaml'}" in err
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
    assert inproc("data", "check", "--config", run / "config.yaml").returncode == 1  # it names the file


def test_a_run_with_a_checkpoint_keeps_everything(tmp_path):
    from gcnseg.train.state import discard_unsaved

    run = tmp_path / "run"
    assert inproc("train", *TINY, f"out_dir={run}", "--no-progress").returncode == 0
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert not discard_unsaved(run, made=True)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before


# 11. gcnseg serve --------------------------------------------------------------------------------


def _latin1(folder: Path, name: bytes, data: bytes) -> None:
    """A file whose name is the bytes ``name`` (not valid UTF-8)."""
    try:
        fd = os.open(os.path.join(os.fsencode(folder), name), os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as e:  # a file system that takes UTF-8 names only
        pytest.skip(f"this file system refuses a name that is not UTF-8 ({e})")
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _png(h: int = 40, w: int = 48) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(street_scene(h, w)).save(buf, format="PNG")
    return buf.getvalue()


def test_names_that_are_not_utf8_are_listed_escaped_and_open(tmp_path):
    from gcnseg.serve.segmenter import folder_images, list_images

    (tmp_path / "ok.png").write_bytes(_png())
    _latin1(tmp_path, b"caf\xe9.png", _png(40, 56))
    os.mkdir(os.path.join(os.fsencode(tmp_path), b"f\xfcr"))
    _latin1(tmp_path / os.fsdecode(b"f\xfcr"), b"x.png", _png())
    listing = list_images(tmp_path)
    assert listing.names == ["caf\\xe9.png", "f\\xfcr/x.png", "ok.png"]
    assert listing.note == "2 names not valid UTF-8, shown with \\x escapes"
    for name in listing.names:
        name.encode("utf-8")  # what the page sends the browser: no lone surrogates
        assert (tmp_path / listing.path(name)).is_file()
    assert Image.open(tmp_path / listing.path("caf\\xe9.png")).size == (56, 40)
    assert folder_images(tmp_path) == (listing.names, listing.note)
    # a file named with the escape itself: both cannot be listed under one name
    (tmp_path / "caf\\xe9.png").write_bytes(_png())
    clash = list_images(tmp_path)
    assert clash.names == ["caf\\xe9.png", "f\\xfcr/x.png", "ok.png"] and clash.path("caf\\xe9.png") == "caf\\xe9.png"
    assert "1 name not valid UTF-8 left out (another file has its escaped name)" in clash.note


def test_the_page_lists_such_a_folder_and_segments_the_escaped_name(trained_run, tmp_path):
    import orjson  # what Gradio sends the browser with

    from gcnseg.serve.page import Actions
    from gcnseg.serve.segmenter import Segmenter

    (tmp_path / "ok.png").write_bytes(_png())
    _latin1(tmp_path, b"caf\xe9.png", _png(40, 56))
    act = Actions(Segmenter([str(trained_run)], device="cpu"))
    picker, status, listed = act.list_folder(str(tmp_path))
    orjson.dumps(picker)  # the update of the picker (a TypeError before: "str is not valid UTF-8")
    assert picker["choices"] == ["caf\\xe9.png", "ok.png"] and picker["value"] == "caf\\xe9.png"
    assert 'class="ok"' in status and "2 images in" in status and "1 name not valid UTF-8" in status
    picture, status, _legend, _about, _state = act.picked("caf\\xe9.png", listed, str(trained_run), False, False, 0.5)
    assert picture.shape == (40, 56, 3) and 'class="ok"' in status and "caf\\xe9.png: 56x40" in status
    assert act.step(1)("caf\\xe9.png", listed)["value"] == "ok.png"


def _broken_sidecars(meta: dict) -> dict[str, str]:
    def without(key: str) -> str:
        return json.dumps({k: v for k, v in meta.items() if k != key})

    def replaced(key: str, value) -> str:
        return json.dumps({**meta, key: value})

    return {
        "not JSON": "{not json",
        "no num_classes": without("num_classes"),
        "a list": "[1, 2]",
        "palette of pairs": replaced("palette", [[1, 2]] * 3),
        "classes not a list": replaced("classes", 3),
        "ignore_index not a number": replaced("ignore_index", "void"),
        "config not one": replaced("config", {"model": {"k": "x"}}),
    }


def test_a_broken_sidecar_is_a_message_from_the_segmenter_and_on_the_page(trained_run_copy, capsys):
    from gcnseg.serve.page import Actions, Shown
    from gcnseg.serve.segmenter import Segmenter, describe

    ckpt = resolve_checkpoint(trained_run_copy)
    sidecar = ckpt / "model.json"
    good = sidecar.read_text()
    run = str(trained_run_copy)
    for case, text in _broken_sidecars(json.loads(good)).items():
        sidecar.write_text(text)
        segmenter = Segmenter([run], device="cpu", eager=True)
        with pytest.raises(GcnsegError) as e:
            segmenter.load(run)
        message = str(e.value)
        assert "\n" not in message and (str(ckpt) in message or run in message), (case, message)
        act = Actions(segmenter)
        about, legend = act.about(run)
        assert about.startswith('<p class="error">') and legend == "", (case, about)
        image = Shown("street.png", street_scene(40, 56), "street.png")
        picture, status, legend, about, kept = act.show(image, run, False, False, 0.5)
        assert picture is None and status.startswith('<p class="error">'), (case, status)
        assert kept is not None and kept.rgb is image.rgb  # the image stays, for the next model chosen
    sidecar.write_text(json.dumps({k: v for k, v in json.loads(good).items() if k not in ("classes", "palette")}))
    loaded = Segmenter([run], device="cpu", eager=True).load(run)  # what is missing is filled in
    assert loaded.classes == ["0", "1", "2"] and len(loaded.palette) == 3
    assert "val mIoU" not in describe(run, loaded.cfg, {"num_classes": 3, "metrics": [1]})  # (not a mapping)
    assert "Traceback" not in capsys.readouterr().err


def test_the_page_says_any_failure_to_load_and_keeps_serving(trained_run, monkeypatch, capsys):
    from gcnseg.serve.page import Actions
    from gcnseg.serve.segmenter import Segmenter

    segmenter = Segmenter([str(trained_run)], device="cpu")

    def broken(choice):
        raise KeyError("num_classes")

    monkeypatch.setattr(segmenter, "load", broken)
    about, legend = Actions(segmenter).about("x")
    assert about == '<p class="error">x: cannot load the model (KeyError: &#x27;num_classes&#x27;)</p>'
    assert legend == ""
    assert "KeyError" in capsys.readouterr().err  # (the defect in the server's log)


def test_the_other_models_still_load_after_a_broken_one(trained_run, tmp_path):
    from gcnseg.serve.segmenter import Segmenter

    broken = Path(shutil.copytree(trained_run, tmp_path / "broken"))
    (resolve_checkpoint(broken) / "model.json").write_text("{")
    segmenter = Segmenter([str(broken), str(trained_run)], device="cpu", eager=True)
    with pytest.raises(GcnsegError, match="not valid JSON"):
        segmenter.load(str(broken))
    assert segmenter.load(str(trained_run)).classes
