"""gcnseg eval / predict / export on a tiny trained checkpoint."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gcnseg.checkpoint import load_model
from gcnseg.commands import main


@pytest.fixture
def run_dir(trained_run):
    return trained_run


def test_eval_prints_table_and_writes_json(run_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(run_dir), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mIoU" in text and "background" in text
    result = json.loads(out.read_text())
    assert result["images"] == 3 and len(result["iou"]) == 3
    assert 0 <= result["miou"] <= 1 and "boundary_acc" in result and "internal_acc" in result
    # the end of training evaluated the eager fp32 network: --eager gives exactly its
    # numbers, the default optimised path (BN folded, bf16 backbone) nearly the same
    summary = json.loads((run_dir / "summary.json").read_text())
    assert result["miou"] == pytest.approx(summary["final"]["miou"], abs=0.01)
    eager = tmp_path / "eager.json"
    assert main(["eval", "--checkpoint", str(run_dir), "--eager", "--json", str(eager)]) == 0
    assert json.loads(eager.read_text())["miou"] == pytest.approx(summary["final"]["miou"], abs=1e-9)


def test_eval_multiscale_and_flip(run_dir, tmp_path, capsys):
    out = tmp_path / "ms.json"
    assert main(["eval", "--checkpoint", str(run_dir), "--ms", "--flip", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["scales"] == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75] and result["flip"] is True


def test_eval_bad_checkpoint(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "no checkpoint here" in err and err.count("\n") == 1


def _write_images(folder, n=2, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(folder / f"img{i}.png")


def test_predict_folder_skips_unreadable_files(run_dir, tmp_path, capsys):
    src = tmp_path / "in"
    _write_images(src / "sub")
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.zeros((17, 23), np.uint8)).save(src / "gray.png")  # grayscale is converted
    (src / "._gray.png").write_bytes(b"\x00\x05\x16\x07 a Mac's AppleDouble file")  # hidden: not an image of it
    _write_images(src / ".git", n=1)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(run_dir), str(src), "--out", str(out)]) == 1  # one was bad
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err and "3 of 4 images written" in captured.out
    for stem, size in (("sub/img0", (40, 30)), ("sub/img1", (40, 30)), ("gray", (23, 17))):
        label = Image.open(out / "labels" / f"{stem}.png")
        assert label.mode == "P" and label.size == size
        assert np.asarray(label).max() < 3
        assert Image.open(out / "overlays" / f"{stem}.png").size == size
        assert (out / "side" / f"{stem}.png").is_file()
    assert sorted(p.relative_to(out / "labels").as_posix() for p in (out / "labels").rglob("*.png")) == [
        "gray.png",
        "sub/img0.png",
        "sub/img1.png",
    ]
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before


def test_predict_never_overwrites_inputs(run_dir, tmp_path, capsys):
    src = tmp_path / "same"
    _write_images(src / "labels", n=1)  # an input where img0.png's label map would go
    victim = src / "labels" / "img0.png"
    before = victim.read_bytes()
    assert main(["predict", "--checkpoint", str(run_dir), str(victim), "--out", str(src)]) == 2  # holds the input
    assert "which this command reads" in capsys.readouterr().err
    out = tmp_path / "out"  # the same place through a link: caught per file
    out.mkdir()
    (out / "labels").symlink_to(src / "labels")
    assert main(["predict", "--checkpoint", str(run_dir), str(victim), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "img0.png: output" in captured.err and "would overwrite an input" in captured.err
    assert victim.read_bytes() == before
    assert "0 of 1 images written" in captured.out


def test_predict_same_name_from_two_folders(run_dir, tmp_path, capsys):
    src = tmp_path / "src"
    _write_images(src / "a", n=1)
    _write_images(src / "b", n=1, size=(20, 10))
    out = tmp_path / "out"
    args = ["predict", "--checkpoint", str(run_dir), str(src / "a" / "img0.png"), str(src / "b" / "img0.png")]
    assert main(args + ["--out", str(out)]) == 0
    assert Image.open(out / "labels" / "img0.png").size == (40, 30)
    assert Image.open(out / "labels" / "img0-2.png").size == (20, 10)
    # folders keep their structure
    assert main(["predict", "--checkpoint", str(run_dir), str(src), "--out", str(tmp_path / "tree")]) == 0
    assert (tmp_path / "tree" / "side" / "a" / "img0.png").is_file()
    assert (tmp_path / "tree" / "side" / "b" / "img0.png").is_file()


def test_predicted_labels_score_against_themselves(run_dir, tmp_path, capsys):
    _write_images(tmp_path / "in", n=2)
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(run_dir), str(tmp_path / "in"), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["score", str(out / "labels"), str(out / "labels"), "--num-classes", "3", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["pixel_acc"] == 1.0


def test_an_interrupted_predict_leaves_label_maps_only_with_their_pictures(run_dir, tmp_path, monkeypatch):
    """The label map is written last: one that is there has its overlay and side picture."""
    import gcnseg.predict

    _write_images(tmp_path / "in", n=3)
    save = gcnseg.predict._save

    def interrupted(img, path):
        if path.parent.name == "side" and path.name == "img1.png":  # Ctrl-C in the second image's pictures
            raise KeyboardInterrupt
        save(img, path)

    monkeypatch.setattr(gcnseg.predict, "_save", interrupted)
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(run_dir), str(tmp_path / "in"), "--out", str(out)]) == 130
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["img0.png"]
    assert sorted(p.name for p in (out / "side").iterdir()) == ["img0.png"]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["img0.png", "img1.png"]


def test_predict_missing_input(run_dir, tmp_path, capsys):
    assert main(["predict", "--checkpoint", str(run_dir), str(tmp_path / "nope.png"), "--out", str(tmp_path)]) == 2
    assert "nope.png: no such file or folder" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_dynamic_sizes(run_dir, tmp_path, fmt):
    out = tmp_path / ("m.onnx" if fmt == "onnx" else "m.pt")
    assert main(["export", "--checkpoint", str(run_dir), "--format", fmt, "--out", str(out)]) == 0
    model, _, _ = load_model(run_dir)
    for hw in ((32, 48), (45, 61)):
        x = torch.randn(1, 3, *hw)
        with torch.no_grad():
            ref = model(x).numpy()
        if fmt == "onnx":
            import onnxruntime as ort

            sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = sess.run(None, {"image": x.numpy()})[0]
        else:
            got = torch.jit.load(str(out))(x).detach().numpy()
        assert got.shape == ref.shape == (1, 3, *hw)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
        assert (got.argmax(1) == ref.argmax(1)).mean() > 0.999


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_optimised_path_is_built_on_the_target_device(run_dir, tmp_path, monkeypatch, command):
    """ "auto" precision (bf16 backbone on a CPU with native bf16) must be chosen for the
    device the model runs on: a model optimised on the CPU and moved to CUDA afterwards
    would run its backbone in bf16 on the GPU."""
    import gcnseg.optimize as opt
    import gcnseg.runtime as runtime

    seen = []

    class Stop(Exception):
        pass

    def spy(model, *a, **k):
        seen.append(next(model.parameters()).device.type)
        raise Stop

    monkeypatch.setattr(runtime, "resolve_device", lambda name: torch.device("meta"))
    monkeypatch.setattr(opt, "optimize_for_inference", spy)
    img = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    argv = {
        "eval": ["eval", "--checkpoint", str(run_dir)],
        "predict": ["predict", "--checkpoint", str(run_dir), str(img), "--out", str(tmp_path / "out")],
    }[command]
    with pytest.raises(Stop):
        main(argv)
    assert seen == ["meta"]


def test_checkpoint_of_another_model_is_one_line(run_dir, tmp_path, capsys):
    import shutil

    from gcnseg.checkpoint import resolve_checkpoint

    ckpt = tmp_path / "ckpt"
    shutil.copytree(resolve_checkpoint(run_dir), ckpt)
    meta = json.loads((ckpt / "model.json").read_text())
    meta["num_classes"] = 5  # the weights have 3 classes
    (ckpt / "model.json").write_text(json.dumps(meta))
    assert main(["eval", "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.safetensors: does not fit the model" in err and "of another shape" in err
    del meta["num_classes"]
    (ckpt / "model.json").write_text(json.dumps(meta))
    assert main(["eval", "--checkpoint", str(ckpt)]) == 2
    assert "model.json: no num_classes" in capsys.readouterr().err


def test_predict_json_names_height_and_width(run_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((17, 23, 3), np.uint8)).save(src / "wide.png")
    report = tmp_path / "p.json"
    assert (
        main(["predict", "--checkpoint", str(run_dir), str(src), "--out", str(tmp_path / "o"), "--json", str(report)])
        == 0
    )
    (record,) = json.loads(report.read_text())["images"]
    assert (record["height"], record["width"]) == (17, 23) and sum(record["class_share"].values()) == pytest.approx(1)
