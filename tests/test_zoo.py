"""The named models that ship with gcnseg: digest-checked, usable wherever a checkpoint
is, and sensible on a street scene without any training."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import make_camvid, street_scene

import gcnseg
import gcnseg.zoo as zoo
from gcnseg.checkpoint import CheckpointError, resolve_checkpoint
from gcnseg.commands import main
from gcnseg.errors import GcnsegError
from gcnseg.runtime import file_sha256

NAME = "camvid-gcn-lite0"
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_the_shipped_weights_have_the_digest_in_the_code_and_fit_the_size_budget(name):
    m = zoo.ZOO[name]
    weights = m.folder / "model.safetensors"
    assert file_sha256(weights) == m.sha256
    assert weights.stat().st_size < 25e6
    assert (m.folder / "README.md").is_file()
    meta = json.loads((m.folder / "model.json").read_text())
    assert meta["num_classes"] == 11 and meta["classes"][0] == "sky"
    assert meta["sha256"]["model.safetensors"] == m.sha256


def test_a_changed_weights_file_is_refused(tmp_path, monkeypatch):
    copy = Path(shutil.copytree(zoo.ZOO[NAME].folder, tmp_path / NAME))
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-2] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(zoo, "HERE", tmp_path)
    with pytest.raises(GcnsegError, match="corrupted"):
        resolve_checkpoint(NAME)


def test_unknown_names_and_paths_are_one_line():
    with pytest.raises(CheckpointError, match="no such run folder, checkpoint or named model"):
        resolve_checkpoint("camvid-gcn-lite9")


def test_from_pretrained_gives_the_trained_network():
    model = gcnseg.from_pretrained(NAME)
    assert not model.training and model.meta["num_classes"] == 11
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 11, 64, 96)


@pytest.mark.parametrize("model", list(zoo.ZOO))
def test_predict_with_a_named_model_writes_a_sensible_overlay(tmp_path, capsys, model):
    from PIL import Image

    Image.fromarray(street_scene()).save(tmp_path / "street.png")
    assert main(["predict", "--model", model, str(tmp_path / "street.png"), "--out", str(tmp_path / "out")]) == 0
    labels = np.asarray(Image.open(tmp_path / "out" / "labels" / "street.png"))
    classes = json.loads((zoo.ZOO[model].folder / "model.json").read_text())["classes"]
    h = labels.shape[0]
    for band, name in (
        (labels[: h // 3], "sky"),
        (labels[h // 3 : 2 * h // 3], "building"),
        (labels[2 * h // 3 :], "road"),
    ):
        assert np.mean(band == classes.index(name)) > 0.6, (name, np.bincount(band.ravel()))
    assert (tmp_path / "out" / "overlays" / "street.png").is_file()


def test_eval_and_export_take_a_named_model(tmp_path, capsys, monkeypatch):
    root = tmp_path / "camvid"
    make_camvid(root, {"val": ["a", "b"]}, size=(64, 96))
    assert main(["eval", "--model", NAME, f"data.root={root}", "--limit", "1"]) == 0
    said = capsys.readouterr().out
    assert "mIoU" in said and "scored 1 of the split's 2 images (--limit 1)" in said
    monkeypatch.chdir(tmp_path)
    assert main(["export", "--model", NAME]) == 0
    assert (tmp_path / f"{NAME}.onnx").stat().st_size > 1e6  # beside the user, not inside the package


def test_eval_of_v2_says_it_flips_unless_told_not_to(tmp_path, capsys):
    root = tmp_path / "camvid"
    make_camvid(root, {"val": ["a"]}, size=(64, 96))
    assert main(["eval", "--model", "camvid-gcn-lite0-v2", f"data.root={root}"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "test time: flip"  # its default, said beside the numbers
    assert main(["eval", "--model", "camvid-gcn-lite0-v2", f"data.root={root}", "eval.flip=false", "--ms"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "test time: scales [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]"
    assert main(["eval", "--model", NAME, f"data.root={root}"]) == 0
    assert "test time" not in capsys.readouterr().out  # single scale: nothing to say


def test_models_lists_the_zoo(capsys):
    assert main(["models", "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(zoo.ZOO) and rows[0]["val_miou"] > 0.6


def test_torch_hub_loads_them_from_the_repository():
    code = "import torch\n" + "".join(
        f"m = torch.hub.load({str(REPO)!r}, {entry!r}, source='local', trust_repo=True)\n"
        "print(type(m).__name__, m.meta['num_classes'], m.config.eval.flip)\n"
        for entry in ("camvid_gcn_lite0", "camvid_gcn_lite0_v2")
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["GCNSeg", "11", "False", "GCNSeg", "11", "True"]


def test_v2_flips_by_default_and_is_the_v2_recipe():
    """camvid-gcn-lite0-v2 averages with the flipped image unless told otherwise (issue 24:
    flip gained on every candidate of the recipe search), and is what camvid_lite0_v2 trains."""
    from gcnseg.checkpoint import load_model
    from gcnseg.config import load_config

    _, cfg, meta = load_model("camvid-gcn-lite0-v2")
    assert cfg.eval.flip is True and load_model(NAME)[1].eval.flip is False
    assert meta["trained_with"].startswith("gcnseg train --config camvid_lite0_v2 ")
    recipe = load_config("camvid_lite0_v2")
    assert (cfg.data.scale_range, cfg.model, cfg.train.epochs) == (
        recipe.data.scale_range,
        recipe.model,
        recipe.train.epochs,
    )
    assert cfg.data.scale_range == [0.5, 2.0] and meta["step"] == 1800  # its last step: no selection on val


def test_pack_makes_a_named_model_from_a_run(trained_run, tmp_path, monkeypatch, capsys):
    from gcnseg.checkpoint import load_model
    from gcnseg.zoo import pack

    monkeypatch.setattr(zoo, "HERE", tmp_path)
    pack.main([str(trained_run), "tiny", "--fp16", "--command", "gcnseg train ..."])
    meta = json.loads((tmp_path / "tiny" / "model.json").read_text())
    assert meta["sha256"]["model.safetensors"] == file_sha256(tmp_path / "tiny" / "model.safetensors")
    assert meta["trained_with"] == "gcnseg train ..." and 0.99 < meta["fp16_pixel_agreement"] <= 1
    assert meta["config"]["data"]["root"] is None  # no paths of the machine that trained it
    assert meta["config"]["out_dir"] == f"runs/{Path(load_model(trained_run)[1].out_dir).name}"
    monkeypatch.setitem(zoo.ZOO, "tiny", zoo.NamedModel("tiny", "a test", meta["sha256"]["model.safetensors"], 90.0))
    model = gcnseg.from_pretrained("tiny")
    assert next(model.parameters()).dtype == torch.float32  # float16 on disk, float32 in use


def test_pack_is_reproducible(trained_run, tmp_path, monkeypatch, capsys):
    """The same run packs to the same bytes: the digest in the code can be checked by packing again."""
    from gcnseg.zoo import pack

    digests = []
    for folder in ("a", "b", "c"):
        monkeypatch.setattr(zoo, "HERE", tmp_path / folder)
        pack.main([str(trained_run), "tiny", "--command", "gcnseg train ..."])
        digests.append(file_sha256(tmp_path / folder / "tiny" / "model.safetensors"))
    assert len(set(digests)) == 1


def test_pack_flip_makes_flip_the_named_models_default(trained_run, tmp_path, monkeypatch):
    from gcnseg.checkpoint import load_model
    from gcnseg.zoo import pack

    monkeypatch.setattr(zoo, "HERE", tmp_path)
    pack.main([str(trained_run), "flipped", "--flip", "--command", "gcnseg train ..."])
    meta = json.loads((tmp_path / "flipped" / "model.json").read_text())
    monkeypatch.setitem(
        zoo.ZOO, "flipped", zoo.NamedModel("flipped", "a test", meta["sha256"]["model.safetensors"], 90.0)
    )
    assert load_model("flipped")[1].eval.flip is True
    assert load_model(trained_run)[1].eval.flip is False  # the run itself is unchanged
