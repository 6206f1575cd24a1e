"""The fine-tuning recipe's options: class-balanced cross-entropy (and the command that
computes the weights), online hard example mining, the encoder's learning rate and its
frozen BatchNorm."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import make_folder

from gcnseg.commands import main
from gcnseg.config import load_config
from gcnseg.data.weights import class_weights
from gcnseg.train import build_optimizer, segmentation_loss


def test_class_weighted_loss_is_the_weighted_mean():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5)
    target = torch.randint(0, 3, (2, 4, 5))
    target[0, 0] = 255
    w = torch.tensor([1.0, 2.0, 0.5])
    expected = F.cross_entropy(logits, target, weight=w, ignore_index=255)  # PyTorch's weighted mean
    torch.testing.assert_close(segmentation_loss(logits, target, 255, w), expected)
    cl = logits.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(segmentation_loss(cl, target, 255, w), expected)


def test_ohem_keeps_the_hard_pixels():
    # four labelled pixels whose true class has probability 0.9, 0.6, 0.3 and 0.1
    p = torch.tensor([0.9, 0.6, 0.3, 0.1])
    logits = torch.stack([torch.log(p), torch.log(1 - p)], 1).view(1, 4, 2).permute(0, 2, 1)[..., None]  # 1x2x4x1
    target = torch.zeros(1, 4, 1, dtype=torch.long)
    nll = -torch.log(p)
    # threshold 0.5: the pixels at 0.3 and 0.1
    got = segmentation_loss(logits, target, 255, ohem_thresh=0.5, ohem_min_kept=1)
    torch.testing.assert_close(got, nll[2:].mean())
    # too few hard pixels: the 3 hardest
    got = segmentation_loss(logits, target, 255, ohem_thresh=0.5, ohem_min_kept=3)
    torch.testing.assert_close(got, nll[1:].mean())
    # with class weights: a weighted mean of the kept pixels (true classes 0, 0, 1, 1 here)
    mixed = torch.tensor([0, 0, 1, 1]).view(1, 4, 1)
    p_true = torch.where(mixed.flatten() == 0, p, 1 - p)  # 0.9, 0.6, 0.7, 0.9: only pixel 1 is hard
    w = torch.tensor([2.0, 1.0])
    got = segmentation_loss(logits, mixed, 255, w, ohem_thresh=0.8, ohem_min_kept=2)
    kept = p_true.argsort()[:2]  # pixel 1 (0.6) and pixel 2 (0.7): at least 2 kept
    ws = w[mixed.flatten()[kept]]
    torch.testing.assert_close(got, (-torch.log(p_true[kept]) * ws).sum() / ws.sum())
    assert segmentation_loss(logits, torch.full_like(target, 255), 255, ohem_thresh=0.5).item() == 0.0


def test_enet_and_median_weights_by_hand():
    pixels = np.array([60, 30, 10, 0])
    present_in = np.array([100, 100, 50, 0])  # class 2 appears in images of 50 labelled pixels
    enet = class_weights(pixels, present_in, "enet")
    assert enet[:3] == pytest.approx([1 / math.log(1.02 + 0.6), 1 / math.log(1.02 + 0.3), 1 / math.log(1.02 + 0.1)])
    assert enet[3] == 0.0
    # frequencies 0.6, 0.3, 0.2: median 0.3
    assert class_weights(pixels, present_in, "median") == pytest.approx([0.5, 1.0, 1.5, 0.0])
    with pytest.raises(ValueError, match="method must be one of"):
        class_weights(pixels, present_in, "inverse")


def test_data_weights_command_writes_a_config(tmp_path, capsys):
    masks = make_folder(tmp_path / "d", ["a", "b"], ["bg", "fg"], size=(4, 4))
    pixels = np.bincount(np.concatenate([m.ravel() for m in masks.values()]), minlength=2)
    out = tmp_path / "with_weights.yaml"
    assert main(["data", "weights", "--dataset", "folder", "--root", str(tmp_path / "d"), "--split", "all",
                 "--out", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "train.class_weights=[" in text
    expected = [round(1 / math.log(1.02 + n / pixels.sum()), 4) for n in pixels]
    cfg = load_config(out)
    assert cfg.train.class_weights == pytest.approx(expected) and cfg.data.dataset == "folder"


def test_class_weights_must_match_the_classes(tmp_path, capsys):
    args = ["train", "--no-progress", "model.backbone=resnet18", "model.k=3", "data.dataset=synthetic-shapes",
            "data.options={size: 32, num_classes: 3, length: 4, eval_length: 2}", "train.iterations=1",
            "train.class_weights=[1.0, 2.0]", f"out_dir={tmp_path / 'r'}"]  # fmt: skip
    assert main(args) == 2
    assert "train.class_weights: 2 weights for the 3 classes" in capsys.readouterr().err


def test_encoder_learning_rate_and_frozen_encoder_batchnorm(tmp_path):
    from gcnseg.models import GCNSeg

    model = GCNSeg(3, "resnet18", k=3)
    cfg = load_config(None, ["optim.name=adam", "optim.lr=0.01"])
    assert [g["lr"] for g in build_optimizer(cfg.optim, model).param_groups] == [0.01, 0.01]  # as before
    cfg = load_config(None, ["optim.name=adam", "optim.lr=0.01", "optim.encoder_lr_mult=0.1"])
    groups = build_optimizer(cfg.optim, model).param_groups
    encoder = {id(p) for p in model.backbone.parameters()}
    assert [g["lr"] for g in groups] == [0.01, 0.01, pytest.approx(0.001), pytest.approx(0.001)]
    assert all(id(p) in encoder for g in groups[2:] for p in g["params"])
    assert not any(id(p) in encoder for g in groups[:2] for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))

    from gcnseg.checkpoint import load_model
    from gcnseg.models import build_model
    from gcnseg.train import train

    run = tmp_path / "frozen-bn"
    cfg = load_config(None, ["model.backbone=resnet18", "model.k=3", "data.dataset=synthetic-shapes",
                             "data.options={size: 32, num_classes: 3, length: 4, eval_length: 2}",
                             "optim.name=adam", "optim.lr=0.01", "train.batch_size=2", "train.iterations=2",
                             "train.previews=0", "train.freeze_encoder_bn=true", "train.class_weights=[1, 2, 3]",
                             "train.ohem_thresh=0.7", "train.ohem_min_kept=64", f"out_dir={run}"])  # fmt: skip
    torch.manual_seed(0)
    init = build_model(cfg.model, 3).state_dict()
    train(cfg, show_progress=False)
    trained = load_model(run)[0]
    after = trained.state_dict()
    bn_modules = [n for n, m in trained.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    bn = [k for k in after if k.rpartition(".")[0] in bn_modules]
    assert len(bn_modules) == 20 and len(bn) == 100  # ResNet-18: 20 BatchNorms, 5 tensors each
    assert all(torch.equal(after[k], init[k]) for k in bn)  # statistics and affine kept
    assert any(not torch.equal(after[k], init[k]) for k in after if k.startswith("backbone.") and k not in bn)


@pytest.mark.parametrize("classes", [11, 21])  # short rows take the NCHW call, 16 or more the (pixels, classes) view
def test_loss_on_channels_last_scores_equals_the_plain_call(classes):
    torch.manual_seed(0)
    logits = torch.randn(2, classes, 6, 7)
    target = torch.randint(0, classes, (2, 6, 7))
    target[1, :3] = 255
    a = logits.clone().requires_grad_(True)
    b = logits.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    expected = F.cross_entropy(a, target, ignore_index=255)
    got = segmentation_loss(b, target, 255)
    expected.backward()
    got.backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(b.grad, a.grad)


def test_resume_with_another_encoder_learning_rate_is_one_line(trained_run_copy, capsys):
    run = trained_run_copy
    assert main(["train", "--resume", str(run), "optim.encoder_lr_mult=0.1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "optim.encoder_lr_mult cannot change on a resumed run (1.0 -> 0.1)" in err
