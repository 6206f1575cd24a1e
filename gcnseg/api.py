"""The one-call inference API: a model that carries its own preprocessing.

A model from :func:`gcnseg.from_pretrained`, the hub (``hubconf.py``) or :func:`equip`
takes images as they come: ``model.segment(image)`` gives the class ids at the image's
size, the ones ``gcnseg predict`` writes for it, because it runs that command's own code
(:func:`gcnseg.predict.segment`): the same reading of files (EXIF orientation applied),
the same normalisation (``model.config.data.mean`` / ``std``), the same test-time settings
(``model.config.eval``: scales, flip, tiles, dense CRF only where the config asks for it)
and, unless ``eager=True``, the same optimised path. ``model.preprocess(image)`` gives
the normalised tensor that the network takes; ``model(x)`` on such tensors gives logits,
as before (the network is the plain :class:`~gcnseg.models.GCNSeg`, its weights unchanged).

Why: fed raw ``[0, 1]`` pixels, the bare network agrees with ``gcnseg predict`` on about
94% of the pixels, fed 0-255 on about a third, silently. Here an image is read one way
only, and input that could be misread (0-255 floats, already normalised tensors) is a
:class:`ValueError` saying what to pass instead.
"""

from __future__ import annotations

import inspect
import itertools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np
import torch
from torch import nn

from .errors import GcnsegError

if TYPE_CHECKING:
    from PIL import Image

    from .config import Config

#: One image: a PIL image, a numpy array (H x W x 3 uint8; H x W grey, H x W x 4 RGBA;
#: floats in [0, 1]), a tensor (C x H x W, as torchvision's ``read_image`` / ``to_tensor``
#: give) or the path of an image file.
ImageLike = Union["Image.Image", np.ndarray, torch.Tensor, str, os.PathLike]
Labels = np.ndarray  # H x W int64 class ids
Result = Labels | tuple[Labels, torch.Tensor]

_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # PIL's 16-bit, 32-bit and float grey


def from_pretrained(
    name_or_run: str | os.PathLike, device: str | torch.device = "cpu", num_classes: int | None = None
) -> nn.Module:
    """The trained network of a named model, run folder or checkpoint, in eval mode on
    ``device`` (``"auto"``: the GPU if there is one), with :func:`equip`'s ``meta``,
    ``config``, ``preprocess`` and ``segment``. ``num_classes`` other than the model's:
    the same architecture with its trained encoder and a fresh head for that many
    classes, to fine-tune (``meta["trained"]`` is False)."""
    from .checkpoint import load_model

    if not isinstance(name_or_run, (str, os.PathLike)):  # an empty or blank name: CheckpointError, from the loader
        raise TypeError(f"name_or_run: expected a name or path, got {type(name_or_run).__name__}")
    model, cfg, meta = load_model(name_or_run)
    if num_classes is not None and num_classes != meta["num_classes"]:
        model, meta = _with_new_head(model, cfg, meta, num_classes, str(name_or_run))
    return equip(model, cfg, meta).to(_device(device))


def untrained(
    name_or_run: str | os.PathLike, device: str | torch.device = "cpu", num_classes: int | None = None
) -> nn.Module:
    """The architecture of a named model or run with random weights (the encoder's
    ImageNet weights left out too), equipped like :func:`from_pretrained`'s."""
    from .checkpoint import load_model
    from .models import build_model

    _, cfg, meta = load_model(name_or_run)
    n = meta["num_classes"] if num_classes is None else num_classes
    model = build_model(cfg.model, n, pretrained=False).eval()
    return equip(model, cfg, _untrained_meta(meta, n, f"random weights in the architecture of {name_or_run}")).to(
        _device(device)
    )


def _device(device: str | torch.device) -> torch.device:
    from .runtime import resolve_device

    return device if isinstance(device, torch.device) else resolve_device(str(device), "device")


def _with_new_head(
    model: nn.Module, cfg: Config, meta: dict[str, Any], num_classes: int, source: str
) -> tuple[nn.Module, dict[str, Any]]:
    """``model``'s architecture for ``num_classes``: its encoder's trained weights, fresh
    score heads, Boundary Refinement and decoder (they all have one channel per class)."""
    from .models import build_model

    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    fresh = build_model(cfg.model, num_classes, pretrained=False)
    backbone: Any = model.backbone
    fresh.backbone.load_state_dict(backbone.state_dict())
    what = f"the encoder of {source} with a fresh head for {num_classes} classes: fine-tune it before use"
    return fresh.eval(), _untrained_meta(meta, num_classes, what)


