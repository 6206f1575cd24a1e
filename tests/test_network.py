"""The whole network of Fig. 2A: shapes for every backbone and head, odd sizes, the
deconvolution, the nine BR blocks, gradients."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gcnseg.models import BoundaryRefine, Deconv2x, GCNSeg, bilinear_kernel


@pytest.mark.parametrize("backbone", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet50_gcn"])
def test_every_backbone_output_shape(backbone):
    model = GCNSeg(5, backbone=backbone, k=3).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 33, 47))
    assert out.shape == (2, 5, 33, 47)


@pytest.mark.parametrize("head", ["gcn", "conv1x1", "convkxk", "stack"])
@pytest.mark.parametrize("upsample", ["deconv", "bilinear"])
def test_every_head_and_upsampling(head, upsample):
    model = GCNSeg(3, backbone="resnet18", head=head, k=5, upsample=upsample, m=16).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 97, 131)).shape == (2, 3, 97, 131)


@pytest.mark.parametrize("hw", [(97, 131), (321, 479), (64, 64), (1, 1), (33, 2)])
def test_odd_sizes(hw):
    model = GCNSeg(4, backbone="resnet18", k=7).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *hw)).shape == (1, 4, *hw)


def test_nine_boundary_refine_blocks_and_no_br():
    model = GCNSeg(21, backbone="resnet18", k=15)
    assert sum(isinstance(m, BoundaryRefine) for m in model.modules()) == 9
    assert sum(isinstance(m, Deconv2x) for m in model.modules()) == 5
    plain = GCNSeg(21, backbone="resnet18", k=15, br=False)
    assert sum(isinstance(m, BoundaryRefine) for m in plain.modules()) == 0
    # the only difference: 9 BR blocks of two 3x3 convs with bias over 21 channels
    per_br = 2 * (21 * 21 * 9 + 21)
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(model) - n(plain) == 9 * per_br


def test_per_stage_k():
    model = GCNSeg(3, backbone="resnet18", k=[3, 5, 7, 9])
    assert [h.k for h in model.heads] == [3, 5, 7, 9]
    with pytest.raises(ValueError, match="four"):
        GCNSeg(3, backbone="resnet18", k=[3, 5])
    with pytest.raises(ValueError, match="odd"):
        GCNSeg(3, backbone="resnet18", k=[3, 5, 7, 8])


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
        GCNSeg(3, backbone="vgg16")
    with pytest.raises(ValueError, match="upsample"):
        GCNSeg(3, backbone="resnet18", upsample="nearest")
    with pytest.raises(ValueError, match="num_classes"):
        GCNSeg(0, backbone="resnet18")


def test_fresh_deconvolution_is_bilinear_upsampling():
    up = Deconv2x(4)
    x = torch.randn(2, 4, 7, 10)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up(x, (14, 20)), ref, atol=1e-5, rtol=1e-5)
    # cropping to an odd target keeps the top-left alignment
    torch.testing.assert_close(up(x, (13, 19)), ref[..., :13, :19], atol=1e-5, rtol=1e-5)
    assert up.deconv.weight.requires_grad


def test_bilinear_kernel_is_fcn_filter():
    w = bilinear_kernel(2)
    f = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(w[0, 0], torch.outer(f, f))
    assert w[0, 1].abs().sum() == 0 and w[1, 0].abs().sum() == 0


def test_every_parameter_gets_a_gradient():
    model = GCNSeg(3, backbone="resnet18", k=5)
    out = model(torch.randn(2, 3, 64, 48))
    loss = F.cross_entropy(out, torch.randint(0, 3, (2, 64, 48)))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert zero == []


def test_resnet50_gcn_as_segmentation_backbone_gets_gradients():
    model = GCNSeg(2, backbone="resnet50_gcn", k=3, br=False)
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


class _TinyEncoder(nn.Module):
    """The encoder contract and nothing else: four maps at strides 4..32 and their channels."""

    channels = (8, 16, 24, 32)

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout, 3, stride=s, padding=1)
            for cin, cout, s in zip((3, 8, 16, 24), self.channels, (4, 2, 2, 2))
        )

    def forward(self, x):
        feats = []
        for conv in self.convs:
            x = conv(x)
            feats.append(x)
        return feats


def test_gcnseg_takes_any_encoder_module():
    model = GCNSeg(5, _TinyEncoder(), k=[7, 5, 3, 3]).eval()
    assert [h.left[0].in_channels for h in model.heads] == [8, 16, 24, 32]
    assert model(torch.randn(2, 3, 64, 96)).shape == (2, 5, 64, 96)
    assert model(torch.randn(1, 3, 61, 67)).shape == (1, 5, 61, 67)
    with pytest.raises(ValueError, match="weights name the weights of a backbone given by name"):
        GCNSeg(5, _TinyEncoder(), weights="DEFAULT")
    bad = _TinyEncoder()
    bad.channels = (8, 16, 24)
    with pytest.raises(ValueError, match="'channels' attribute of four positive ints"):
        GCNSeg(5, bad)
    with pytest.raises(ValueError, match="'channels' attribute"):
        GCNSeg(5, nn.Conv2d(3, 8, 3))


def test_build_model_is_the_config_s_network():
    from gcnseg.config import ModelConfig
    from gcnseg.models import build_model

    cfg = ModelConfig(backbone="resnet18", head="stack", k=[3, 5, 5, 3], br=False, upsample="bilinear", m=8)
    model = build_model(cfg, 4)
    ref = GCNSeg(4, "resnet18", head="stack", k=[3, 5, 5, 3], br=False, upsample="bilinear", m=8)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in ref.state_dict().items()
    ]
    with pytest.raises(TypeError):  # the options are keyword arguments
        GCNSeg(4, "resnet18", "gcn", 15)


@pytest.mark.parametrize("optimised", [False, True])
def test_features_are_freed_before_the_full_size_decoder(optimised):
    """Memory: the backbone's features (res-2 alone is 256 x H/4 x W/4 floats) are gone once
    the heads have scored them, before the decoder's full-size maps are made."""
    import weakref

    from gcnseg.optimize import optimize_for_inference

    model = GCNSeg(3, "resnet18", k=3).eval()
    net = optimize_for_inference(model, precision="fp32") if optimised else model
    inner = net.model if optimised else net
    feats: list[weakref.ref] = []
    alive_at_last_br: list[int] = []
    inner.backbone.register_forward_hook(lambda m, a, out: feats.extend(weakref.ref(f) for f in out))
    inner.fuse_br[4].register_forward_pre_hook(
        lambda m, a: alive_at_last_br.append(sum(r() is not None for r in feats))
    )
    with torch.inference_mode():
        out = net(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 3, 64, 96)
    assert len(feats) == 4 and alive_at_last_br == [0]
