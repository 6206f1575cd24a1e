"""gcnseg train: a run folder that survives, exact resume, NaN stop, config errors."""

import json
from pathlib import Path

import pytest
import torch
from fakes import TRAINED_RUN
from safetensors.torch import load_file

import gcnseg.train.loop as loop
import gcnseg.train.state as state_mod
from gcnseg.checkpoint import load_model, resolve_checkpoint
from gcnseg.commands import main
from gcnseg.config import load_config
from gcnseg.errors import GcnsegError
from gcnseg.train import TrainingError, train

TINY = [
    "model.backbone=resnet18",
    "model.k=3",
    "model.br=true",
    "data.dataset=synthetic-shapes",
    "data.options={size: 32, num_classes: 3, length: 12, eval_length: 4, seed: 1}",
    "optim.name=sgd",
    "optim.lr=0.01",
    "optim.momentum=0.9",
    "train.batch_size=2",
    "train.log_every=1",
    "train.threads=1",
    "train.previews=2",
    "train.deterministic=true",
]


def tiny(tmp_path: Path, *extra: str):
    return load_config(None, TINY + [f"out_dir={tmp_path}"] + list(extra))


def test_run_folder_contents(tmp_path):
    run = tmp_path / "run"
    cfg = tiny(run, "train.iterations=4", "train.val_every=2")
    summary = train(cfg, show_progress=False)
    for name in ("config.yaml", "last.json", "best.json", "metrics.jsonl", "summary.json", "curves.png"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir())
    assert len(list((run / "previews").glob("*.png"))) == 2
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    val_steps = [r["step"] for r in records if r["split"] == "val"]
    assert train_steps == [1, 2, 3, 4] and val_steps == [2, 4]
    assert all({"loss", "lr", "img_per_s"} <= set(r) for r in records if r["split"] == "train")
    # poly schedule: lr decays to 0 at the last step
    assert records[-2]["lr"] == pytest.approx(0.0) or [r for r in records if r["split"] == "train"][-1][
        "lr"
    ] == pytest.approx(0.0)
    # the last checkpoint: safetensors weights + JSON sidecar, loadable into a fresh model
    ckpt = resolve_checkpoint(run, "last")
    meta = json.loads((ckpt / "model.json").read_text())
    assert meta["step"] == 4 and meta["num_classes"] == 3 and meta["classes"][0] == "background"
    assert "miou" in meta["metrics"] and meta["config"]["model"]["k"] == 3
    model, cfg2, _meta2 = load_model(run)
    assert cfg2.model.backbone == "resnet18" and not model.training
    assert 0.0 <= summary["final"]["miou"] <= 1.0 and summary["steps"] == 4
    # only the checkpoints that a pointer names are kept
    kept = {p.name for p in (run / "checkpoints").iterdir()}
    assert kept == {Path(json.loads((run / n).read_text())["path"]).name for n in ("last.json", "best.json")}