def _untrained_meta(meta: dict[str, Any], num_classes: int, what: str) -> dict[str, Any]:
    """A sidecar for a network not trained for its ``num_classes`` classes: the config and
    ignore index kept (the encoder's normalisation, the architecture), no metrics; the
    class names and colours kept where the count is the same, else ``class0``... and
    distinct colours."""
    from .data.base import distinct_palette

    same = num_classes == meta.get("num_classes")
    return {
        "config": meta.get("config", {}),
        "num_classes": num_classes,
        "classes": meta.get("classes") if same and meta.get("classes") else [f"class{i}" for i in range(num_classes)],
        "palette": meta.get("palette") if same and meta.get("palette") else distinct_palette(num_classes),
        "ignore_index": meta.get("ignore_index", 255),
        "trained": False,
        "note": what,
    }


class _Bound:
    """``fn(model, ...)`` as a plain attribute of ``model`` (``model.segment(...)``): the
    class of the network is not changed, its weights and ``state_dict`` neither; unlike a
    bound method it survives ``copy.deepcopy`` and pickling of the model."""

    def __init__(self, fn: Callable[..., Any], model: nn.Module) -> None:
        self.fn, self.model = fn, model
        self.__doc__ = fn.__doc__
        params = list(inspect.signature(fn).parameters.values())[1:]
        self.__signature__ = inspect.signature(fn).replace(parameters=params)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(self.model, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.fn.__name__} of {type(self.model).__name__}{self.__signature__}>"


class _Optimised:
    """The optimised copy of a model that :func:`segment` runs, and the state of the
    weights it was made from (made again when they change: a fine-tuned model is never
    run with its old weights). A copy or pickle of the model starts without it."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.net: nn.Module | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"key": None, "net": None}


def equip(model: nn.Module, cfg: Config, meta: dict[str, Any]) -> nn.Module:
    """``model`` (in place, returned) with what it needs to take images as they come:
    ``model.meta`` (classes, palette, config), ``model.config`` (the
    :class:`~gcnseg.config.Config` whose ``data.mean`` / ``std`` and ``eval`` section it
    uses; change it with :func:`gcnseg.config.apply_overrides`, e.g.
    ``["eval.flip=true"]``), ``model.preprocess(image)`` and ``model.segment(image)``.
    ``cfg`` and ``meta`` as :func:`gcnseg.checkpoint.load_model` returns them."""
    from .config import with_input_normalisation

    state = vars(model)  # plain attributes: nn.Module.__setattr__ is typed for tensors and modules
    state["meta"] = meta
    state["config"] = with_input_normalisation(cfg)
    state["preprocess"] = _Bound(preprocess, model)
    state["segment"] = _Bound(segment, model)
    state["_gcnseg_optimised"] = _Optimised()
    return model


def _config(model: nn.Module) -> Config:
    cfg = vars(model).get("config")
    if cfg is None:
        raise GcnsegError(
            "this model carries no preprocessing: take it from gcnseg.from_pretrained, or call "
            "gcnseg.api.equip(model, cfg, meta) with what gcnseg.checkpoint.load_model returns"
        )
    return cfg


def _model_device(model: nn.Module) -> torch.device:
    return next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device


def preprocess(model: nn.Module, image: ImageLike) -> torch.Tensor:
    """The normalised ``1 x 3 x H x W`` float tensor that the network takes for one image,
    on the model's device: ``model(model.preprocess(image))`` gives its logits (one pass,
    without ``model.config.eval``'s test-time settings, which :func:`segment` applies)."""
    from .predict import to_input

    cfg = _config(model)
    if isinstance(image, (list, tuple)):
        raise TypeError("preprocess takes one image; segment takes a list of them")
    return to_input(to_rgb(image), cfg.data.mean, cfg.data.std).to(_model_device(model))


