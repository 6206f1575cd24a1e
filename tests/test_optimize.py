"""The optimised inference path keeps the eager fp32 model's predictions."""

import copy

import pytest
import torch
from torch import nn

from gcnseg.models import GCNSeg
from gcnseg.optimize import fold_batchnorm, optimize_for_inference


def randomize_batchnorm(model: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters, as after training."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def real_looking(h: int, w: int) -> torch.Tensor:
    """Smooth regions with edges and texture, normalised like an ImageNet image."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    r = ((xx - 0.4) ** 2 + (yy - 0.5) ** 2).sqrt()
    img = torch.stack([(r < 0.3).float(), xx, 0.5 + 0.3 * torch.sin(12 * yy)])
    img = img + 0.05 * torch.randn(3, h, w)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return ((img - mean) / std)[None]


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50", "resnet50_gcn"])
def test_fp32_path_agrees_with_eager(backbone):
    """BatchNorm folding and channels-last change only float rounding, even on
    an untrained network whose scores are nearly tied everywhere."""
    model = GCNSeg(5, backbone=backbone, k=7).eval()
    randomize_batchnorm(model)
    fast = optimize_for_inference(model, precision="fp32")
    for x in (torch.randn(1, 3, 96, 128), real_looking(97, 131)):
        with torch.inference_mode():
            ref, got = model(x), fast(x)
        assert got.shape == ref.shape and got.dtype == torch.float32
        # float rounding only: differences far below the scale of the scores
        assert (got - ref).abs().max() <= 1e-3 * ref.abs().max()
        assert (got.argmax(1) == ref.argmax(1)).float().mean() >= 0.999


@pytest.fixture(scope="module")
def trained(trained_run):
    """The suite's small trained network (scores with margins, as in use)."""
    from gcnseg.checkpoint import load_model

    model, _cfg, _ = load_model(trained_run)
    return model


@pytest.mark.parametrize("precision", ["bf16", "auto"])
def test_bf16_backbone_agrees_with_eager_fp32(trained, precision):
    fast = optimize_for_inference(trained, precision=precision)
    # noise at 128x192 or more: on 64x96 noise (res-5 is 2x3, all border, scores near-tied
    # out of distribution) this 25-step network agrees on 99.88% only, 15 pixels of 12,288
    for x in (torch.randn(2, 3, 128, 192), real_looking(97, 131)):
        with torch.inference_mode():
            ref, got = trained(x), fast(x)
        assert got.dtype == torch.float32 and got.shape == ref.shape
        assert (got.argmax(1) == ref.argmax(1)).float().mean() >= 0.999


def test_auto_precision_follows_the_cpu(monkeypatch):
    import gcnseg.optimize as opt

    model = GCNSeg(3, backbone="resnet18", k=3).eval()
    monkeypatch.setattr(opt, "native_bf16", lambda: True)
    assert optimize_for_inference(model).backbone_dtype == torch.bfloat16
    # BatchNorm kept (fold_bn=False): auto stays fp32 and an explicit bf16 is refused
    assert optimize_for_inference(model, fold_bn=False).backbone_dtype == torch.float32
    with pytest.raises(ValueError, match="fold_bn"):
        optimize_for_inference(model, fold_bn=False, precision="bf16")
    monkeypatch.setattr(opt, "native_bf16", lambda: False)
    assert optimize_for_inference(model).backbone_dtype == torch.float32
    with pytest.raises(ValueError, match="precision"):
        optimize_for_inference(model, precision="int8")


def test_every_batchnorm_is_folded_and_original_untouched():
    model = GCNSeg(3, backbone="resnet50_gcn", k=3).eval()
    before = copy.deepcopy(model.state_dict())
    fast = optimize_for_inference(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 50
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_fold_counts_and_needs_eval_mode():
    resnet18_bns = 1 + 8 * 2 + 3  # stem, two per basic block, three projection shortcuts
    model = GCNSeg(3, backbone="resnet18", k=3).eval()
    assert fold_batchnorm(model) == resnet18_bns
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(GCNSeg(3, backbone="resnet18", k=3).train())


def test_bf16_reader_converts_the_parts_a_head_declares():
    """The optimised path runs in bf16 what a head declares as its feature readers, and
    hands float32 on; a head that declares none gets float32 input and stays float32."""
    from gcnseg.models import GlobalConv
    from gcnseg.optimize import bf16_reader

    class Head(nn.Module):
        feature_readers = ("wide",)

        def __init__(self) -> None:
            super().__init__()
            self.wide, self.narrow = nn.Conv2d(8, 3, 1), nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.narrow(self.wide(x))

    x = torch.randn(1, 8, 4, 4).to(torch.bfloat16)
    head = bf16_reader(Head())
    assert head(x).dtype == torch.float32
    assert head.wide[0].weight.dtype == torch.bfloat16 and head.narrow.weight.dtype == torch.float32
    plain = bf16_reader(nn.Conv2d(8, 3, 1))
    assert plain(x).dtype == torch.float32 and plain[1].weight.dtype == torch.float32
    gcn = bf16_reader(GlobalConv(8, 3, 15))
    assert [gcn.get_submodule(n)[0].weight.dtype for n in GlobalConv.feature_readers] == [torch.bfloat16] * 2
    assert gcn.left[1].weight.dtype == gcn.right[1].weight.dtype == torch.float32 and gcn(x).dtype == torch.float32


def test_batchnorm_before_a_convolution_is_not_folded():
    """Only a BatchNorm that follows its convolution folds: names alone (``bn`` / ``conv``
    siblings, as in timm's pre-activation blocks) do not make a pair."""

    class PreAct(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn, self.conv = nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(self.bn(x))

    model = nn.Sequential(PreAct(), PreAct()).eval()
    randomize_batchnorm(model)
    x = torch.randn(1, 4, 8, 8)
    ref = model(x)
    assert fold_batchnorm(model) == 0
    torch.testing.assert_close(model(x), ref)
