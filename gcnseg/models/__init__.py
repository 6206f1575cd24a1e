"""The paper's model (Section 3, Appendix A), plain ``nn.Module`` s, in the order of
Fig. 2A: the feature network (:mod:`.encoders`, :mod:`.resnet_gcn`), the GCN score
heads and Boundary Refinement (:mod:`.gcn`, CPU kernels in :mod:`.kernels`), the
deconvolution decoder (:mod:`.decoder`), and the whole network (:mod:`.network`)."""

from .decoder import Bilinear2x, Deconv2x, bilinear_kernel
from .encoders import (
    ENCODERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Encoder,
    ResNetFeatures,
    TimmEncoder,
    WeightsError,
    build_encoder,
    encoder_channels,
    input_normalisation,
    load_pretrained,
    read_state_dict,
)
from .gcn import HEAD_KINDS, BoundaryRefine, GlobalConv, build_head, conv_stack
from .kernels import StripConv, plain_kernels
from .network import GCNSeg, build_model, per_stage_k
from .resnet_gcn import GCNBottleneck, gcn_stage, resnet50_gcn

__all__ = [
    "ENCODERS",
    "HEAD_KINDS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Bilinear2x",
    "BoundaryRefine",
    "Deconv2x",
    "Encoder",
    "GCNBottleneck",
    "GCNSeg",
    "GlobalConv",
    "ResNetFeatures",
    "StripConv",
    "TimmEncoder",
    "WeightsError",
    "bilinear_kernel",
    "build_encoder",
    "build_head",
    "build_model",
    "conv_stack",
    "encoder_channels",
    "gcn_stage",
    "input_normalisation",
    "load_pretrained",
    "per_stage_k",
    "plain_kernels",
    "read_state_dict",
    "resnet50_gcn",
]
