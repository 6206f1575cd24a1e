"""gcnseg ablate: the paper's table files, a tiny ablation, its report, resume and budgets."""

import json
from pathlib import Path

import pytest

import gcnseg.ablate
import gcnseg.train as train_mod
import gcnseg.train.loop as loop
from gcnseg.ablate import head_params, load_table, network_configs, parse_budget, table_path, tables_dir
from gcnseg.checkpoint import load_model
from gcnseg.commands import main
from gcnseg.errors import GcnsegError

BASE = """
model: {backbone: resnet18, head: gcn, k: 3, br: true}
data: {dataset: synthetic-shapes, options: {size: 32, num_classes: 3, length: 12, eval_length: 4, seed: 1}}
optim: {name: sgd, lr: 0.01, momentum: 0.9}
train: {batch_size: 2, iterations: 1000, threads: 1, previews: 0, log_every: 1, deterministic: true}
"""

TABLE = """
table: 7
title: "tiny: 1x1 vs GCN"
base: base.yaml
columns: [boundary_acc, internal_acc, miou, head_params]
set: {model.br: false}
networks:
  - {name: Baseline, paper: {boundary_acc: 71.3, internal_acc: 93.9, miou: 69.0}, set: {model.head: conv1x1}}
  - {name: GCN k=3, paper: {miou: 70.1, head_params: 260000}, set: {model.head: gcn, model.k: 3}}
"""


def test_paper_tables():
    t1 = load_table(table_path(1))
    assert t1.number == 1 and t1.columns == ["miou"]
    assert [n.name for n in t1.networks] == ["Baseline"] + [f"GCN k={k}" for k in range(3, 16, 2)]
    assert [n.paper["miou"] for n in t1.networks] == [69.0, 70.1, 71.1, 72.8, 73.4, 73.7, 74.0, 74.5]
    cfgs = network_configs(t1, Path("out"))
    assert cfgs[0].model.head == "conv1x1"
    assert [(c.model.head, c.model.k) for c in cfgs[1:]] == [("gcn", k) for k in range(3, 16, 2)]
    assert all(c.model.br is False and c.model.backbone == "resnet152" for c in cfgs)
    assert [c.out_dir for c in cfgs[:2]] == [str(Path("out/baseline")), str(Path("out/gcn-k-3"))]

    t2 = load_table(table_path(2))
    kinds = [(c.model.head, c.model.k) for c in network_configs(t2, Path("o"))]
    assert kinds == [("gcn", k) for k in (3, 5, 7, 9)] + [("convkxk", k) for k in (3, 5, 7, 9)]
    t3 = load_table(table_path(3))
    kinds = [(c.model.head, c.model.k) for c in network_configs(t3, Path("o"))]
    assert kinds == [("gcn", k) for k in (3, 5, 7, 9, 11)] + [("stack", k) for k in (3, 5, 7, 9, 11)]
    t4 = load_table(table_path(4))
    assert [(c.model.head, c.model.m) for c in network_configs(t4, Path("o"))] == [
        ("stack", 2048),
        ("stack", 1024),
        ("stack", 210),
        ("gcn", None),
    ]
    t5 = load_table(table_path(5))
    assert t5.columns == ["boundary_acc", "internal_acc", "miou"]
    assert [(c.model.head, c.model.br) for c in network_configs(t5, Path("o"))] == [
        ("conv1x1", False),
        ("gcn", False),
        ("gcn", True),
    ]
    assert all(c.eval.boundary_width == 7 for c in network_configs(t5, Path("o")))

    # the res-5 head counts of Tables 2 and 4 (VOC: 21 classes, ResNet-152 res-5 has 2048 channels)
    for table in (t2, t4):
        for net, cfg in zip(table.networks, network_configs(table, Path("o"))):
            res5, heads = head_params(cfg, 21)
            assert res5 == pytest.approx(net.paper["head_params"], rel=0.01), net.name
            assert heads > res5


def test_paper_tables_ship_inside_the_package():
    folder = Path(gcnseg.ablate.__file__).parent / "tables"
    assert tables_dir() == folder
    assert sorted(p.name for p in folder.glob("*.yaml")) == [f"table{n}.yaml" for n in range(1, 6)] + ["voc.yaml"]
    assert all(load_table(table_path(n)).base == folder / "voc.yaml" for n in range(1, 6))
    with pytest.raises(GcnsegError, match="no table file for --table 6"):
        table_path(6)


