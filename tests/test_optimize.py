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
def test_argmax_agreement_with_eager(backbone):
    model = GCNSeg(5, backbone=backbone, k=7).eval()
    randomize_batchnorm(model)
    fast = optimize_for_inference(model)
    for x in (torch.randn(1, 3, 96, 128), real_looking(97, 131)):
        with torch.inference_mode():
            ref, got = model(x), fast(x)
        assert got.shape == ref.shape and got.is_contiguous()
        # float rounding only: differences far below the scale of the scores
        assert (got - ref).abs().max() <= 1e-3 * ref.abs().max()
        assert (got.argmax(1) == ref.argmax(1)).float().mean() >= 0.999


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
