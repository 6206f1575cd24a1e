"""gcnseg vrf: the gradient-based valid receptive field (Figure 3, the paper's [38])."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gcnseg.checkpoint import save_checkpoint
from gcnseg.commands import main
from gcnseg.config import load_config
from gcnseg.models import GCNSeg
from gcnseg.models.gcn import GlobalConv
from gcnseg.vrf import draw_vrf, valid_receptive_field, vrf_stats


def test_one_conv_vrf_is_its_kernel():
    conv = nn.Conv2d(3, 2, 3, padding=1, bias=False)
    image = torch.randn(3, 16, 20)
    x, y = 5, 7
    vrf = valid_receptive_field(conv, image, (x, y))
    assert vrf.shape == (16, 20) and vrf.dtype == np.float64
    assert vrf.sum() == pytest.approx(1.0)
    support = np.zeros_like(vrf, dtype=bool)
    support[y - 1 : y + 2, x - 1 : x + 2] = True
    assert (vrf[~support] == 0).all() and (vrf[support] > 0).all()
    # d(sum over classes)/d input = sum over output channels of the kernel; |.| summed over colours
    expected = conv.weight.detach().sum(0).abs().sum(0).double().numpy()
    np.testing.assert_allclose(vrf[support].reshape(3, 3), expected / expected.sum(), rtol=1e-5)
    # the predicted-class score: one output channel's kernel
    pred = int(conv(image[None])[0, :, y, x].argmax())
    vrf_p = valid_receptive_field(conv, image, (x, y), target="predicted")
    expected = conv.weight.detach()[pred].abs().sum(0).double().numpy()
    np.testing.assert_allclose(vrf_p[support].reshape(3, 3), expected / expected.sum(), rtol=1e-5)


def test_corner_point_and_eval_mode():
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.BatchNorm2d(2)).train()
    vrf = valid_receptive_field(model, torch.randn(1, 3, 9, 9), (0, 0))
    assert set(zip(*np.nonzero(vrf))) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert model.training  # the caller's mode is given back
    with pytest.raises(ValueError, match="outside"):
        valid_receptive_field(model, torch.randn(3, 9, 9), (9, 0))


@pytest.mark.parametrize("k", [3, 7])
def test_gcn_module_reaches_its_whole_k_by_k_window(k):
    """GCN (Fig. 2B) is a dense k x k kernel: its VRF is the full window, a 1x1 head's one pixel."""
    image = torch.randn(3, 15, 15)
    gcn = valid_receptive_field(GlobalConv(3, 2, k), image, (7, 7))
    one = valid_receptive_field(nn.Conv2d(3, 2, 1, bias=False), image, (7, 7))
    r = k // 2
    window = np.zeros((15, 15), dtype=bool)
    window[7 - r : 8 + r, 7 - r : 8 + r] = True
    assert (gcn[window] > 0).all() and (gcn[~window] == 0).all()
    assert np.count_nonzero(one) == 1 and one[7, 7] == pytest.approx(1.0)
    assert vrf_stats(gcn, (7, 7))["radius90"] > vrf_stats(one, (7, 7))["radius90"] == 0.0


def test_stats_on_known_maps():
    delta = np.zeros((10, 10))
    delta[4, 6] = 3.0
    s = vrf_stats(delta, (6, 4))
    assert s["radius50"] == s["radius90"] == 0.0 and s["area50"] == s["area90"] == 0.01 and s["support"] == 0.01
    flat = np.ones((10, 10))
    s = vrf_stats(flat, (0, 0))
    assert s["area50"] == 0.5 and s["area90"] == 0.9 and s["support"] == 1.0
    assert s["radius50"] < s["radius90"] <= np.hypot(9, 9)
    pic = draw_vrf(np.zeros((10, 10, 3), np.uint8), flat / 100, (0, 0), s)
    assert pic.shape == (10, 10, 3) and pic.dtype == np.uint8 and pic.any()


def test_gcn_head_enlarges_the_vrf_of_gcnseg():
    """Figure 3: on the same backbone weights, GCN k=15 heads spread the score's
    gradient over more of the image than 1x1 heads (fixed seed, untrained)."""
    torch.manual_seed(0)
    base = GCNSeg(3, "resnet18", head="conv1x1", br=False)
    gcn = GCNSeg(3, "resnet18", head="gcn", k=15, br=False)
    gcn.backbone.load_state_dict(base.backbone.state_dict())
    gcn.up.load_state_dict(base.up.state_dict())
    image = torch.randn(3, 64, 64)
    a = vrf_stats(valid_receptive_field(base, image, (32, 32)), (32, 32))
    b = vrf_stats(valid_receptive_field(gcn, image, (32, 32)), (32, 32))
    assert b["area50"] > 1.1 * a["area50"] and b["radius50"] > a["radius50"] and b["area90"] > a["area90"]


def _checkpoint(run_dir, head: str, k: int):
    cfg = load_config(None, ["model.backbone=resnet18", f"model.head={head}", f"model.k={k}", "model.br=false"])
    model = GCNSeg(3, "resnet18", head=head, k=k, br=False)
    save_checkpoint(run_dir, model, {"step": 0, "config": cfg.to_dict(), "num_classes": 3})
    return run_dir


def test_cli_side_by_side(tmp_path, capsys):
    a = _checkpoint(tmp_path / "base", "conv1x1", 1)
    b = _checkpoint(tmp_path / "gcn", "gcn", 15)
    img = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(img)
    out = tmp_path / "out" / "vrf.png"
    assert (
        main(
            [
                "vrf",
                "--checkpoint",
                str(a),
                "--compare",
                str(b),
                "--image",
                str(img),
                "--point",
                "20,10",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    pic = Image.open(out)
    assert pic.size == (2 * 48 + 4, 40 + 16)
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["point"] == [20, 10] and doc["size"] == [48, 40] and doc["target"] == "sum"
    assert [m["model"] for m in doc["models"]] == ["1x1 conv", "gcn k=15"]
    assert all(0 < m["area50"] < m["area90"] <= 1 and m["radius50"] <= m["radius90"] for m in doc["models"])
    assert "VRF radius 50%" in capsys.readouterr().out
    # one model, default point (the centre)
    assert main(["vrf", "--checkpoint", str(a), "--image", str(img), "--out", str(tmp_path / "one.png")]) == 0
    assert Image.open(tmp_path / "one.png").size == (48, 56)
    assert json.loads((tmp_path / "one.json").read_text())["point"] == [24, 20]


def test_cli_bad_inputs(tmp_path, capsys):
    a = _checkpoint(tmp_path / "base", "conv1x1", 1)
    img = tmp_path / "img.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(img)
    cases = [
        (["--image", str(tmp_path / "nope.png"), "--point", "1,1"], "nope.png"),
        (["--image", str(img), "--point", "30,5"], "--point 30,5: outside the 30x20 image"),
        (["--image", str(img), "--point", "abc"], "--point abc"),
    ]
    for extra, message in cases:
        assert main(["vrf", "--checkpoint", str(a), "--out", str(tmp_path / "x.png"), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x.png").exists()