def test_budget():
    assert parse_budget("300") == parse_budget("300it") == {"iterations": 300, "epochs": None, "max_minutes": None}
    assert parse_budget("90s") == {"max_minutes": 1.5}
    assert parse_budget("20m") == {"max_minutes": 20.0}
    assert parse_budget("1.5h") == {"max_minutes": 90.0}
    assert parse_budget(None) == {}
    for bad in ("abc", "0", "0m", "-5", "10d"):
        with pytest.raises(GcnsegError, match="--budget"):
            parse_budget(bad)


def test_time_budget_stops_training_cleanly(tmp_path):
    (tmp_path / "base.yaml").write_text(BASE)
    table = tmp_path / "t.yaml"
    table.write_text(TABLE.replace("  - {name: GCN k=3", "#"))
    # 1 ms: the first step already ends the budget; training validates and writes its summary
    assert (
        main(
            ["ablate", "--table-file", str(table), "--budget", "0.001s", "--out", str(tmp_path / "o"), "--no-progress"]
        )
        == 0
    )
    summary = json.loads((tmp_path / "o" / "baseline" / "summary.json").read_text())
    assert summary["steps"] == 1 and 0 <= summary["final"]["miou"] <= 1
    doc = json.loads((tmp_path / "o" / "table7.json").read_text())
    assert "0.001s of training per network" in doc["budget"]


def test_tiny_ablation_report_and_resume(tmp_path, monkeypatch, capsys):
    (tmp_path / "base.yaml").write_text(BASE)
    table = tmp_path / "t.yaml"
    table.write_text(TABLE)
    out = tmp_path / "abl"
    cmd = [
        "ablate",
        "--table-file",
        str(table),
        "--budget",
        "4",
        "--seed",
        "5",
        "--out",
        str(out),
        "--no-progress",
        "train.checkpoint_every=2",
    ]

    # killed during the second network, after its step-2 checkpoint
    steps = []

    real_step = loop.train_step

    def killed(run, images, masks):
        loss = real_step(run, images, masks)
        steps.append(run.state.step)
        if len(steps) == 4 + 3:
            raise KeyboardInterrupt
        return loss

    monkeypatch.setattr(loop, "train_step", killed)
    assert main(cmd) == 130
    assert (out / "baseline" / "summary.json").is_file() and not (out / "gcn-k-3" / "summary.json").exists()
    assert json.loads((out / "gcn-k-3" / "last.json").read_text())["step"] == 2
    partial = json.loads((out / "table7.json").read_text())  # written after each network
    assert [n["status"] for n in partial["networks"]] == ["done", "pending"]
    assert "| GCN k=3 | - | - | - | - | 70.1 | - | 260,000 |" in (out / "table7.md").read_text()
    first = (out / "baseline" / "summary.json").read_text()

    # the same command again: the first network is skipped, the second resumes
    calls = []
    real_train = train_mod.train

    def spy(cfg, resume=False, show_progress=True):
        calls.append((cfg.name, resume))
        return real_train(cfg, resume=resume, show_progress=show_progress)

    monkeypatch.setattr(loop, "train_step", real_step)
    monkeypatch.setattr(train_mod, "train", spy)
    assert main(cmd) == 0
    assert calls == [("table7-gcn-k-3", True)]
    assert (out / "baseline" / "summary.json").read_text() == first
    assert "Baseline: done" in capsys.readouterr().out

    doc = json.loads((out / "table7.json").read_text())
    md = (out / "table7.md").read_text()
    assert doc["seed"] == 5 and doc["table"] == 7 and doc["overrides"] == ["train.checkpoint_every=2"]
    assert doc["command"].startswith("gcnseg ablate --table-file") and doc["command"] in md
    assert "4 iterations per network" in doc["budget"] and (out / "table7.png").stat().st_size > 1000
    for row in doc["networks"]:
        run = out / row["slug"]
        summary = json.loads((run / "summary.json").read_text())
        assert row["status"] == "done" and row["steps"] == summary["steps"] == 4
        for key in ("miou", "boundary_acc", "internal_acc"):
            assert row["measured"][key] == pytest.approx(100 * summary["final"][key])
            assert f"{100 * summary['final'][key]:.2f}" in md
        model, cfg, _ = load_model(run)
        assert cfg.train.seed == 5 and cfg.model.br is False and cfg.train.iterations == 4
        res5 = sum(p.numel() for p in model.heads[3].parameters())
        assert row["head_params"] == {"res5": res5, "all": sum(p.numel() for p in model.heads.parameters())}
        assert f"{res5:,}" in md
    assert doc["networks"][0]["measured"]["head_params"] == 512 * 3  # 1x1 conv on res-5 of ResNet-18
    assert doc["networks"][0]["paper"] == {"boundary_acc": 71.3, "internal_acc": 93.9, "miou": 69.0}

    # another budget into the same folder is refused, not silently mixed
    assert main(cmd[:3] + ["--budget", "6"] + cmd[5:]) == 2
    assert "holds a run of another configuration" in capsys.readouterr().err


