"""Export: a checkpoint as ONNX or TorchScript with dynamic height and width.

The files describe themselves, so that a user outside Python needs nothing else: ONNX
files carry ``metadata_props`` (TorchScript files a ``meta.json`` extra file) with the
class names, palette, input normalisation, what goes in and what comes out (see
:func:`export_metadata`). With ``end_to_end`` the graph takes uint8 RGB pictures as
decoders give them (``N x H x W x 3``) and gives the label map (``N x H x W`` class
ids): the normalisation, the layout change and the argmax are inside the graph.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import GcnsegError
from .runtime import atomic_path

if TYPE_CHECKING:
    from .config import Config

ONNX_OPSETS = range(17, 24)  # what torch's exporter writes
TORCHSCRIPT_META = "meta.json"  # the extra file of a TorchScript export: torch.jit.load(..., _extra_files=...)


class EndToEnd(nn.Module):
    """``model`` behind uint8 ``N x H x W x 3`` RGB in and class ids ``N x H x W`` out:
    the normalisation of :func:`gcnseg.predict.to_input` (``(x / 255 - mean) / std``, in that
    order, so that the pixels are the same floats) and the argmax moved into the graph."""

    mean: torch.Tensor  # 1 x 3 x 1 x 1 buffers: constants of the graph
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor([float(v) for v in mean]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([float(v) for v in std]).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).float().div(255)
        return self.model((x - self.mean) / self.std).argmax(1)


def describe_model(cfg: Config) -> str:
    """The network in words: backbone, head, kernel size, boundary refinement, upsampling."""
    m = cfg.model
    k = "k " + ("/".join(str(v) for v in m.k) if isinstance(m.k, list) else str(m.k))
    parts = [f"backbone {m.backbone}", f"head {m.head}", k]
    if m.m is not None:
        parts.append(f"m {m.m}")
    parts += [f"boundary refinement {'on' if m.br else 'off'}", f"upsampling {m.upsample}"]
    return "Global Convolutional Network (Peng et al., CVPR 2017): " + ", ".join(parts)


def export_metadata(
    meta: Mapping[str, Any] | None = None,
    cfg: Config | None = None,
    source: str | None = None,
    end_to_end: bool = False,
) -> dict[str, str]:
    """The description an exported file carries (every value a string; lists as JSON):
    ``gcnseg_version``, ``input``, ``output``, ``end_to_end``, and where known
    ``classes``, ``palette``, ``num_classes``, ``ignore_index`` (from the sidecar ``meta``),
    ``mean``, ``std`` (pixels in [0, 1]), ``model``, ``inference`` (from ``cfg``),
    ``checkpoint`` (``source``), ``step`` and ``weights_sha256`` (from the sidecar)."""
    from . import __version__

    meta = dict(meta or {})
    mean = list(cfg.data.mean) if cfg is not None and cfg.data.mean is not None else None
    std = list(cfg.data.std) if cfg is not None and cfg.data.std is not None else None
    c = meta.get("num_classes", "C")
    norm = f"(x / 255 - mean) / std with mean {mean} and std {std}" if mean and std else "(x / 255 - mean) / std"
    if end_to_end:
        inp = f"image: uint8 N x H x W x 3, RGB 0-255 as decoded from a picture (any N, H, W); the graph applies {norm}"
        outp = "labels: int64 N x H x W, the class id of each pixel (an index into classes)"
    else:
        inp = f"image: float32 N x 3 x H x W, RGB pixels x of 0-255 normalised as {norm} (any N, H, W)"
        outp = f"logits: float32 N x {c} x H x W class scores; their argmax over dim 1 is the class id"
    out: dict[str, str] = {
        "gcnseg_version": __version__,
        "input": inp,
        "output": outp,
        "end_to_end": "true" if end_to_end else "false",
    }
    if "classes" in meta:
        out["classes"] = json.dumps(list(meta["classes"]))
    if "palette" in meta:
        out["palette"] = json.dumps([[int(v) for v in rgb] for rgb in meta["palette"]])
    if "num_classes" in meta:
        out["num_classes"] = str(int(meta["num_classes"]))
    ignore = meta.get("ignore_index", cfg.data.ignore_index if cfg is not None else None)
    if ignore is not None:  # the label value of unlabelled pixels in ground truth; never predicted
        out["ignore_index"] = str(int(ignore))
    if mean is not None and std is not None:
        out["mean"], out["std"] = json.dumps(mean), json.dumps(std)
    if cfg is not None:
        out["model"] = describe_model(cfg)
        note = "one pass at the input size (no multi-scale, flip, tiles or CRF)"
        if cfg.eval.pad_size is not None:
            note += (
                f"; the run evaluated inputs padded to {cfg.eval.pad_size} (eval.pad_size), which the graph does not"
            )
        out["inference"] = note
    if source is not None:
        out["checkpoint"] = source
    if "step" in meta:
        out["step"] = str(meta["step"])
    weights = (meta.get("sha256") or {}).get("model.safetensors")
    if weights:
        out["weights_sha256"] = str(weights)
    return out


def _traced_module(model: nn.Module, cfg: Config | None, end_to_end: bool) -> nn.Module:
    """The module to trace: ``model`` itself, or wrapped in :class:`EndToEnd`."""
    model = model.eval()
    if not end_to_end:
        return model
    if cfg is None or cfg.data.mean is None or cfg.data.std is None:
        raise GcnsegError("an end-to-end export needs the input normalisation (data.mean and data.std of the config)")
    return EndToEnd(model, cfg.data.mean, cfg.data.std).eval()


def _sample(sample_size: tuple[int, int], end_to_end: bool) -> torch.Tensor:
    """An input of ``sample_size`` (H, W) to trace with, of the graph's dtype and layout."""
    h, w = sample_size
    if end_to_end:
        return torch.randint(0, 256, (1, h, w, 3), dtype=torch.uint8)
    return torch.randn(1, 3, h, w)