def segment(
    model: nn.Module,
    images: ImageLike | Sequence[ImageLike],
    scores: bool = False,
    *,
    eager: bool = False,
    precision: str = "auto",
    compile: str = "auto",
) -> Result | list[Result]:
    """Class ids (``H x W`` int64 numpy, at the image's size) of an image, exactly as
    ``gcnseg predict`` writes them for it; a list for a list of images (or a batch:
    ``N x C x H x W`` tensor, ``N x H x W x C`` array).

    An image is a path (read as ``gcnseg predict`` reads it: EXIF orientation applied),
    a PIL image (its pixels as they are), an ``H x W x 3`` uint8 array (``H x W`` grey
    and ``H x W x 4`` RGBA too; 16-bit scaled from 0-65535), float values in ``[0, 1]``
    (rounded to 8 bits, as a file holds them), or a ``C x H x W`` tensor (uint8, or floats
    in ``[0, 1]``). Floats above 1 (0-255 floats) or below 0 (normalised already) are a
    :class:`ValueError`. ``scores=True``: ``(labels, probabilities)``, the softmax scores
    ``C x H x W`` (float32, on the CPU) that the labels are the argmax of (before the CRF,
    where the config asks for one). ``eager=True``: the network as it is, not the
    optimised copy that ``gcnseg predict`` runs by default (made on first use and when
    the weights change). ``precision`` and ``compile`` as ``gcnseg predict``'s flags
    (:func:`gcnseg.optimize.inference_model`; ``compile="auto"`` compiles for a list long
    enough to repay it; int8 needs ``model.config.data.root``). Always in eval mode,
    whatever the model's."""
    if eager and (precision != "auto" or compile == "on"):
        raise ValueError("eager=True runs the network as it is: it takes no precision or compile='on'")
    path = {"eager": eager, "precision": precision, "compile": compile}
    if isinstance(images, (list, tuple)) or (isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4):
        path["passes"] = len(images)
        return [_segment_one(model, im, scores, path) for im in images]
    return _segment_one(model, cast(ImageLike, images), scores, {**path, "passes": 1})


def _segment_one(model: nn.Module, image: ImageLike, scores: bool, path: dict[str, Any]) -> Result:
    cfg = _config(model)
    rgb = to_rgb(image)
    device = _model_device(model)
    if not path["eager"]:
        return _labels_and_scores(_optimised(model, path), rgb, cfg, device, scores)
    was_training = model.training
    model.eval()
    try:
        return _labels_and_scores(model, rgb, cfg, device, scores)
    finally:
        model.train(was_training)


def _optimised(model: nn.Module, path: dict[str, Any]) -> nn.Module:
    """:func:`gcnseg.optimize.inference_model` of ``model`` (what ``gcnseg predict``
    runs), kept while the weights and the path asked for stay as they are (the same
    tensors, unmodified in place)."""
    from .optimize import enough_passes, inference_model

    cache = vars(model).get("_gcnseg_optimised")
    if not isinstance(cache, _Optimised):
        cache = vars(model)["_gcnseg_optimised"] = _Optimised()
    compile = path["compile"]
    if compile == "auto" and not enough_passes(path["passes"]):
        compile = "off"  # the key of what inference_model will make (GCNSEG_COMPILE may still turn "auto" off)
    key = (path["precision"], compile) + tuple(
        (t.data_ptr(), t._version, t.dtype, t.device, tuple(t.shape))
        for t in itertools.chain(model.parameters(), model.buffers())
    )
    if cache.net is None or cache.key != key:
        cache.net, cache.key = None, None  # the old copy freed before the new one is made
        net = inference_model(
            model, precision=path["precision"], compile=compile, passes=path["passes"], data=_config(model).data
        )
        cache.net, cache.key = net, key
    return cache.net


def _labels_and_scores(
    net: Callable[[torch.Tensor], torch.Tensor], rgb: np.ndarray, cfg: Config, device: torch.device, scores: bool
) -> Result:
    """The labels of :func:`gcnseg.predict.segment`, and with ``scores`` the probabilities
    it took the argmax of (:func:`gcnseg.predict.segment_scores`)."""
    from .predict import segment_scores

    labels, probs = segment_scores(net, rgb, cfg, device, keep_scores=scores)
    labels = np.asarray(labels, dtype=np.int64)
    return (labels, probs) if probs is not None else labels


