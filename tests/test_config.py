"""One config for every command: enum-like fields checked when loaded, one way to apply
overrides, flags as shorthands for overrides, retired keys of old run folders."""

import json

import pytest
import torch
import yaml

from gcnseg.commands import main
from gcnseg.config import ConfigError, apply_overrides, given, load_config, split_overrides


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.head=fcn", "model.head"),
        ("model.backbone=vgg16", "model.backbone"),
        ("model.upsample=nearest", "model.upsample"),
        ("optim.name=rmsprop", "optim.name"),
        ("optim.schedule=cosine", "optim.schedule"),
        ("train.amp=fp8", "train.amp"),
    ],
)
def test_enum_fields_are_checked_when_loaded(override, key, tmp_path, capsys):
    with pytest.raises(ConfigError, match=rf"{key}: expected one of .*, got"):
        load_config(None, [override])
    assert main(["train", override, f"out_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and key in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_enum_fields_accept_their_choices():
    cfg = load_config(
        None, ["model.head=stack", "model.upsample=bilinear", "optim.name=adamw", "train.amp=bf16", "train.amp=null"]
    )
    assert (cfg.model.head, cfg.model.upsample, cfg.optim.name, cfg.train.amp) == ("stack", "bilinear", "adamw", None)
    with pytest.raises(ConfigError, match=r"model\.br: expected true or false"):
        load_config(None, ["model.br=gcn"])


def test_apply_overrides_then_values_one_checked_config():
    cfg = load_config(None, ["train.iterations=5", "model.head=stack", "model.m=8"])
    flags = given({"eval.scales": [0.5, 1.0], "eval.crf": None})  # None: the flag was not given
    assert flags == {"eval.scales": [0.5, 1.0]}
    out = apply_overrides(cfg, ["eval.flip=true", "model.k=[3,5,7,9]"], flags)
    assert out.eval.flip is True and out.model.k == [3, 5, 7, 9] and out.eval.scales == [0.5, 1.0]
    assert out.eval.crf is False and out.train.iterations == 5
    assert cfg.eval.flip is False  # the given config is not changed
    assert apply_overrides(cfg, [], {}) is cfg
    assert apply_overrides(cfg, values={"model.m": None}).model.m is None  # values are taken as they are
    with pytest.raises(ConfigError, match=r"eval\.boundary_width: expected an integer"):
        apply_overrides(cfg, ["eval.boundary_width=wide"])
    # values (the flags) win over overrides of the same key
    assert apply_overrides(cfg, ["eval.flip=false"], {"eval.flip": True}).eval.flip is True


def test_split_overrides_keeps_files_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "name=x.png").write_bytes(b"")  # an existing file is an input, whatever its name
    (tmp_path / "out_dir=shots").mkdir()
    items = [
        "photos/",
        "eval.flip=true",
        "a=b.png",
        "model.k=7",
        "x.png",
        "out_dir=runs/x",
        "name=x.png",
        "out_dir=shots",
        "data.options.synthetic-shapes.size=64",
        "eval=1.png",
        "tile=3",
    ]
    assert split_overrides(items) == (
        ["eval.flip=true", "model.k=7", "out_dir=runs/x", "data.options.synthetic-shapes.size=64"],
        ["photos/", "a=b.png", "x.png", "name=x.png", "out_dir=shots", "eval=1.png", "tile=3"],
    )


def test_enum_choices_match_what_the_code_builds():
    """The config's Literal choices are exactly the encoders, heads, upsamplings,
    optimisers, schedules and precisions that the models and the loop accept."""
    from typing import get_args

    from gcnseg.config import Amp, Head, OptimName, Schedule, TorchvisionBackbone, Upsample
    from gcnseg.models import ENCODERS, HEAD_KINDS, GCNSeg
    from gcnseg.train.optim import build_optimizer, lr_factor
    from gcnseg.train.state import AMP_DTYPES

    assert get_args(TorchvisionBackbone) == tuple(ENCODERS) and get_args(Head) == HEAD_KINDS
    assert set(get_args(Amp)) - {"auto", "fp32"} == set(AMP_DTYPES) - {None}  # auto and fp32: resolved to those
    for upsample in get_args(Upsample):
        GCNSeg(2, "resnet18", k=3, upsample=upsample)
    cfg = load_config(None)
    model = torch.nn.Linear(2, 2)
    for name in get_args(OptimName):
        cfg.optim.name = name
        build_optimizer(cfg.optim, model)
    for schedule in get_args(Schedule):
        cfg.optim.schedule = schedule
        lr_factor(cfg.optim, 3, 10)


def test_retired_key_of_an_old_run_folder_still_loads(trained_run_copy, capsys):
    """eval.batch_size is gone; run folders written before still load, resume and
    evaluate, while a new config that sets it is refused."""
    from gcnseg.checkpoint import load_model, resolve_checkpoint

    run = trained_run_copy
    for ckpt in {resolve_checkpoint(run, "last"), resolve_checkpoint(run, "best")}:
        meta = json.loads((ckpt / "model.json").read_text())
        meta["config"]["eval"]["batch_size"] = 1
        (ckpt / "model.json").write_text(json.dumps(meta))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["eval"]["batch_size"] = 1
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    _model, cfg, meta = load_model(run)
    assert meta["config"]["eval"]["batch_size"] == 1 and not hasattr(cfg.eval, "batch_size")
    assert main(["train", "--resume", str(run), "--no-progress", "train.iterations=26", "train.previews=0"]) == 0
    assert "done: 26 steps" in capsys.readouterr().out
    assert "batch_size" not in yaml.safe_load((run / "config.yaml").read_text())["eval"]  # written anew
    # an old run's config.yaml as a config file: read, the retired key dropped, the rest kept
    old = run.parent / "old.yaml"
    old.write_text(yaml.safe_dump({**saved, "data": {**saved["data"], "options": {"a.b": 1}}}))
    cfg = load_config(old)
    assert not hasattr(cfg.eval, "batch_size") and cfg.data.options == {"a.b": 1}  # dotted keys untouched
    assert main(["info", "--config", str(old), "--size", "32", "--num-classes", "3"]) == 0
    with pytest.raises(ConfigError, match="unknown key 'batch_size'"):  # never a new setting
        load_config(None, ["eval.batch_size=1"])


def test_eval_takes_overrides_and_its_flags_are_shorthands(trained_run, tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["eval", "--checkpoint", str(trained_run), "--flip", "--scales", "0.75", "1", "--json", str(a)]) == 0
    assert (
        main(["eval", "--checkpoint", str(trained_run), "eval.flip=true", "eval.scales=[0.75,1]", "--json", str(b)])
        == 0
    )
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert (ra["flip"], ra["scales"]) == (True, [0.75, 1.0])
    assert {k: v for k, v in ra.items() if k != "checkpoint"} == {k: v for k, v in rb.items() if k != "checkpoint"}
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(trained_run), "eval.scales=big"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "eval.scales: expected a list" in err


def test_predict_takes_overrides_among_its_inputs(trained_run, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    img = tmp_path / "in" / "x.png"
    img.parent.mkdir()
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(img)
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(trained_run),
                str(img),
                "eval.scales=[0.5,1.0]",
                "eval.flip=true",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    assert "1 of 1 images written" in capsys.readouterr().out
    assert (
        main(["predict", "--checkpoint", str(trained_run), str(img), "eval.tile=huge", "--out", str(tmp_path / "out2")])
        == 2
    )
    assert "eval.tile" in capsys.readouterr().err and not (tmp_path / "out2").exists()
    assert main(["predict", "--checkpoint", str(trained_run), "eval.flip=true", "--out", str(tmp_path / "o3")]) == 2
    assert "no INPUT given" in capsys.readouterr().err


def test_info_takes_a_config_and_overrides(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {backbone: resnet18, head: conv1x1, br: false}\n")
    assert main(["info", "--config", str(cfg), "--size", "64", "--json", "-"]) == 0
    by_config = json.loads(capsys.readouterr().out)
    assert by_config["model"] == {
        "backbone": "resnet18",
        "head": "conv1x1",
        "k": 15,
        "br": False,
        "upsample": "deconv",
        "num_classes": 4,  # the config's dataset's (synthetic-shapes' default); 21 without a config
    }
    overrides = ["model.backbone=resnet18", "model.head=conv1x1", "model.br=false"]
    assert main(["info", *overrides, "--size", "64", "--num-classes", "4", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out) == by_config
    assert main(["info", "--head", "fcn"]) == 2
    assert "model.head: expected one of gcn, conv1x1, convkxk, stack" in capsys.readouterr().err


def test_data_check_takes_a_config_and_overrides(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {dataset: synthetic-shapes, options: {size: 16, length: 3, eval_length: 2}}\n")
    assert main(["data", "check", "--config", str(cfg)]) == 0
    assert "checked 3 items" in capsys.readouterr().out
    assert main(["data", "check", "--config", str(cfg), "--split", "val", "data.options.eval_length=4"]) == 0
    assert "checked 4 items" in capsys.readouterr().out
    assert main(["data", "check", "--dataset", "synthetic-shapes", "--option", "length=5"]) == 0
    assert "checked 5 items" in capsys.readouterr().out
    assert main(["data", "check"]) == 2
    assert "name the dataset" in capsys.readouterr().err
    assert main(["data", "check", "data.dataset=nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_repo_configs_have_no_retired_keys():
    from pathlib import Path

    from gcnseg.config import RETIRED_KEYS, flatten

    root = Path(__file__).resolve().parents[1] / "configs"
    for p in root.rglob("*.yaml"):
        assert not set(flatten(yaml.safe_load(p.read_text()) or {})) & RETIRED_KEYS, p


def test_random_scale_needs_a_crop_or_pad_size_to_batch():
    from gcnseg.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"without data\.crop_size"):
        load_config(None, ["data.scale_range=[0.5, 1.5]", "train.batch_size=2"])
    load_config(None, ["data.scale_range=[0.5, 1.5]", "train.batch_size=2", "data.pad_size=64"])  # crops to it
    load_config(None, ["data.scale_range=[0.5, 1.5]", "train.batch_size=1"])  # one image a batch


def test_a_saved_sidecar_is_read_without_the_range_checks():
    from gcnseg.config import ConfigError, config_from_dict

    data = {"train": {"iterations": 0}}  # what an earlier version let a run write
    assert config_from_dict(data, "model.json", saved=True).train.iterations == 0
    with pytest.raises(ConfigError, match=r"train\.iterations: must be at least 1"):
        config_from_dict(data, "config.yaml")


def test_a_string_that_yaml_reads_as_a_mapping_says_how_to_quote_it():
    with pytest.raises(ConfigError, match=r"data\.train_split: expected a string, got .*quote the text"):
        load_config(None, ["data.train_split=train: 0016E5"])
    assert load_config(None, ["data.train_split=train:0016E5"]).data.train_split == "train:0016E5"
