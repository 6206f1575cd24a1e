"""Joint image/mask transforms on ``torchvision.transforms.v2`` with ``tv_tensors.Mask``.

Training (Section 4): random scale, horizontal flip, (optional photometric
jitter and blur, beyond the paper), mean subtraction /
normalisation, padding to a fixed size (image with the mean, i.e. 0 after
normalisation; mask with the ignore index; the paper pads to 512x512 and
640x640) and random crop (Cityscapes 800x800). All randomness is drawn from
torch's global RNG, so ``torch.manual_seed`` reproduces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..config import DataConfig, size_hw
from ..normalisation import IMAGENET_MEAN, IMAGENET_STD
from .io import IGNORE_INDEX


BLUR_KERNEL, BLUR_SIGMA = 5, (0.1, 2.0)  # data.blur's Gaussian: 5x5, sigma drawn in [0.1, 2]


class RandomScale(v2.Transform):
    """Resize by a factor drawn uniformly from ``scale_range`` (mask: nearest neighbour)."""

    def __init__(self, scale_range: Sequence[float]) -> None:
        super().__init__()
        self.lo, self.hi = float(scale_range[0]), float(scale_range[1])

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        s = self.lo + (self.hi - self.lo) * float(torch.rand(()))
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, params["size"], antialias=True)


class PadToSize(v2.Transform):
    """Pad at the bottom and right up to ``size`` (no-op where already as large).

    ``fill`` follows ``v2.Pad``: a value or a ``{type: value}`` dict.
    """

    def __init__(self, size: int | Sequence[int], fill: Any) -> None:
        super().__init__()
        self.size = size_hw(size)
        self.fill = fill

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        return {"padding": [0, 0, max(0, self.size[1] - w), max(0, self.size[0] - h)]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not any(params["padding"]):
            return inpt
        fill = self.fill.get(type(inpt), 0) if isinstance(self.fill, dict) else self.fill
        return self._call_kernel(F.pad, inpt, padding=params["padding"], fill=fill)


class ToTensors(v2.Transform):
    """``(PIL image, ndarray mask)`` -> ``(tv_tensors.Image uint8, tv_tensors.Mask uint8)``."""

    def forward(self, image: Image.Image | torch.Tensor, mask: np.ndarray | torch.Tensor) -> tuple[Any, Any]:
        img = F.pil_to_tensor(image) if isinstance(image, Image.Image) else torch.as_tensor(image)
        m = torch.as_tensor(np.asarray(mask))
        if m.numel() and (int(m.min()) < 0 or int(m.max()) > 255):
            raise ValueError("mask values must lie in [0, 255] (class ids and the ignore index 255)")
        return tv_tensors.Image(img), tv_tensors.Mask(m.to(torch.uint8))


class Finish(v2.Transform):
    """Plain tensors out: float image, ``int64`` mask, 255 remapped to ``ignore_index`` if it differs."""

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask.as_subclass(torch.Tensor).long()
        if self.ignore_index != IGNORE_INDEX:
            m[m == IGNORE_INDEX] = self.ignore_index
        return image.as_subclass(torch.Tensor).contiguous(), m.contiguous()


def build_transforms(cfg: DataConfig, train: bool) -> v2.Compose:
    """The joint transform of a split: train applies scale / flip / jitter / blur / normalise / pad / crop
    (each only where ``cfg`` enables it); evaluation only normalises (and resizes to
    ``cfg.eval_size``: an int is the shorter side, ``[h, w]`` an exact size). A
    ``DataConfig`` without ``mean`` / ``std`` (no backbone to take them from) normalises
    with ImageNet's."""
    fill = {tv_tensors.Image: 0.0, tv_tensors.Mask: IGNORE_INDEX}  # 0 = the mean after Normalize
    steps: list[Any] = [ToTensors()]
    if train:
        lo, hi = cfg.scale_range
        if (lo, hi) != (1.0, 1.0):
            steps.append(RandomScale((lo, hi)))
        if cfg.flip:
            steps.append(v2.RandomHorizontalFlip(0.5))
        if cfg.color_jitter is not None and any(cfg.color_jitter):
            brightness, contrast, saturation, hue = cfg.color_jitter
            steps.append(v2.ColorJitter(brightness, contrast, saturation, hue))  # images only: masks pass through
        if cfg.blur:
            steps.append(v2.RandomApply([v2.GaussianBlur(BLUR_KERNEL, BLUR_SIGMA)], p=cfg.blur))
    elif cfg.eval_size is not None:
        size = [cfg.eval_size] if isinstance(cfg.eval_size, int) else list(cfg.eval_size)
        steps.append(v2.Resize(size, antialias=True))
    steps += [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True), v2.Normalize(cfg.mean or list(IMAGENET_MEAN), cfg.std or list(IMAGENET_STD))]
    if train:
        if cfg.pad_size is not None:
            steps.append(PadToSize(cfg.pad_size, fill))
            if cfg.crop_size is None:  # larger images: crop to the pad size so that batches collate
                steps.append(v2.RandomCrop(size_hw(cfg.pad_size)))
        if cfg.crop_size is not None:
            steps += [PadToSize(cfg.crop_size, fill), v2.RandomCrop(size_hw(cfg.crop_size))]
    steps.append(Finish(cfg.ignore_index))
    return v2.Compose(steps)
