"""gcnseg export: files that describe themselves (ONNX metadata_props, TorchScript meta.json),
and the end-to-end graph (uint8 RGB in, label map out) run from the file alone."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import gcnseg
from gcnseg.checkpoint import load_model
from gcnseg.commands import main

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _picture(path, size=(83, 59)):
    """A PNG of shapes on a background, as the synthetic data has; an odd size."""
    rng = np.random.default_rng(1)
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, size[0] - 20)), int(rng.integers(0, size[1] - 20))
        box = [x0, y0, x0 + int(rng.integers(10, 30)), y0 + int(rng.integers(10, 30))]
        fill = tuple(int(v) for v in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    img.save(path)
    return path


def test_default_export_metadata_and_logits(trained_run, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(trained_run), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "float32 N x 3 x H x W" in said and "logits" in said and "metadata_props" in said
    model, cfg, meta = load_model(trained_run)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["gcnseg_version"] == gcnseg.__version__
    assert json.loads(props["classes"]) == meta["classes"] and len(meta["classes"]) == 3
    assert json.loads(props["palette"]) == [list(c) for c in meta["palette"]]
    assert json.loads(props["mean"]) == pytest.approx(cfg.data.mean)
    assert json.loads(props["std"]) == pytest.approx(cfg.data.std)
    assert props["num_classes"] == "3" and props["ignore_index"] == str(meta["ignore_index"])
    assert props["end_to_end"] == "false" and "resnet18" in props["model"] and "k 7" in props["model"]
    assert props["checkpoint"].startswith(str(trained_run)) and props["weights_sha256"]
    assert "N x 3 x H x W" in props["input"] and "logits" in props["output"]
    sess = _session(out)
    assert sess.get_modelmeta().custom_metadata_map == props  # what a runtime shows, without onnx
    x = torch.randn(2, 3, 37, 53)  # another batch and an odd size than the traced one
    with torch.no_grad():
        ref = model(x).numpy()
    got = sess.run(None, {"image": x.numpy()})[0]
    assert got.shape == ref.shape == (2, 3, 37, 53)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    assert not list(tmp_path.glob(".*.tmp"))


def test_end_to_end_export_from_the_file_alone_equals_predict(trained_run, tmp_path, capsys):
    out = tmp_path / "e2e.onnx"
    assert main(["export", "--checkpoint", str(trained_run), "--end-to-end", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "uint8 N x H x W x 3" in said and "labels" in said
    img = _picture(tmp_path / "pic.png")
    pred = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(trained_run), str(img), "--out", str(pred), "--eager"]) == 0
    expected = np.asarray(Image.open(pred / "labels" / "pic.png"))

    # from here on, only the file: what a user outside Python has
    sess = _session(out)
    info = sess.get_modelmeta().custom_metadata_map
    classes, palette = json.loads(info["classes"]), json.loads(info["palette"])
    assert info["end_to_end"] == "true" and "uint8" in info["input"] and len(palette) == len(classes) == 3
    (inp,), (outp,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, outp.name) == ("image", "tensor(uint8)", "labels")
    rgb = np.asarray(Image.open(img).convert("RGB"))  # H x W x 3 uint8, as PIL decodes it
    labels = sess.run(None, {"image": rgb[None]})[0][0]
    assert labels.shape == expected.shape == rgb.shape[:2]
    assert labels.min() >= 0 and labels.max() < len(classes)
    assert (labels == expected).mean() >= 0.999
    assert len(np.unique(expected)) > 1  # a picture with more than one class: the comparison means something

    # the default export's metadata is enough to feed it: mean and std as it says
    plain = tmp_path / "plain.onnx"
    assert main(["export", "--checkpoint", str(trained_run), "--out", str(plain)]) == 0
    s2 = _session(plain)
    meta2 = s2.get_modelmeta().custom_metadata_map
    mean, std = (np.array(json.loads(meta2[k]), np.float32).reshape(1, 3, 1, 1) for k in ("mean", "std"))
    x = (rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255 - mean) / std
    assert (s2.run(None, {"image": x.astype(np.float32)})[0].argmax(1)[0] == labels).mean() >= 0.999


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_end_to_end_torchscript_carries_meta_json(trained_run, tmp_path):
    out = tmp_path / "e2e.pt"
    args = ["export", "--checkpoint", str(trained_run), "--format", "torchscript", "--end-to-end", "--out", str(out)]
    assert main(args) == 0
    extra = {"meta.json": ""}
    traced = torch.jit.load(str(out), _extra_files=extra)
    info = json.loads(extra["meta.json"])
    assert info["end_to_end"] == "true" and len(json.loads(info["classes"])) == 3
    model, cfg, _ = load_model(trained_run)
    rgb = torch.randint(0, 256, (1, 41, 29, 3), dtype=torch.uint8)
    x = (rgb.permute(0, 3, 1, 2).float() / 255 - torch.tensor(cfg.data.mean).view(1, 3, 1, 1)) / torch.tensor(
        cfg.data.std
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.equal(traced(rgb), model(x).argmax(1))


def test_bad_opset_is_one_line_and_writes_nothing(trained_run, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(trained_run), "--opset", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--opset 5" in err and "17 to 23" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("fmt", "name"), [("torchscript", "m.onnx"), ("onnx", "m.pt")])
def test_an_out_name_of_the_other_format_is_refused(trained_run, tmp_path, capsys, fmt, name):
    out = tmp_path / name
    assert main(["export", "--checkpoint", str(trained_run), "--format", fmt, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out}: a {out.suffix} name for --format {fmt}" in err
    assert list(tmp_path.iterdir()) == []
