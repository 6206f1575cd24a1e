"""ResNet50-GCN (Section 4.1.2, Figure 5B, Appendix A / Table 11).

In res-4 and res-5 the first two layers of every bottleneck (1x1 and 3x3) are
replaced by a GCN module, with BatchNorm and ReLU after each convolution:
res-4 uses k=5 with 85 channels (x6 blocks), res-5 k=7 with 128 channels
(x3 blocks). The stem, res-2 and res-3 are those of ResNet-50.

The paper gives no code; Table 11 is read as follows, and the reading is what
makes the two columns of Table 11 match ("sizes carefully selected so that both
networks have similar computation cost and number of parameters"):

- The two GCN branches reach the block's 1x1 expansion side by side
  (concatenated). 85 and 128 are exactly the widths for which such a block has
  the parameter count of the bottleneck it replaces: 1,116,730 vs 1,114,112
  (res-4) and 4,423,680 vs 4,456,448 (res-5). ``merge="sum"`` (branches added,
  as in the head's GCN of Fig. 2B) is available and gives 92% of these counts.
- "Downsampling is performed between every components with stride 2
  convolution": a 1x1 stride-2 convolution with BatchNorm between res-3 and
  res-4 and between res-4 and res-5 (the cost of ResNet's projection shortcut)
  changes width and resolution, and every GCN block keeps an identity shortcut.
  A strided 1xk convolution inside a branch would drop rows it never looks at.

Measured at 224x224 (``tests/test_resnet_gcn.py``): parameters +2.1% and
convolution FLOPs -2.6% against torchvision's ResNet-50.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import Bottleneck


def _conv_bn_relu(cin: int, cout: int, kernel: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=(kernel[0] // 2, kernel[1] // 2), bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class GCNBottleneck(nn.Module):
    """Residual block of ResNet-GCN (Fig. 5B): two GCN branches (1xk then kx1,
    kx1 then 1xk) with BN+ReLU after every convolution, a 1x1 expansion with BN,
    the identity shortcut, then ReLU."""

    def __init__(self, channels: int, mid: int, k: int, merge: str = "concat") -> None:
        super().__init__()
        if merge not in ("concat", "sum"):
            raise ValueError(f"merge must be 'concat' or 'sum', got {merge!r}")
        self.merge = merge
        self.left = nn.Sequential(_conv_bn_relu(channels, mid, (1, k)), _conv_bn_relu(mid, mid, (k, 1)))
        self.right = nn.Sequential(_conv_bn_relu(channels, mid, (k, 1)), _conv_bn_relu(mid, mid, (1, k)))
        merged = 2 * mid if merge == "concat" else mid
        self.expand = nn.Sequential(nn.Conv2d(merged, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.left(x), self.right(x)
        y = self.expand(torch.cat([a, b], 1) if self.merge == "concat" else a + b)
        return self.relu(y + x)


def downsample(cin: int, cout: int) -> nn.Sequential:
    """The stride-2 convolution between two components (Table 11)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))


def gcn_stage(cin: int, cout: int, mid: int, k: int, blocks: int, merge: str = "concat") -> nn.Sequential:
    """A ResNet-GCN component: downsampling, then ``blocks`` GCN bottlenecks."""
    return nn.Sequential(downsample(cin, cout), *(GCNBottleneck(cout, mid, k, merge) for _ in range(blocks)))


def resnet50_gcn(num_classes: int = 1000, weights: None = None, merge: str = "concat") -> torchvision.models.ResNet:
    """ResNet50-GCN of Table 11: an ImageNet classifier (global average pool and
    fc) whose ``layer1..layer4`` are res-2..res-5, usable as the segmentation
    backbone ``"resnet50_gcn"``. No ImageNet weights are published: pretrain it
    (paper 4.1.2) and load the file with ``GCNSeg(..., weights=PATH)``; the
    ``weights`` argument exists for parity with torchvision's constructors."""
    if weights is not None:
        raise ValueError("resnet50_gcn has no published weights; pretrain it and load a local file")
    model = torchvision.models.ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes)
    model.layer3 = gcn_stage(512, 1024, 85, k=5, blocks=6, merge=merge)
    model.layer4 = gcn_stage(1024, 2048, 128, k=7, blocks=3, merge=merge)
    for m in list(model.layer3.modules()) + list(model.layer4.modules()):
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model
