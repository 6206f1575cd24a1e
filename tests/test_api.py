"""The one-call inference API (gcnseg/api.py): a model from ``from_pretrained`` takes images
as they come and gives the labels that ``gcnseg predict`` writes; what could be misread is
an error; ``num_classes`` gives a fresh head on the trained encoder; ``model(x)`` is as
it was; ``import gcnseg`` stays without torch."""

from __future__ import annotations

import copy
import importlib.util
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import rgb, street_scene
from PIL import Image

import gcnseg
from gcnseg.checkpoint import load_model
from gcnseg.commands import main

NAME = "camvid-gcn-lite0"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(trained_run):
    return gcnseg.from_pretrained(trained_run)


@pytest.fixture(scope="module")
def predicted(trained_run, tmp_path_factory):
    """``gcnseg predict``'s label maps (by stem) for three images: a plain one, one of an
    odd size, a JPEG photo whose EXIF says to turn it; and their folder."""
    folder = tmp_path_factory.mktemp("api-images")
    scene = street_scene(64, 80)
    Image.fromarray(scene).save(folder / "scene.png")
    Image.fromarray(rgb(37, 53, seed=1)).save(folder / "odd.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to view
    Image.fromarray(street_scene(40, 64)).save(folder / "phone.jpg", exif=exif)
    out = tmp_path_factory.mktemp("api-predict")
    assert main(["predict", "--checkpoint", str(trained_run), str(folder), "--out", str(out), "--no-progress"]) == 0
    labels = {p.stem: np.asarray(Image.open(p)) for p in (out / "labels").glob("*.png")}
    assert set(labels) == {"scene", "odd", "phone"}
    return folder, labels


def test_a_pil_image_an_array_and_a_path_give_the_labels_of_predict(model, predicted):
    folder, labels = predicted
    for stem, suffix in (("scene", ".png"), ("odd", ".png")):
        path = folder / f"{stem}{suffix}"
        arr = np.asarray(Image.open(path).convert("RGB"))
        from_path, from_str = model.segment(path), model.segment(str(path))
        from_pil, from_array = model.segment(Image.open(path)), model.segment(arr)
        for got in (from_path, from_str, from_pil, from_array):
            assert got.dtype == np.int64
            assert got.shape == arr.shape[:2]
            np.testing.assert_array_equal(got, labels[stem])
    assert labels["odd"].shape == (37, 53)


def test_a_path_is_turned_as_its_exif_says_as_predict_turns_it(model, predicted):
    folder, labels = predicted
    got = model.segment(folder / "phone.jpg")
    assert got.shape == (64, 40)  # stored 40 x 64, shown turned
    np.testing.assert_array_equal(got, labels["phone"])
    assert model.segment(Image.open(folder / "phone.jpg")).shape == (40, 64)  # a PIL image: its pixels as they are


def test_a_list_gives_a_list_and_scores_are_probabilities_whose_argmax_is_the_labels(model, predicted):
    folder, labels = predicted
    paths = [folder / "scene.png", folder / "odd.png"]
    out = model.segment(paths, scores=True)
    assert isinstance(out, list) and len(out) == 2
    for (lab, probs), p in zip(out, paths):
        np.testing.assert_array_equal(lab, labels[p.stem])
        assert probs.dtype == torch.float32 and probs.shape == (3, *lab.shape)
        assert probs.min() >= 0
        torch.testing.assert_close(probs.sum(0), torch.ones(lab.shape), atol=1e-5, rtol=0)
        np.testing.assert_array_equal(probs.argmax(0).numpy(), lab)


def test_test_time_settings_of_the_config_are_used_as_predict_uses_them(trained_run, tmp_path):
    from gcnseg.config import apply_overrides

    model = gcnseg.from_pretrained(trained_run)
    model.config = apply_overrides(model.config, ["eval.flip=true", "eval.scales=[0.75,1.0]"])
    img = rgb(48, 56, seed=3)
    Image.fromarray(img).save(tmp_path / "a.png")
    args = ["predict", "--checkpoint", str(trained_run), str(tmp_path / "a.png"), "--out", str(tmp_path / "out")]
    assert main([*args, "--flip", "--scales", "0.75", "1.0", "--no-progress"]) == 0
    expected = np.asarray(Image.open(tmp_path / "out" / "labels" / "a.png"))
    labels, probs = model.segment(img, scores=True)
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(model.segment(img), expected)
    np.testing.assert_array_equal(probs.argmax(0).numpy(), labels)


def test_grey_rgba_tensors_and_unit_floats_are_read_as_the_same_image(model):
    img = rgb(40, 48, seed=2)
    labels = model.segment(img)
    grey = img[..., 1]
    np.testing.assert_array_equal(model.segment(grey), model.segment(np.repeat(grey[..., None], 3, -1)))
    rgba = np.concatenate([img, np.full((40, 48, 1), 7, np.uint8)], -1)
    np.testing.assert_array_equal(model.segment(rgba), labels)
    np.testing.assert_array_equal(model.segment(Image.fromarray(rgba)), labels)
    chw = torch.from_numpy(img).permute(2, 0, 1)
    np.testing.assert_array_equal(model.segment(chw), labels)  # torchvision's read_image layout
    np.testing.assert_array_equal(model.segment(chw.float() / 255), labels)  # to_tensor's
    np.testing.assert_array_equal(model.segment(img.astype(np.float32) / 255), labels)
    batch = model.segment(torch.stack([chw, chw]))
    assert len(batch) == 2
    np.testing.assert_array_equal(batch[1], labels)


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (rgb(20, 24, seed=0).astype(np.float32), "up to 255"),  # 0-255 floats: the silent 34% of the issue
        (torch.from_numpy(rgb(20, 24, seed=0)).permute(2, 0, 1).double(), "up to 255"),
        (rgb(20, 24, seed=0).astype(np.float32) / 255 - 0.5, "normalised already"),
        (np.full((20, 24, 3), np.nan, np.float32), "NaN"),
        (rgb(20, 24, seed=0).transpose(2, 0, 1), "channels-first"),
        (np.zeros((20, 24), bool), "mask"),
        (np.zeros((0, 24, 3), np.uint8), "shape"),
    ],
)
def test_input_that_could_be_misread_is_a_value_error_saying_why(model, image, match):
    with pytest.raises(ValueError, match=match):
        model.segment(image)