def to_rgb(image: ImageLike) -> np.ndarray:
    """One image as ``H x W x 3`` uint8 RGB (see :func:`segment` for what an image may be);
    what could be misread is a :class:`ValueError` saying what to pass."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        from .data.io import read_image

        return np.asarray(read_image(Path(image), exif=True))
    if isinstance(image, Image.Image):
        if image.mode in _WIDE_MODES:  # as read_image converts such files
            return _channels_to_rgb(_wide_to_8bit(np.asarray(image), image.mode.startswith("I;16")))
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        return _channels_to_rgb(_to_uint8(_tensor_to_hwc(image)))
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[-1] > 4 and image.shape[0] <= 4:
            raise ValueError(
                f"an image array of shape {image.shape} looks channels-first; numpy images are "
                "H x W x C (image.transpose(1, 2, 0)); tensors are C x H x W"
            )
        return _channels_to_rgb(_to_uint8(image))
    raise TypeError(
        f"cannot segment a {type(image).__name__}: expected a PIL image, a numpy array, a tensor, "
        "a path, or a list of them"
    )


def _tensor_to_hwc(t: torch.Tensor) -> np.ndarray:
    """A ``C x H x W`` (or ``H x W``) tensor as an ``H x W x C`` array of its dtype."""
    t = t.detach().cpu()
    if t.is_floating_point() and t.dtype != torch.float64:
        t = t.float()  # float16 / bfloat16: numpy has no bfloat16
    if t.ndim == 3 and t.shape[0] <= 4:
        t = t.permute(1, 2, 0)
    elif not (t.ndim == 2 or (t.ndim == 3 and t.shape[-1] <= 4)):
        raise ValueError(f"expected an image tensor C x H x W (C = 1, 3 or 4) or H x W, got shape {tuple(t.shape)}")
    return t.numpy()


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """``arr``'s values as 8-bit pixels: uint8 as it is, floats in ``[0, 1]`` times 255
    (rounded), other integers as read_image reads 16-bit files."""
    if arr.ndim not in (2, 3) or 0 in arr.shape[:2]:
        raise ValueError(f"expected an image H x W, H x W x 3 or H x W x 4, got an array of shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        raise ValueError("a boolean array is a mask, not an image: pass the image (uint8, or floats in [0, 1])")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("the image holds NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if hi > 1:
            raise ValueError(
                f"a float image must hold values in [0, 1], this one goes up to {hi:g}: 0-255 values? "
                "pass them as uint8 (image.astype(np.uint8)), or divide by 255"
            )
        if lo < 0:
            raise ValueError(
                f"a float image must hold values in [0, 1], this one goes down to {lo:g}: normalised already? "
                "segment and preprocess take the image itself; model(x) takes normalised tensors"
            )
        return (arr.astype(np.float64) * 255.0 + 0.5).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 65535:
            raise ValueError(f"integer pixels must lie in 0-255 (or 0-65535, 16-bit), got {lo} to {hi}")
        return _wide_to_8bit(arr, arr.dtype == np.uint16)
    raise ValueError(f"cannot read an image of dtype {arr.dtype}: pass uint8 pixels, or floats in [0, 1]")


def _wide_to_8bit(arr: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    """8-bit pixels of 16/32-bit or float grey values, as :func:`gcnseg.data.io.read_image`
    scales such files: from 0-65535 when 16-bit or above 255, else from 0-255."""
    a = arr.astype(np.float64)
    top = 65535.0 if sixteen_bit or a.max() > 255 else 255.0
    return np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _channels_to_rgb(arr: np.ndarray) -> np.ndarray:
    """``H x W x 3`` from ``H x W`` / ``H x W x 1`` grey, grey + alpha, RGB or RGBA (the
    alpha dropped, as PIL's ``convert("RGB")`` drops it)."""
    if arr.ndim == 2:
        arr = arr[..., None]
    c = arr.shape[-1]
    if arr.ndim != 3 or not 1 <= c <= 4:
        raise ValueError(f"expected an image H x W, H x W x 3 or H x W x 4, got an array of shape {arr.shape}")
    rgb = arr[..., :3] if c >= 3 else np.repeat(arr[..., :1], 3, axis=-1)
    return np.ascontiguousarray(rgb)
