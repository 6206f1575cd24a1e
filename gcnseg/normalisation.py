"""The input normalisation a feature network was trained with (pixels in [0, 1]): what
``data.mean`` / ``data.std`` default to (Section 4: "mean subtraction")."""

from __future__ import annotations

from .packaged import PACKAGED, uses_packaged

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def input_normalisation(backbone: str, weights: str | None) -> tuple[list[float], list[float]]:
    """The (mean, std) of the inputs a feature network was trained on (pixels in [0, 1]):
    ImageNet's for torchvision's ResNets; for ``timm/NAME``, its packaged weights' or
    timm's own pretrained configuration's."""
    if backbone.startswith("timm/"):
        arch = backbone[len("timm/") :]
        if uses_packaged(arch, weights):
            return list(PACKAGED[arch].mean), list(PACKAGED[arch].std)
        import timm

        cfg = timm.models.get_pretrained_cfg(arch)
        if cfg is not None and getattr(cfg, "mean", None) and getattr(cfg, "std", None):
            return list(cfg.mean), list(cfg.std)
    return list(IMAGENET_MEAN), list(IMAGENET_STD)
