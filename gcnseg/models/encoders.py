"""Feature networks (Section 3.2; the paper's "backbone", an "encoder" in smp's terms).

The encoder contract is small: an ``nn.Module`` whose ``forward(x)`` returns four
feature maps at strides 4, 8, 16 and 32 (res-2..res-5 of a ResNet) and whose
``channels`` attribute gives their channel counts (:class:`Encoder`). Any module that
keeps it can be given to :class:`~gcnseg.models.GCNSeg`; by name, :data:`ENCODERS`
has torchvision's ResNets and ResNet50-GCN (Appendix A), and ``timm/NAME`` is any
model that timm builds with ``features_only`` (:class:`TimmEncoder`).

Weights come from torchvision's weights API (``weights="DEFAULT"`` or an enum
name such as ``"IMAGENET1K_V2"``) or from a local file (``.safetensors``, or a
``.pth``/``.pt`` state dict read with ``weights_only=True``). Nothing is ever
unpickled beyond tensors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
import torchvision
from torch import nn

from ..errors import GcnsegError
from ..normalisation import IMAGENET_MEAN, IMAGENET_STD, input_normalisation  # noqa: F401 (re-exported)
from .resnet_gcn import resnet50_gcn

# name -> (constructor, channels of res-2..res-5)
ENCODERS: dict[str, tuple[Callable[..., nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (torchvision.models.resnet18, (64, 128, 256, 512)),
    "resnet34": (torchvision.models.resnet34, (64, 128, 256, 512)),
    "resnet50": (torchvision.models.resnet50, (256, 512, 1024, 2048)),
    "resnet101": (torchvision.models.resnet101, (256, 512, 1024, 2048)),
    "resnet152": (torchvision.models.resnet152, (256, 512, 1024, 2048)),
    "resnet50_gcn": (resnet50_gcn, (256, 512, 1024, 2048)),
}


class Encoder(Protocol):
    """What :class:`~gcnseg.models.GCNSeg` needs of a feature network."""

    channels: Sequence[int]  # of the four maps, strides 4, 8, 16, 32

    def __call__(self, x: torch.Tensor) -> Sequence[torch.Tensor]: ...


def check_encoder(encoder: nn.Module) -> tuple[int, int, int, int]:
    """The four channel counts of ``encoder``, or a ValueError saying what is missing."""
    channels = getattr(encoder, "channels", None)
    if (
        not isinstance(channels, Sequence)
        or len(channels) != 4
        or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels)
    ):
        raise ValueError(
            f"an encoder needs a 'channels' attribute of four positive ints (its maps at strides "
            f"4, 8, 16, 32), got {channels!r} on {type(encoder).__name__}"
        )
    return (channels[0], channels[1], channels[2], channels[3])


class WeightsError(GcnsegError):
    """Pretrained weights could not be found or read."""


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a tensors-only ``.pth``/``.pt`` file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    state: Any
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, or a pickle holding more than tensors
        raise WeightsError(
            f"{path}: not a readable state dict ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and set(state) == {key}:
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a mapping of parameter names to tensors")
    return state


def _torchvision_weights(name: str, weights: str):
    """Resolve ``"DEFAULT"``/``"IMAGENET1K_V2"``/``"ResNet50_Weights.IMAGENET1K_V2"`` to a weights enum."""
    enum = torchvision.models.get_model_weights(name)
    key = weights.split(".")[-1]
    try:
        return enum[key] if key not in ("DEFAULT", "imagenet") else enum.DEFAULT
    except KeyError:
        raise WeightsError(
            f"unknown weights {weights!r} for {name}; choose DEFAULT, one of {', '.join(w.name for w in enum)}, or a local file"
        ) from None


def load_pretrained(model: nn.Module, name: str, weights: str | os.PathLike) -> None:
    """Load ImageNet weights into a classifier ``model`` (before its head is dropped)."""
    if Path(weights).suffix in (".safetensors", ".pth", ".pt", ".bin") or Path(weights).exists():
        state = read_state_dict(weights)
        source = str(weights)
    else:
        if name not in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
            raise WeightsError(
                f"no published weights for {name}: pretrain it on ImageNet (paper 4.1.2) and pass the file as weights=PATH"
            )
        w = _torchvision_weights(name, str(weights))
        cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
        try:
            state = w.get_state_dict(progress=False, check_hash=True)
        except Exception as e:
            raise WeightsError(
                f"could not download {w} ({type(e).__name__}); fetch {w.url} on a machine with network "
                f"and put it at {cache}, or pass weights=/path/to/file"
            ) from None
        source = str(w)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    unexpected = [k for k in unexpected if not k.startswith("fc.")]
    if missing or unexpected:
        raise WeightsError(
            f"{source}: does not fit {name} (missing {len(missing)} keys e.g. {missing[:2]}, unexpected {len(unexpected)} e.g. {unexpected[:2]})"
        )


class ResNetFeatures(nn.Module):
    """A ResNet without its classifier, returning the res-2..res-5 feature maps
    (strides 4, 8, 16, 32; Fig. 2A)."""

    #: the optimised path may run it in bf16: predictions agree with eager fp32 on >= 99.9%
    #: of the pixels of trained networks (docs/performance.md)
    bf16_inference = True

    def __init__(self, resnet: torchvision.models.ResNet, channels: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.res2, self.res3, self.res4, self.res5 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.channels = channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c2 = self.res2(self.stem(x))
        c3 = self.res3(c2)
        c4 = self.res4(c3)
        c5 = self.res5(c4)
        return [c2, c3, c4, c5]


# timm's EfficientNet-family blocks: which convolution each BatchNorm follows
TIMM_CONV_BN: dict[str, tuple[tuple[str, str], ...]] = {
    "EfficientNetFeatures": (("conv_stem", "bn1"),),
    "DepthwiseSeparableConv": (("conv_dw", "bn1"), ("conv_pw", "bn2")),
    "InvertedResidual": (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
    "EdgeResidual": (("conv_exp", "bn1"), ("conv_pwl", "bn2")),
    "ConvBnAct": (("conv", "bn1"),),
}


class TimmEncoder(nn.Module):  # bf16_inference unset: EfficientNet-Lite0 in bf16 agrees on 99.67% only
    """A timm model as the feature network: its ``features_only`` form, keeping the last
    map at each of strides 4, 8, 16 and 32 (for EfficientNet-Lite0: 24, 40, 112 and 320
    channels).

    ``weights``: ``None`` (random), ``"imagenet"`` (the packaged file where
    :data:`gcnseg.packaged.PACKAGED` has one, else timm's own hub download),
    ``"hub"`` (timm's hub download), or a local state dict in timm's names (of the
    classifier or of its features; head tensors are left out).
    """

    def __init__(self, arch: str, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        try:
            import timm
        except ImportError:
            raise WeightsError(f"backbone timm/{arch} needs timm: pip install 'gcnseg[pretrained]'") from None
        from ..packaged import load_packaged, uses_packaged

        packaged = uses_packaged(arch, weights)
        hub = weights == "hub" or (weights in ("imagenet", "DEFAULT") and not packaged)
        try:
            self.body = timm.create_model(arch, pretrained=hub, features_only=True)
        except Exception as e:  # offline hub, or a model without a features_only form
            raise WeightsError(f"timm/{arch}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        info: Any = self.body.feature_info
        reductions = info.reduction()
        self.taps: list[int] = []
        for stride in (4, 8, 16, 32):
            found = [i for i, r in enumerate(reductions) if r == stride]
            if not found:
                raise ValueError(f"timm/{arch} has no feature map at stride {stride} (its strides: {reductions})")
            self.taps.append(found[-1])
        all_channels = info.channels()
        self.channels = tuple(all_channels[i] for i in self.taps)
        self.arch = arch
        if packaged:
            load_packaged(self.body, arch)
        elif weights is not None and not hub:
            state = read_state_dict(weights)
            target = self.body.state_dict()
            missing, _ = self.body.load_state_dict({k: v for k, v in state.items() if k in target}, strict=False)
            if missing or not set(state) & set(target):
                raise WeightsError(f"{weights}: does not fit timm/{arch} ({len(missing)} missing e.g. {missing[:2]})")

    def conv_bn_pairs(self) -> list[tuple[str, str]]:
        """The (convolution, BatchNorm) pairs that the optimised path may fold (names
        relative to this module): those of timm's EfficientNet-family blocks."""
        return [(f"{name}.{c}", f"{name}.{b}") for name, m in self.named_modules()
                for c, b in TIMM_CONV_BN.get(type(m).__name__, ())]  # fmt: skip

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.body(x)
        return [feats[i] for i in self.taps]


def encoder_channels(name: str) -> tuple[int, int, int, int]:
    """The channels of a named feature network's four maps, without its weights."""
    if name.startswith("timm/"):
        with torch.device("meta"):  # shapes only
            return check_encoder(TimmEncoder(name[len("timm/") :]))
    if name not in ENCODERS:
        raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(ENCODERS)} or timm/NAME")
    return ENCODERS[name][1]


def build_encoder(name: str = "resnet50", weights: str | os.PathLike | None = None) -> nn.Module:
    """A feature network by name (see :data:`ENCODERS`; ``timm/NAME``: :class:`TimmEncoder`),
    optionally with pretrained weights."""
    if name.startswith("timm/"):
        return TimmEncoder(name[len("timm/") :], weights)
    if name not in ENCODERS:
        raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(ENCODERS)}")
    make, channels = ENCODERS[name]
    model = make(weights=None)
    if weights is not None:
        load_pretrained(model, name, weights)
    return ResNetFeatures(model, channels)