def test_resume_matches_uninterrupted_run(tmp_path, monkeypatch):
    full = tmp_path / "full"
    train(tiny(full, "train.iterations=6", "train.checkpoint_every=2", "train.previews=0"), show_progress=False)

    part = tmp_path / "part"

    real_step = loop.train_step

    def killed(run, images, masks):
        loss = real_step(run, images, masks)
        if run.state.step == 5:
            raise KeyboardInterrupt  # killed between checkpoints: step 4 is the last one
        return loss

    monkeypatch.setattr(loop, "train_step", killed)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(part, "train.iterations=6", "train.checkpoint_every=2", "train.previews=0"), show_progress=False)
    assert json.loads((part / "last.json").read_text())["step"] == 4
    monkeypatch.setattr(loop, "train_step", real_step)
    assert main(["train", "--resume", str(part), "--no-progress"]) == 0

    a = load_file(str(resolve_checkpoint(full, "last") / "model.safetensors"))
    b = load_file(str(resolve_checkpoint(part, "last") / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_nan_loss_stops_with_clear_message_and_keeps_checkpoint(tmp_path, capsys):
    run = tmp_path / "nan"
    cfg = tiny(
        run,
        "train.iterations=20",
        "train.checkpoint_every=1",
        "optim.lr=1e12",
        "optim.momentum=0.0",
        "optim.schedule=constant",
    )
    with pytest.raises(TrainingError, match=r"loss is (nan|inf) at step \d+") as err:
        train(cfg, show_progress=False)
    assert "last good checkpoint" in str(err.value)
    ckpt = resolve_checkpoint(run, "last")
    weights = load_file(str(ckpt / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_existing_run_is_not_overwritten(trained_run_copy, capsys):
    run = trained_run_copy
    before = (run / "last.json").read_text()
    code = main(["train", *TINY, f"out_dir={run}", "train.iterations=2", "--no-progress"])
    assert code == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "last.json").read_text() == before


def test_bad_config_is_one_line_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  kernel: 15\n")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err and "unknown key 'kernel'" in err
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: no such config file" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "--resume takes the folder of an earlier run" in capsys.readouterr().err


def test_init_from_previous_stage(trained_run, tmp_path):
    from gcnseg.train.state import setup

    stage1 = trained_run
    # stage 2 as set up, before its first step: the weights are exactly those of stage 1
    run = setup(load_config(None, TRAINED_RUN + [f"train.init_from={stage1}", f"out_dir={tmp_path / 's2'}"]))
    a = load_file(str(resolve_checkpoint(stage1, "best") / "model.safetensors"))
    b = run.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    run.lock.close()


def test_repo_configs_are_valid():
    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(p for p in root.glob("*.yaml"))
    assert {
        "demo.yaml",
        "camvid.yaml",
        "voc_stage1.yaml",
        "voc_stage2.yaml",
        "voc_stage3.yaml",
        "cityscapes_stage1.yaml",
        "cityscapes_stage2.yaml",
    } <= {p.name for p in files}
    shipped = root.parent / "gcnseg" / "ablate" / "tables" / "voc.yaml"  # the base config of the paper tables
    for p in files + [shipped, root / "ablations" / "camvid.yaml"]:
        cfg = load_config(p)
        assert cfg.name and cfg.out_dir
    assert load_config(root / "cityscapes_stage1.yaml").model.k == 25
    s1 = load_config(root / "voc_stage1.yaml")
    assert (s1.optim.name, s1.optim.momentum, s1.optim.weight_decay, s1.train.batch_size) == ("sgd", 0.99, 0.0005, 1)
    assert s1.data.pad_size == 640 and load_config(root / "voc_stage2.yaml").data.pad_size == 512


def test_freeze_backbone_trains_only_heads_and_decoder(tmp_path):
    run = tmp_path / "frozen"
    train(tiny(run, "train.iterations=2", "train.previews=0", "train.freeze_backbone=true"), show_progress=False)
    torch.manual_seed(0)  # the model's initialisation under train.seed=0 (see _seed_everything)
    init = state_mod.build_model(tiny(run).model, 3).state_dict()
    after = load_file(str(resolve_checkpoint(run, "last") / "model.safetensors"))
    weights = [k for k in after if k.startswith("backbone.") and "running" not in k and "num_batches" not in k]
    assert weights and all(torch.equal(after[k], init[k]) for k in weights)
    assert any(not torch.equal(after[k], init[k]) for k in after if k.startswith("heads."))


def test_summary_without_any_scored_pixel_says_n_a():
    """A validation split whose pixels are all ignored has no mIoU: 'n/a', not a crash."""
    from gcnseg.train import format_summary

    summary = {
        "steps": 3,
        "train_seconds": 1.0,
        "final": {"miou": None, "pixel_acc": None},
        "best": {"miou": -1.0, "step": None},
        "run_dir": "r",
        "best_checkpoint": "r/c",
    }
    text = format_summary(summary)
    assert "val mIoU n/a  pixel acc n/a" in text and "best mIoU n/a at step None" in text


def test_bf16_autocast_trains_on_cpu_and_fp16_is_refused(tmp_path, monkeypatch):
    seen, validated = [], []
    real_build = state_mod.build_model

    def build(cfg, num_classes):  # record the dtype of every forward's scores, training and validation
        model = real_build(cfg, num_classes)
        model.register_forward_hook(lambda m, args, out: (seen if m.training else validated).append(out.dtype))
        return model

    monkeypatch.setattr(state_mod, "build_model", build)
    run = tmp_path / "bf16"
    summary = train(tiny(run, "train.iterations=3", "train.previews=0", "train.amp=bf16"), show_progress=False)
    assert summary["steps"] == 3 and seen == [torch.bfloat16] * 3
    assert validated and set(validated) == {torch.float32}  # validation in float32 whatever train.amp is
    assert all(0.0 <= summary["final"][k] <= 1.0 for k in ("miou", "pixel_acc"))
    # validation in float32: gcnseg eval of the checkpoint gives the run's numbers exactly
    report = tmp_path / "eval.json"
    assert (
        main(["eval", "--checkpoint", str(run / "last.json"), "--eager", "--no-progress", "--json", str(report)]) == 0
    )
    measured = json.loads(report.read_text())
    for k in ("miou", "pixel_acc", "boundary_acc", "internal_acc"):
        assert measured[k] == summary["final"][k], k
    seen.clear()
    fp32 = tmp_path / "fp32"
    train(tiny(fp32, "train.iterations=3", "train.previews=0"), show_progress=False)
    assert seen == [torch.float32] * 3
    a = load_file(str(resolve_checkpoint(run, "last") / "model.safetensors"))
    b = load_file(str(resolve_checkpoint(fp32, "last") / "model.safetensors"))
    assert {v.dtype for v in a.values() if v.is_floating_point()} == {torch.float32}  # weights stay float32
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("heads."))

    # refused before anything is written: a corrected rerun into the same folder is not blocked
    with pytest.raises(Exception, match=r"train\.amp=fp16 needs a CUDA device"):
        train(tiny(tmp_path / "fp16", "train.iterations=1", "train.amp=fp16"), show_progress=False)
    assert not (tmp_path / "fp16").exists()


def test_segmentation_loss_same_for_channels_last_scores():
    """The channels-last fast path gives the plain call's loss and gradient; ignored
    pixels do not count; no labelled pixel gives 0."""
    import torch.nn.functional as F

    from gcnseg.train import segmentation_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 6, 7)
    target = torch.randint(0, 5, (2, 6, 7))
    target[0, :2] = 255
    a = logits.clone().requires_grad_(True)
    b = logits.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    la, lb = segmentation_loss(a, target, 255), segmentation_loss(b, target, 255)
    la.backward()
    lb.backward()
    expected = F.cross_entropy(logits, target, ignore_index=255, reduction="sum") / (target != 255).sum()
    torch.testing.assert_close(la, expected)
    torch.testing.assert_close(lb, expected)
    torch.testing.assert_close(b.grad, a.grad)
    assert b.grad.is_contiguous(memory_format=torch.channels_last)
    assert segmentation_loss(logits, torch.full_like(target, 255), 255).item() == 0.0
    # a target of the wrong shape is refused, as by the plain call, not silently flattened
    for bad in (target.transpose(1, 2), target[:, None]):
        with pytest.raises((ValueError, RuntimeError)):
            segmentation_loss(b, bad, 255)
        with pytest.raises((ValueError, RuntimeError)):
            segmentation_loss(a, bad, 255)


def test_ema_saves_the_average_of_the_weights_and_resumes_exactly(tmp_path, monkeypatch):
    """train.ema: the checkpoint holds the warmed-up moving average of every step's
    weights (computed here by hand); a run killed between checkpoints resumes to the same."""
    real_step = loop.train_step
    history: list[dict[str, torch.Tensor]] = []

    def recorded(run, images, masks):
        if not history:  # the weights before the first step
            history.append({k: v.detach().clone() for k, v in run.model.state_dict().items()})
        loss = real_step(run, images, masks)
        history.append({k: v.detach().clone() for k, v in run.model.state_dict().items()})
        return loss

    args = ("train.iterations=5", "train.checkpoint_every=2", "train.previews=0", "train.ema=0.9")
    monkeypatch.setattr(loop, "train_step", recorded)
    full = tmp_path / "full"
    train(tiny(full, *args), show_progress=False)
    saved = load_file(str(resolve_checkpoint(full, "last") / "model.safetensors"))
    expected = dict(history[0])
    for step, weights in enumerate(history[1:], 1):
        d = min(0.9, (1 + step) / (10 + step))
        expected = {
            k: d * expected[k] + (1 - d) * v if v.is_floating_point() else v.clone() for k, v in weights.items()
        }
    assert saved.keys() == expected.keys()
    moved = 0
    for k in saved:
        torch.testing.assert_close(saved[k], expected[k], rtol=1e-5, atol=1e-6, msg=k)
        moved += not torch.equal(saved[k], history[-1][k])
    assert moved > 10  # the average, not the last step's weights
    # what eval and predict load is that average
    model, _, _ = load_model(full)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, saved[k], rtol=0, atol=0, msg=k)

    part = tmp_path / "part"

    def killed(run, images, masks):
        loss = real_step(run, images, masks)
        if run.state.step == 3:
            raise KeyboardInterrupt  # step 2 is the last checkpoint
        return loss

    monkeypatch.setattr(loop, "train_step", killed)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(part, *args), show_progress=False)
    monkeypatch.setattr(loop, "train_step", real_step)
    with pytest.raises(GcnsegError, match=r"train\.ema cannot change on a resumed run \(0\.9 -> null\)"):
        train(tiny(part, *args[:-1], "train.ema=null"), resume=True, show_progress=False)
    assert main(["train", "--resume", str(part), "--no-progress"]) == 0
    resumed = load_file(str(resolve_checkpoint(part, "last") / "model.safetensors"))
    for k in saved:
        torch.testing.assert_close(resumed[k], saved[k], rtol=0, atol=1e-6, msg=k)
    # the trained weights travel in the training state; without them the run cannot resume
    ckpt = resolve_checkpoint(part, "last")
    state = torch.load(ckpt / "train_state.pt", weights_only=True)
    assert set(state["model"]) == set(saved)


def test_a_validation_split_that_holds_training_images_is_noted(tmp_path, capsys):
    from fakes import make_camvid

    make_camvid(tmp_path / "cv", {"train": ["0001TP_1", "0001TP_2", "0006R0_1"], "val": ["0016E5_1"]}, size=(32, 32))
    common = [*TINY[:3], "data.dataset=camvid", f"data.root={tmp_path / 'cv'}", *TINY[5:], "train.iterations=1"]
    train(load_config(None, [*common, f"out_dir={tmp_path / 'a'}", "data.val_split=train:0006R0,0001TP"]),
          show_progress=False)  # fmt: skip
    said = capsys.readouterr().out
    assert "note: 3 of the 3 validation images (train:0006R0,0001TP) are also training images (train)" in said
    assert "are also training images" in (tmp_path / "a" / "train.log").read_text()
    train(load_config(None, [*common, f"out_dir={tmp_path / 'b'}", "data.train_split=train:0001TP",
                             "data.val_split=train:0006R0"]), show_progress=False)  # fmt: skip
    assert "validation images" not in capsys.readouterr().out  # a left-out sequence: no note
