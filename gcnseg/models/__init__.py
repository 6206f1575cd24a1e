"""The paper's model (Section 3, Appendix A), plain ``nn.Module`` s."""

from .backbones import BACKBONES, ResNetFeatures, WeightsError, build_backbone, load_pretrained, read_state_dict
from .gcn import HEAD_KINDS, BoundaryRefine, GlobalConv, build_head, conv_stack
from .resnet_gcn import GCNBottleneck, gcn_stage, resnet50_gcn
from .segnet import Bilinear2x, Deconv2x, GCNSeg, bilinear_kernel

__all__ = [
    "BACKBONES",
    "HEAD_KINDS",
    "Bilinear2x",
    "BoundaryRefine",
    "Deconv2x",
    "GCNBottleneck",
    "GCNSeg",
    "GlobalConv",
    "ResNetFeatures",
    "WeightsError",
    "bilinear_kernel",
    "build_backbone",
    "build_head",
    "conv_stack",
    "load_pretrained",
    "read_state_dict",
    "gcn_stage",
    "resnet50_gcn",
]