def test_the_raw_call_still_gives_the_logits_of_the_bare_network(model, trained_run):
    bare, cfg, _ = load_model(trained_run)
    img = rgb(32, 40, seed=4)
    x = model.preprocess(img)
    assert x.shape == (1, 3, 32, 40)
    mean, std = torch.tensor(cfg.data.mean).view(3, 1, 1), torch.tensor(cfg.data.std).view(3, 1, 1)
    expected_x = (torch.from_numpy(img).permute(2, 0, 1).float() / 255 - mean) / std
    torch.testing.assert_close(x[0], expected_x)
    with torch.inference_mode():
        logits, bare_logits = model(x), bare(x)
    assert type(model) is type(bare)
    torch.testing.assert_close(logits, bare_logits, rtol=0, atol=0)
    assert logits.shape == (1, 3, 32, 40) and logits.min() < 0  # logits, not probabilities
    assert model.state_dict().keys() == bare.state_dict().keys()


def test_changed_weights_are_used_at_once_and_copies_keep_working(trained_run):
    from gcnseg.inference import predict_scores
    from gcnseg.optimize import optimize_for_inference

    model = gcnseg.from_pretrained(trained_run)
    img = rgb(32, 40, seed=5)
    _, before = model.segment(img, scores=True)
    with torch.no_grad():  # as an optimiser step changes them: in place
        for p in model.parameters():
            p.mul_(1.05)
    _, after = model.segment(img, scores=True)
    assert not torch.allclose(before, after)
    fresh = predict_scores(optimize_for_inference(model), model.preprocess(img))[0]  # what predict now runs
    torch.testing.assert_close(after, fresh, atol=0, rtol=0)
    _, eager = model.segment(img, scores=True, eager=True)
    model.train()
    _, trained_mode = model.segment(img, scores=True, eager=True)
    assert model.training  # put back as it was
    torch.testing.assert_close(trained_mode, eager, atol=0, rtol=0)  # run in eval mode
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert other.segment.model is other
        np.testing.assert_array_equal(other.segment(img), model.segment(img))


def test_a_fresh_head_for_other_classes_on_the_same_encoder(trained_run):
    original = gcnseg.from_pretrained(trained_run)
    five = gcnseg.from_pretrained(trained_run, num_classes=5)
    assert five.meta["num_classes"] == 5 and five.meta["trained"] is False
    assert len(five.meta["classes"]) == 5 and len(five.meta["palette"]) == 5
    assert "metrics" not in five.meta
    a, b = original.backbone.state_dict(), five.backbone.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    img = rgb(37, 53, seed=6)
    labels, probs = five.segment(img, scores=True)
    assert labels.shape == (37, 53) and probs.shape == (5, 37, 53)
    with torch.inference_mode():
        assert five(five.preprocess(img)).shape == (1, 5, 37, 53)
    assert gcnseg.from_pretrained(trained_run, num_classes=3).meta == original.meta  # the same count: as trained
    with pytest.raises(ValueError, match="num_classes"):
        gcnseg.from_pretrained(trained_run, num_classes=0)


def test_the_named_model_segments_a_street_in_one_call(tmp_path):
    model = gcnseg.from_pretrained(NAME)
    scene = street_scene()
    Image.fromarray(scene).save(tmp_path / "street.png")
    labels = model.segment(tmp_path / "street.png")
    assert labels.shape == (360, 480)
    road = model.meta["classes"].index("road")
    assert np.mean(labels[240:] == road) > 0.6
    np.testing.assert_array_equal(model.segment(scene), labels)
    # the misuse: [0, 1] pixels fed to the network without the normalisation
    raw = torch.from_numpy(scene).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        assert np.mean(model(raw).argmax(1)[0].numpy() == labels) < 0.999


def test_the_hub_entry_takes_num_classes():
    spec = importlib.util.spec_from_file_location("hubconf", REPO / "hubconf.py")
    assert spec is not None and spec.loader is not None
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    four = hubconf.camvid_gcn_lite0(num_classes=4)
    assert four.meta["num_classes"] == 4 and four.meta["trained"] is False
    assert four.segment(street_scene(40, 64)).shape == (40, 64)
    fresh = hubconf.camvid_gcn_lite0(pretrained=False)
    assert fresh.meta["num_classes"] == 11 and fresh.meta["trained"] is False
    assert fresh.segment(street_scene(40, 64), scores=True)[1].shape == (11, 40, 64)


def test_import_gcnseg_does_not_import_torch():
    r = subprocess.run(
        [sys.executable, "-c", "import gcnseg, sys; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_segment_eager_takes_no_other_path():
    import gcnseg

    model = gcnseg.from_pretrained("camvid-gcn-lite0")
    img = np.zeros((32, 48, 3), np.uint8)
    with pytest.raises(ValueError, match="eager=True runs the network as it is"):
        model.segment(img, eager=True, precision="int8")
    with pytest.raises(ValueError, match="eager=True runs the network as it is"):
        model.segment(img, eager=True, compile="on")
    assert model.segment(img, eager=True).shape == (32, 48)
