"""Recipes by name from any folder, hardware-aware defaults (train.amp / train.threads
auto), label mapping of one's own files, gcnseg init, one CLI grammar, and the command
layer kept above the library."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fakes import TRAINED_RUN, make_folder, save

import gcnseg.runtime as runtime
from gcnseg.commands import COMMANDS, build_parser, main
from gcnseg.config import ConfigError, load_config, recipes
from gcnseg.data import open_dataset
from gcnseg.data.base import distinct_palette
from gcnseg.errors import DataError

PACKAGE = Path(__file__).resolve().parents[1] / "gcnseg"


def test_recipes_load_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # not the clone: no configs/ here
    names = recipes()
    assert {"demo", "camvid", "camvid_lite0", "ablations/camvid_lite0", "voc_stage1"} <= set(names)
    assert load_config("camvid_lite0").name == "camvid-gcn-lite0"
    assert load_config("ablations/camvid_lite0.yaml").model.k == 15
    mine = tmp_path / "demo"  # a file of that name wins over the recipe
    mine.write_text("name: mine\n")
    assert load_config("demo").name == "mine"
    with pytest.raises(ConfigError, match=r"nope: no such config file, nor a recipe of gcnseg \(recipes: ablations/"):
        load_config("nope")
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in names) and "CamVid fine-tuned from ImageNet EfficientNet-Lite0" in out
    assert main(["configs", "camvid_lite0"]) == 0
    assert capsys.readouterr().out == names["camvid_lite0"].read_text()
    assert main(["configs", "--json", "-"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == list(names)


def test_no_shipped_recipe_points_at_a_developer_path():
    for name, path in recipes().items():
        cfg = load_config(path)
        assert cfg.data.root is None and "shared" not in path.read_text(), name  # data.root=DIR says where
        assert cfg.train.amp == "auto" and cfg.train.threads == "auto", name


def test_relative_roots_are_made_absolute_when_loaded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["data.root=my_data", "data.options={voc: {root: ../voc}}"])
    assert cfg.data.root == str(tmp_path / "my_data")
    assert cfg.data.options["voc"]["root"] == str(tmp_path.parent / "voc")
    assert load_config(None, ["data.root=~/x"]).data.root == str(Path.home() / "x")


def test_an_override_that_changes_nothing_says_why():
    with pytest.raises(ConfigError, match=r"train\.iterations changes nothing here: train\.epochs=40 sets the length"):
        load_config("camvid_lite0", ["train.iterations=12"])
    assert load_config("camvid_lite0", ["train.iterations=12", "train.epochs=null"]).train.iterations == 12
    with pytest.raises(ConfigError, match=r"optim\.momentum changes nothing here: optim\.name=adam takes no momentum"):
        load_config("demo", ["optim.momentum=0.5"])
    with pytest.raises(ConfigError, match=r"model\.m changes nothing"):
        load_config(None, ["model.m=64"])
    assert load_config(None, ["model.head=stack", "model.m=64"]).model.m == 64


def test_amp_auto_is_bf16_only_where_native(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "native_bf16", lambda: True)
    assert runtime.resolve_amp("auto", cpu) == "bf16"
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    assert runtime.resolve_amp("auto", cpu) is None  # float32: emulated bf16 is ~10x slower
    assert runtime.resolve_amp("bf16", cpu) == "bf16" and runtime.resolve_amp("fp32", cpu) is None
    assert runtime.resolve_amp(None, cpu) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert runtime.resolve_amp("auto", torch.device("cuda", 0)) == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert runtime.resolve_amp("auto", torch.device("cuda", 0)) == "bf16"


def test_threads_auto_is_each_process_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert runtime.resolve_threads("auto") == 6
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun, 4 processes on this machine
    assert runtime.resolve_threads("auto") == 1
    assert runtime.resolve_threads(3) == 3 and runtime.resolve_threads(None) is None
    with pytest.raises(ConfigError, match=r"train\.threads: must be at most 1024"):
        load_config(None, ["train.threads=100000"])


def test_explicit_emulated_bf16_warns_how_much_slower(monkeypatch, capsys):
    from gcnseg.train import state

    monkeypatch.setattr(state, "native_bf16", lambda: False)
    state._warn_emulated_bf16(torch.bfloat16, torch.device("cpu"))
    err = capsys.readouterr().err
    assert "emulated, about 10x slower than float32" in err and "train.amp=auto trains in float32 here" in err


def test_the_run_records_what_auto_became(tmp_path, capsys):
    from gcnseg.train import train

    overrides = [o for o in TRAINED_RUN if not o.startswith(("train.amp", "train.threads"))]
    run = tmp_path / "run"
    summary = train(load_config(None, overrides + ["train.iterations=2", f"out_dir={run}"]), show_progress=False)
    want = {"amp": "fp32", "amp_asked": "auto", "threads": len(runtime.os.sched_getaffinity(0)), "device": "cpu"}
    assert {k: summary["runtime"][k] for k in want} == want
    assert summary["runtime"]["cpu"] == runtime.instruction_set()
    sidecar = json.loads(next((run / "checkpoints").glob("*/model.json")).read_text())
    assert sidecar["runtime"] == summary["runtime"]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["amp"] == "auto"  # the config as given
    assert f"training on cpu ({runtime.instruction_set()}): train.amp=auto -> fp32" in capsys.readouterr().out


def _void_folder(root: Path, void: int = 11) -> None:
    """A folder dataset whose masks use ``void`` for unlabelled pixels (CamVid's convention)."""
    make_folder(root, ["a", "b", "c", "d"], ["road", "car", "sky"])
    for stem in "ab":
        m = np.asarray(__import__("PIL.Image").Image.open(root / "masks" / f"{stem}.png")).copy()
        m[:2] = void
        save(root / "masks" / f"{stem}.png", m)


def test_void_values_and_label_maps_of_ones_own_files(tmp_path, capsys):
    _void_folder(tmp_path / "d")
    check = ["data", "check", "--dataset", "folder", "--root", str(tmp_path / "d"), "--split", "all"]
    assert main(check) == 1
    assert (
        "label values 11 outside [0, 3) and not the ignore index 255 (data.void=[V] ignores" in capsys.readouterr().out
    )
    assert main([*check, "data.void=[11]"]) == 0
    cfg = load_config(None, ["data.dataset=folder", f"data.root={tmp_path / 'd'}", "data.void=[11]"])
    _, mask = open_dataset(cfg.data, "all").load(0)
    assert (mask[:2] == 255).all() and mask.max() == 255
    cfg = load_config(None, ["data.dataset=folder", f"data.root={tmp_path / 'd'}", "data.label_map={11: 2, 2: 255}"])
    _, mapped = open_dataset(cfg.data, "all").load(0)
    assert (mapped[:2] == 2).all() and not ((mapped == 2) & (np.arange(16)[:, None] >= 2)).any()
    with pytest.raises(DataError, match=r"synthetic-shapes: data\.void and data\.label_map map the labels of files"):
        open_dataset(load_config(None, ["data.void=[3]"]).data, "train")
    with pytest.raises(ConfigError, match=r"data\.label_map: expected \{VALUE: CLASS\}"):
        load_config(None, ["data.label_map={1: 300}"])


def test_folder_colours_from_classes_txt_and_no_black_class(tmp_path):
    make_folder(tmp_path, ["a"], ["road", "car", "sky"])
    ds = open_dataset(load_config(None, ["data.dataset=folder", f"data.root={tmp_path}"]).data, "all")
    assert ds.palette == distinct_palette(3) and (0, 0, 0) not in distinct_palette(40)
    assert len(set(distinct_palette(40))) == 40
    (tmp_path / "classes.txt").write_text("road 128 64 128\ncar #400080\nsky 70 130 180\n")
    ds = open_dataset(load_config(None, ["data.dataset=folder", f"data.root={tmp_path}"]).data, "all")
    assert ds.classes == ["road", "car", "sky"] and ds.palette == [(128, 64, 128), (64, 0, 128), (70, 130, 180)]
    (tmp_path / "classes.txt").write_text("road 128 64\n")
    with pytest.raises(DataError, match=r"classes.txt:1: expected 'NAME', 'NAME R G B' or 'NAME #RRGGBB'"):
        open_dataset(load_config(None, ["data.dataset=folder", f"data.root={tmp_path}"]).data, "all")
    (tmp_path / "classes.txt").write_bytes(b"r\xe9seau\n")
    with pytest.raises(DataError, match=r"classes\.txt: not UTF-8 text"):
        open_dataset(load_config(None, ["data.dataset=folder", f"data.root={tmp_path}"]).data, "all")


def test_val_fraction_splits_by_a_hash_of_each_stem(tmp_path):
    stems = [f"img{i:03d}" for i in range(60)]
    make_folder(tmp_path, stems, ["a", "b"], size=(4, 4))
    cfg = load_config(None, ["data.dataset=folder", f"data.root={tmp_path}", "data.options={val_fraction: 0.2}"])
    train, val = (open_dataset(cfg.data, s) for s in ("train", "val"))
    names = lambda ds: {ds.name(i) for i in range(len(ds))}
    assert names(train) | names(val) == set(stems) and not names(train) & names(val)
    assert 4 <= len(val) <= 20  # about 20% of 60
    assert names(open_dataset(cfg.data, "val")) == names(val)  # the same every time
    (tmp_path / "train.txt").write_text("img000\nimg001\n")  # one split listed: the hashed val could overlap it
    with pytest.raises(
        DataError, match=r"has a train split but no val\.txt or val/images/; give both splits or neither"
    ):
        open_dataset(cfg.data, "val")


def test_init_writes_a_commented_config_sized_to_the_data(tmp_path, monkeypatch, capsys):
    data = tmp_path / "street photos"
    _void_folder(data)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "cfg" / "gcn.yaml"
    assert main(["init", str(data), "--out", str(out)]) == 1  # the void 11 is out of range
    assert "nothing written" in capsys.readouterr().out and not out.exists()
    assert main(["init", str(data), "--recipe", "camvid_lite0", "--out", str(out), "data.void=[11]"]) == 0
    said = capsys.readouterr().out
    text = out.read_text()
    cfg = load_config(out)
    assert cfg.name == "street-photos-camvid-gcn-lite0" and cfg.out_dir == "runs/street-photos"
    assert cfg.data.root == str(data) and cfg.data.dataset == "folder" and cfg.data.void == [11]
    assert cfg.data.options == {"val_fraction": 0.1}  # no split files: a hashed split
    assert cfg.train.epochs == 300  # 15,000 images seen, at most 300 epochs
    assert cfg.train.class_weights is not None and len(cfg.train.class_weights) == 3
    assert cfg.train.amp == "auto" and cfg.model.backbone == "timm/tf_efficientnet_lite0"
    assert cfg.data.crop_size == [16, 16] == cfg.data.pad_size  # no larger than the 16x16 pictures (recipe: 352x480)
    assert "  epochs: 300  # passes over the training split" in text
    assert "  void: [11]  # label values that are ignored (not a class)" in text
    assert "# The camvid_lite0 recipe (gcnseg configs camvid_lite0):" in text
    assert f"next: gcnseg train --config {out}" in said
    assert main(["init", str(data), "--out", str(out)]) == 2  # never over a file
    assert "exists" in capsys.readouterr().err
    other = tmp_path / "cfg" / "other.yaml"  # the overrides before DATA: the same config
    assert main(["init", "data.void=[11]", str(data), "--out", str(other)]) == 0
    assert other.read_text() == text
    assert main(["init", "data.void=[11]", "train.epochs=3", "--out", str(other)]) == 2
    assert "expected one DATA folder beside the KEY=VALUE overrides" in capsys.readouterr().err
    assert main(["init", str(data)]) == 1 and not Path("street photos.yaml").exists()


def test_every_command_shares_one_grammar(tmp_path, capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    assert set(sub) == set(COMMANDS)
    for name, p in sub.items():
        flags = {o: a for a in p._actions for o in a.option_strings}
        if "--device" in flags:
            assert flags["--device"].default == "auto" and flags["--device"].help, name
        if "--json" in flags:
            assert flags["--json"].metavar == "FILE", name  # '-' prints it
        if "--tile" in flags:
            assert flags["--tile"].nargs == "+", name
    for name in ("eval", "predict", "train", "ablate"):
        assert "--no-progress" in {o for a in sub[name]._actions for o in a.option_strings}, name
    for name in ("eval", "predict", "export", "serve", "info", "train", "ablate"):
        assert any(a.dest == "overrides" for a in sub[name]._actions) or name == "predict", name
    assert "(default: auto)" in sub["eval"].format_help()
    with pytest.raises(SystemExit, match="2"):  # overrides anywhere (see init's test); other strays: usage errors
        main(["init", str(tmp_path), "--out", str(tmp_path / "x.yaml"), "data.void=[1]", "stray=1"])
    assert "unrecognized arguments: stray=1; KEY=VALUE overrides are" in capsys.readouterr().err  # only the stray


def test_help_and_models_do_not_load_torch():
    code = (
        "import sys; from gcnseg.commands import build_parser, main; build_parser(); main(['models']); "
        "print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("False")


def test_the_library_never_imports_the_command_layer():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "commands" or rel.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level) + (node.module or "")
                assert "commands" not in target.split("."), f"{rel} imports {target}"
                assert not target.endswith("cli"), f"{rel} imports {target}"


def test_one_headline_number_per_named_model(capsys):
    from gcnseg.serve.segmenter import describe
    from gcnseg.zoo import ZOO

    readme = (PACKAGE.parent / "README.md").read_text()
    for m in ZOO.values():
        number = f"{m.val_miou:.2f}"
        assert f"val mIoU {number}" in readme or f"val mIoU** {number}" in readme or f"**val mIoU {number}**" in readme
        assert f"**{number}**" in (m.folder / "README.md").read_text()
        assert main(["models"]) == 0 and f"val mIoU {number}" in capsys.readouterr().out
        cfg = load_config(None)
        assert describe(m.name, cfg, {"num_classes": 11, "metrics": {"miou": 0.1}}).endswith(f"val mIoU {number}")
        sidecar = json.loads((m.folder / "model.json").read_text())
        assert sidecar["config"]["data"]["root"] is None  # no developer's path: eval asks for --root


def test_eval_of_a_named_model_asks_for_its_data(capsys):
    assert main(["eval", "--model", "camvid-gcn-lite0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "camvid-gcn-lite0: give its data with --root DIR" in err


def test_review_fixes_of_the_command_layer(tmp_path, monkeypatch, capsys):
    """A folder named like a recipe does not hide it; a long override is still an override;
    init keeps the user's own settings; class names may hold spaces; --tile of three sizes
    is one line; a run never goes into the folder of the config it reads."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "camvid").mkdir()  # a dataset folder of that name
    assert load_config("camvid").name == "camvid-gcn"
    from gcnseg.config import is_override

    assert is_override("train.class_weights=[" + ",".join(["1.0"] * 100) + "]")  # longer than a file name
    data = tmp_path / "d"
    _void_folder(data)
    (data / "classes.txt").write_text("road\nparked car\nsky\n")
    out = tmp_path / "d.yaml"
    assert main(["init", str(data), "--out", str(out), "data.void=[11]", "train.epochs=3", "out_dir=runs/x"]) == 0
    cfg = load_config(out)
    assert cfg.train.epochs == 3 and cfg.out_dir == "runs/x"  # the user's, not init's own
    assert open_dataset(cfg.data, "train").classes == ["road", "parked car", "sky"]
    capsys.readouterr()
    assert main(["eval", "--model", "camvid-gcn-lite0", "--tile", "1", "2", "3"]) == 2
    assert "--tile takes one or two sizes" in capsys.readouterr().err
    exp = tmp_path / "exp1"
    exp.mkdir()
    (exp / "config.yaml").write_text("name: mine  # my notes\n")
    assert main(["train", "--config", str(exp / "config.yaml"), f"out_dir={exp}"]) == 2
    assert "which this command reads" in capsys.readouterr().err
    assert (exp / "config.yaml").read_text() == "name: mine  # my notes\n"


def test_init_from_a_recipe_of_another_dataset_drops_its_options(tmp_path, monkeypatch, capsys):
    data = tmp_path / "mine"
    make_folder(data, [f"im_{i}" for i in range(6)], ["background", "thing"], size=(16, 16))
    out = tmp_path / "mine.yaml"
    assert main(["init", str(data), "--recipe", "demo", "--out", str(out)]) == 0  # demo: synthetic-shapes
    cfg = load_config(out)
    assert cfg.data.dataset == "folder" and cfg.data.options == {"val_fraction": 0.1}
    # a config of another dataset, switched by hand: data.options={} clears its options
    c = load_config("demo", [f"data.root={data}", "data.dataset=folder"])
    with pytest.raises(DataError, match=r"folder: bad data\.options .*size.*data\.options=\{\} clears the options"):
        open_dataset(c.data, "train")
    c = load_config("demo", [f"data.root={data}", "data.dataset=folder", "data.options={}"])
    assert c.data.options == {}
