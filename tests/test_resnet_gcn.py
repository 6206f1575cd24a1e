"""ResNet50-GCN of Appendix A / Table 11 against torchvision's ResNet-50."""

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from gcnseg.models import GCNBottleneck, resnet50_gcn


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def conv_flops(model, size=224):
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model.eval()(torch.zeros(1, 3, size, size))
    return fc.get_total_flops()


def test_block_widths_match_the_bottleneck_they_replace():
    """85 and 128 (Table 11) make a GCN block as large as a ResNet bottleneck."""
    res4 = n_params(GCNBottleneck(1024, 85, 5)) - 2 * 2 * 85 * 2 - 2 * 1024  # minus BatchNorm
    res5 = n_params(GCNBottleneck(2048, 128, 7)) - 2 * 2 * 128 * 2 - 2 * 2048
    assert res4 == 2 * (1024 * 85 * 5 + 85 * 85 * 5) + 2 * 85 * 1024 == 1116730
    assert res5 == 2 * (2048 * 128 * 7 + 128 * 128 * 7) + 2 * 128 * 2048 == 4423680
    bottleneck4 = 1024 * 256 + 256 * 256 * 9 + 256 * 1024
    bottleneck5 = 2048 * 512 + 512 * 512 * 9 + 512 * 2048
    assert abs(res4 / bottleneck4 - 1) < 0.01 and abs(res5 / bottleneck5 - 1) < 0.01


def test_table11_structure():
    model = resnet50_gcn()
    gcn4 = [m for m in model.layer3 if isinstance(m, GCNBottleneck)]
    gcn5 = [m for m in model.layer4 if isinstance(m, GCNBottleneck)]
    assert len(gcn4) == 6 and len(gcn5) == 3
    assert [c.kernel_size for c in gcn4[0].modules() if isinstance(c, torch.nn.Conv2d)][:4] == [
        (1, 5),
        (5, 1),
        (5, 1),
        (1, 5),
    ]
    assert gcn5[0].left[0][0].out_channels == 128 and gcn4[0].left[0][0].out_channels == 85
    # BatchNorm and ReLU after every convolution of the GCN branches (Section 4.1.2)
    assert all(len(s) == 3 for s in list(gcn4[0].left) + list(gcn4[0].right))
    assert len(model.layer1) == 3 and len(model.layer2) == 4


def test_params_and_flops_within_5_percent_of_resnet50():
    gcn, ref = resnet50_gcn(), torchvision.models.resnet50()
    p = n_params(gcn) / n_params(ref)
    f = conv_flops(gcn) / conv_flops(ref)
    assert abs(p - 1) < 0.05, p
    assert abs(f - 1) < 0.05, f


def test_classifier_output_and_feature_sizes():
    model = resnet50_gcn(num_classes=10).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        sizes = []
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            h = layer(h)
            sizes.append(tuple(h.shape[1:]))
    # Table 11 output sizes
    assert sizes == [(256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]


def test_sum_merge_option_and_errors():
    assert n_params(resnet50_gcn(merge="sum")) < n_params(resnet50_gcn())
    with pytest.raises(ValueError, match="merge"):
        resnet50_gcn(merge="max")
    with pytest.raises(ValueError, match="no published weights"):
        resnet50_gcn(weights="DEFAULT")