def export_onnx(
    model: nn.Module,
    path: Path,
    sample_size: tuple[int, int] = (64, 96),
    opset: int = 18,
    *,
    meta: Mapping[str, Any] | None = None,
    cfg: Config | None = None,
    source: str | None = None,
    end_to_end: bool = False,
) -> Path:
    """ONNX with dynamic batch, height and width, and :func:`export_metadata` as its
    ``metadata_props``. Default: input ``image`` (float N x 3 x H x W, normalised), output
    ``logits``; ``end_to_end``: input ``image`` (uint8 N x H x W x 3 RGB), output ``labels``
    (int64 N x H x W). Written through a temporary file: ``path`` is complete or absent."""
    if opset not in ONNX_OPSETS:
        raise GcnsegError(f"opset {opset}: expected {ONNX_OPSETS.start} to {ONNX_OPSETS.stop - 1}")
    try:
        import onnx
    except ImportError:
        raise GcnsegError("ONNX export needs the onnx package: pip install 'gcnseg[onnx]'") from None
    module, x = _traced_module(model, cfg, end_to_end), _sample(sample_size, end_to_end)
    out_name = "labels" if end_to_end else "logits"
    if end_to_end:
        axes = {"image": {0: "batch", 1: "height", 2: "width"}, "labels": {0: "batch", 1: "height", 2: "width"}}
    else:
        axes = {"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}}
    props = export_metadata(meta, cfg, source, end_to_end)
    with atomic_path(path) as tmp:
        with torch.no_grad():  # the inference graph (as TorchScript's tracing below)
            torch.onnx.export(
                module,
                (x,),
                str(tmp),
                input_names=["image"],
                output_names=[out_name],
                opset_version=opset,
                dynamic_axes=axes,
                dynamo=False,
            )
        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]
        for key, value in props.items():
            proto.metadata_props.add(key=key, value=value)
        proto.doc_string = f"gcnseg {props['gcnseg_version']}: {props['input']} -> {props['output']}"
        onnx.save(proto, str(tmp))
    return path


def export_torchscript(
    model: nn.Module,
    path: Path,
    sample_size: tuple[int, int] = (64, 96),
    *,
    meta: Mapping[str, Any] | None = None,
    cfg: Config | None = None,
    source: str | None = None,
    end_to_end: bool = False,
) -> Path:
    """TorchScript by tracing; sizes are recorded symbolically, so any height and width work.
    :func:`export_metadata` goes in as the extra file ``meta.json`` (read it back with
    ``torch.jit.load(path, _extra_files={"meta.json": ""})``); ``end_to_end`` as in
    :func:`export_onnx`."""
    module, x = _traced_module(model, cfg, end_to_end), _sample(sample_size, end_to_end)
    with torch.no_grad():
        traced = torch.jit.trace(module, x, check_trace=False)
    extra = {TORCHSCRIPT_META: json.dumps(export_metadata(meta, cfg, source, end_to_end), indent=1)}
    buffer = io.BytesIO()  # serialised in memory (torch's own writer aborts the process on a full disk)
    torch.jit.save(traced, buffer, _extra_files=extra)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return path