def test_bad_tables_and_overrides(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text(BASE)
    table = tmp_path / "t.yaml"
    table.write_text(TABLE)
    out = str(tmp_path / "o")
    assert main(["ablate", "--table-file", str(table), "--out", out, "model.k=5"]) == 2
    assert "model.k is set by the ablation itself" in capsys.readouterr().err
    assert main(["ablate", "--table-file", str(table), "--out", out, "--seed", "1", "train.seed=2"]) == 2
    capsys.readouterr()
    bad = tmp_path / "bad.yaml"
    bad.write_text(TABLE.replace("columns: [", "columns: [accuracy, "))
    assert main(["ablate", "--table-file", str(bad), "--out", out]) == 2
    assert "columns must be" in capsys.readouterr().err
    bad.write_text(TABLE.replace("GCN k=3", "baseline"))
    assert main(["ablate", "--table-file", str(bad), "--out", out]) == 2
    assert "distinct folder names" in capsys.readouterr().err
    assert main(["ablate", "--table-file", str(tmp_path / "none.yaml"), "--out", out]) == 2
    assert "none.yaml: table file not found" in capsys.readouterr().err
    assert not Path(out).exists()


def test_dataset_and_root_flags(tmp_path, capsys):
    """--dataset and --root stand for data.dataset and data.root of every network; a root is
    taken as typed (here one that YAML would read as a mapping)."""
    (tmp_path / "base.yaml").write_text(BASE)
    table = tmp_path / "t.yaml"
    table.write_text(TABLE)
    root = tmp_path / "camvid: 1"
    cmd = ["ablate", "--table-file", str(table), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main([*cmd, "--dataset", "camvid", "--root", str(root), "data.options={}", "data.root=elsewhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(root) in err and "camvid" in err
    assert not (tmp_path / "o" / "baseline" / "summary.json").exists()


def test_a_signal_in_a_networks_final_validation_stops_the_table(tmp_path, monkeypatch, capsys):
    """SIGTERM that lands in the final validation (after the last step) lets that run
    finish, then stops the table with 143: the next network does not start, and the
    message says to run the same ablate command again, which skips the finished one."""
    import os
    import signal

    (tmp_path / "base.yaml").write_text(BASE)
    table = tmp_path / "t.yaml"
    table.write_text(TABLE)
    out = tmp_path / "abl"
    cmd = ["ablate", "--table-file", str(table), "--budget", "2", "--out", str(out), "--no-progress"]
    validate = loop.validate

    def validate_then_sigterm(run):
        result = validate(run)
        if run.state.step == run.total:  # the final validation: the signal lands in it
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(loop, "validate", validate_then_sigterm)
    assert main(cmd) == 143
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"SIGTERM after the last step: the run finished ({out / 'baseline' / 'summary.json'})" in err
    assert err.endswith("; go on with: " + " ".join(["gcnseg", *cmd[:-1]]))
    assert (out / "baseline" / "summary.json").is_file() and not (out / "gcn-k-3").exists()

    monkeypatch.setattr(loop, "validate", validate)
    assert main(cmd) == 0
    assert "[1/2] Baseline: done" in capsys.readouterr().out
    assert json.loads((out / "gcn-k-3" / "summary.json").read_text())["steps"] == 2


def test_an_out_folder_of_other_files_is_refused_and_left_as_it_was(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text(BASE)
    table = tmp_path / "t.yaml"
    table.write_text(TABLE)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.png").write_bytes(b"mine")
    (photos / "table1.md").write_text("another table's report")  # an ablation's: not foreign
    (photos / "gcn-k-9").mkdir()  # another table's network, killed before it wrote its config
    (photos / "gcn-k-9" / "train.log").write_text("training on cpu\n")
    before = sorted(p.relative_to(photos) for p in photos.rglob("*"))
    cmd = ["ablate", "--table-file", str(table), "--budget", "1", "--out", str(photos), "--no-progress"]
    assert main(cmd) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"gcnseg: error: {photos}: holds files that no ablation wrote (holiday.png); an ablation goes into a new or "
        "empty folder, or the --out of earlier ablations: choose another --out"
    )
    assert sorted(p.relative_to(photos) for p in photos.rglob("*")) == before
