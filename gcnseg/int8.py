"""int8 inference: post-training static quantisation with ONNX Runtime.

A trained network is exported to ONNX at one input size (static shapes, so the
decoder's odd-size crops are constants), calibrated on images of its training split
(activation ranges, min-max), and quantised with int8 weights per output channel and
uint8 activations (QDQ format, which ONNX Runtime runs on its integer kernels: VNNI
where the CPU has it, AVX2's ``vpmaddubsw`` elsewhere).

Predictions must stay those of the float32 network: after quantising, the argmax
agreement with the float32 model is measured on images of the validation split
(float32 against int8 predictions: no labels are read; the calibration images come
from the training split). Below :data:`AGREEMENT_TARGET`, the layers that cost
agreement are kept in float32, in this order (measured on CamVid,
docs/performance.md): the decoder's upsampling and fusion blocks, then the encoder's
stages from the input side (where the maps are largest and the depthwise
convolutions most sensitive). A network that cannot reach the target with at most
:data:`MAX_FLOAT_STAGES` float stages is not quantised: the caller is told and runs
float32.

Quantised files are cached (``$XDG_CACHE_HOME/gcnseg/int8``, or ``$GCNSEG_CACHE/int8``), one
per network, input size and calibration set, with a sidecar that records what was
kept float32 and the agreement reached; a damaged cache entry is rebuilt.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import GcnsegError
from .metrics.agreement import label_agreement
from .runtime import atomic_path, atomic_write_text, file_sha256, notice

AGREEMENT_TARGET = 0.995  # argmax agreement with float32 that an int8 network must keep
MAX_SIZES = 4  # input sizes quantised per network; others run float32 (as compiling does)
MAX_FLOAT_STAGES = 6  # encoder stages that may be kept float32 (after the decoder)
CALIBRATION_IMAGES = 24
CHECK_IMAGES = 32
FORMAT = 2  # bumped when the quantisation recipe changes (old cache entries are not reused)
# the decoder (Fig. 2): Deconv2x, the fusion BR blocks and the additions of GCNSeg.fuse
DECODER = re.compile(r"^/m/((up|fuse_br)[./]|Add(_\d+)?$)")
STAGE = re.compile(r"^(blocks|layer|stages?|res)[._]?\d")  # an encoder stage's module name


def require_onnxruntime() -> None:
    """One line naming the extra to install where ONNX Runtime is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise GcnsegError("--precision int8 needs ONNX Runtime: pip install 'gcnseg[onnx]'") from None


def cache_dir() -> Path:
    """Where quantised networks are kept: ``GCNSEG_CACHE`` or ``$XDG_CACHE_HOME/gcnseg`` (``~/.cache``)."""
    root = os.environ.get("GCNSEG_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gcnseg"
    return Path(root) / "int8"


def _digest(tensors: Sequence[torch.Tensor], *extra: Any) -> str:
    h = hashlib.sha256(repr(extra).encode())
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


class _Plain(nn.Module):
    """The network under a fixed name (``m``), so exported node names read ``/m/<module>/...``."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


def stage_groups(node_names: Sequence[str]) -> list[list[str]]:
    """The encoder's nodes grouped by stage, input side first: the first path component
    under ``/m/backbone/`` (``body`` skipped) that names a stage, e.g. ``blocks.0`` (timm)
    or ``layer1`` (torchvision); what comes before the first stage (``conv_stem``,
    ``bn1``; ``conv1``, ``maxpool``) is one group, the stem."""
    groups: dict[str, list[str]] = {}
    for name in node_names:
        parts = [p for p in name.split("/") if p]
        if len(parts) < 3 or parts[:2] != ["m", "backbone"]:
            continue
        rest = [p for p in parts[2:-1] if p not in ("body", "encoder", "model")]
        key = rest[0] if rest and STAGE.match(rest[0]) else "stem"
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def float_ladder(node_names: Sequence[str]) -> list[list[str]]:
    """The nodes kept float32 at each try: none, the decoder, then the decoder and the
    first 1, 2, ... encoder stages (up to :data:`MAX_FLOAT_STAGES`)."""
    decoder = [n for n in node_names if DECODER.match(n)]
    ladder: list[list[str]] = [[], decoder]
    kept = list(decoder)
    for group in stage_groups(node_names)[:MAX_FLOAT_STAGES]:
        kept = kept + group
        ladder.append(kept)
    return ladder


class _Images:
    """ONNX Runtime's calibration reader over normalised 1x3xHxW tensors."""

    def __init__(self, images: Sequence[torch.Tensor]) -> None:
        self.it = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self.it, None)
        return None if x is None else {"image": x.numpy()}


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _agreement(session: Any, images: Sequence[torch.Tensor], reference: Sequence[np.ndarray]) -> float:
    """The argmax agreement of the ONNX Runtime ``session`` with the float32 ``reference`` labels."""
    return label_agreement(
        (session.run(None, {"image": x.numpy()})[0].argmax(1), ref) for x, ref in zip(images, reference, strict=True)
    )


def _resized(images: Sequence[torch.Tensor], size: tuple[int, int]) -> list[torch.Tensor]:
    """Calibration images at the bucket's size (activation ranges hardly depend on it)."""
    out = []
    for x in images:
        if tuple(x.shape[-2:]) != size:
            x = nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        out.append(x.float().contiguous())
    return out


def quantize(
    model: nn.Module,
    size: tuple[int, int],
    calibration: Sequence[torch.Tensor],
    check: Sequence[torch.Tensor],
    out: Path,
    notify: Callable[[str], None] = lambda line: None,
    target: float | None = None,
    opset: int = 18,
) -> dict[str, Any]:
    """Quantise ``model`` (float32, eval mode, on the CPU) for ``size`` into ``out``; returns
    the record of what was done (also written to ``out`` + ``.json``). Raises
    :class:`GcnsegError` where ``target`` (default :data:`AGREEMENT_TARGET`; 0: every
    convolution int8, whatever the agreement) is not reached."""
    target = AGREEMENT_TARGET if target is None else target
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = copy.deepcopy(model).eval().float()  # the caller's model keeps its mode and dtype
    calibration, check = _resized(calibration, size), _resized(check, size)
    with torch.inference_mode():
        reference = [model(x).argmax(1).numpy() for x in check]
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="gcnseg-int8-") as tmp:
        fp32, pre = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx"
        sample = torch.zeros(1, 3, *size)
        with torch.no_grad(), warnings.catch_warnings():  # the exporter's notes on traced sizes are expected
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Plain(model).eval(), (sample,), str(fp32), input_names=["image"], output_names=["scores"],
                opset_version=opset, dynamo=False,
            )  # fmt: skip
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre)).graph
        nodes = [n.name for n in graph.node]  # every op of a kept module: its activations stay float32 too
        convs = {n.name for n in graph.node if n.op_type in ("Conv", "ConvTranspose")}
        best: tuple[float, list[str]] = (-1.0, [])
        for kept in float_ladder(nodes):
            trial = Path(tmp) / f"int8-{len(kept)}.onnx"
            quantize_static(
                str(pre), str(trial), _Images(calibration), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=kept,
                calibrate_method=CalibrationMethod.MinMax,
            )  # fmt: skip
            agree = _agreement(_session(trial, threads), check, reference)
            notify(
                f"int8 {size[0]}x{size[1]}: {len(convs.intersection(kept))} of {len(convs)} convolutions float32, "
                f"agreement {100 * agree:.2f}%"
            )
            if agree > best[0]:
                best = (agree, kept)
            if agree >= target:
                break
        agree, kept = best
        if agree < target:
            raise GcnsegError(
                f"int8 keeps only {100 * agree:.2f}% argmax agreement with float32 on validation images "
                f"(needs {100 * target:.1f}%)"
            )
        record = {
            "format": FORMAT,
            "size": list(size),
            "agreement": agree,
            "target": target,
            "float32_nodes": kept,
            "float32_convolutions": len(convs.intersection(kept)),
            "convolutions": len(convs),
            "calibration_images": len(calibration),
            "check_images": len(check),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp_out:
            tmp_out.write_bytes(trial.read_bytes())
        record["sha256"] = file_sha256(out)
        atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=1))
    return record


class Int8Model(nn.Module):
    """A float32 network run as int8 by ONNX Runtime, one quantised graph per input size.

    Takes and returns what the network does (normalised ``N x 3 x H x W`` float in,
    ``N x C x H x W`` scores out). Each new size is quantised on first use (or read from
    the cache); ``calibration`` and ``check`` are normalised images (:func:`calibration_sets`).
    A size that cannot keep ``target`` (default :data:`AGREEMENT_TARGET`) runs
    ``fallback`` (default: the float32 network as given).
    """

    def __init__(
        self,
        model: nn.Module,
        calibration: Sequence[torch.Tensor],
        check: Sequence[torch.Tensor],
        notify: Callable[[str], None] | None = None,
        cache: Path | None = None,
        target: float | None = None,
        fallback: nn.Module | None = None,
    ) -> None:
        super().__init__()
        require_onnxruntime()
        if not calibration or not check:
            raise GcnsegError("int8 needs calibration images: none given")
        # a copy: the caller's model keeps its mode, device and dtype
        self.float_model = copy.deepcopy(model).eval().cpu().float()
        self.fallback = fallback if fallback is not None else self.float_model  # for refused sizes
        self.calibration, self.check = list(calibration), list(check)
        self.notify = notify or notice
        self.cache = cache or cache_dir()
        try:  # an unusable cache is said now, not after minutes of quantising
            self.cache.mkdir(parents=True, exist_ok=True)
            if not os.access(self.cache, os.W_OK):
                raise PermissionError(errno.EACCES, "Permission denied")
        except OSError as e:
            raise GcnsegError(
                f"{self.cache}: the int8 cache (GCNSEG_CACHE) cannot be written ({e.strerror or e})"
            ) from None
        self.num_classes = getattr(model, "num_classes", None)
        self.target = AGREEMENT_TARGET if target is None else target
        self._key = _digest(
            [*self.float_model.state_dict().values(), *self.calibration, *self.check],
            FORMAT,
            _ort_version(),
            self.target,
        )
        self._sessions: dict[tuple[int, int], Any] = {}
        self.records: dict[tuple[int, int], dict[str, Any]] = {}

    def _for_size(self, size: tuple[int, int]) -> Any:
        if size in self._sessions:
            return self._sessions[size]
        if len(self._sessions) >= MAX_SIZES:  # a folder of many sizes: not a quantisation each
            self.notify(f"{size[0]}x{size[1]} inputs run float32 (int8 is made for at most {MAX_SIZES} sizes)")
            self._sessions[size] = None
            return None
        path = self.cache / f"{self._key}-{size[0]}x{size[1]}.onnx"
        with _locked(path.with_suffix(".lock")):  # a second process waits, then reads the entry
            record = _cached(path, size)
            if record is None:
                self.notify(
                    f"quantising for {size[0]}x{size[1]} inputs, calibrated on {len(self.calibration)} training "
                    f"images (once per size; cached in {self.cache})"
                )
                try:
                    record = quantize(
                        self.float_model, size, self.calibration, self.check, path, self.notify, self.target
                    )
                except GcnsegError as e:  # remembered: the next process runs float32 at once
                    record = {"format": FORMAT, "refused": f"{e}"}
                    atomic_write_text(path.with_suffix(".json"), json.dumps(record, indent=1))
            session = None if "refused" in record else _session(path, torch.get_num_threads())
        if session is None:
            self.notify(f"{record['refused']}; this network runs float32 for {size[0]}x{size[1]} inputs")
        else:
            self.notify(
                f"int8 for {size[0]}x{size[1]} inputs: {record['float32_convolutions']} of {record['convolutions']} "
                f"convolutions float32, argmax agreement with float32 {100 * record['agreement']:.2f}% on "
                f"{record['check_images']} validation images"
            )
            self.records[size] = record
        self._sessions[size] = session
        return session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        session = self._for_size((int(x.shape[-2]), int(x.shape[-1])))
        if session is None:
            with torch.inference_mode():
                return self.fallback(x.cpu().float()).to(x.device)
        outs = [session.run(None, {"image": xi[None].cpu().float().contiguous().numpy()})[0] for xi in x]
        return torch.from_numpy(np.concatenate(outs)).to(x.device)


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _cached(path: Path, size: tuple[int, int]) -> dict[str, Any] | None:
    """The record of a complete cache entry for ``size`` (its digest and fields checked), or
    of a refused size; else None (missing, torn or edited: made again)."""
    try:
        record = json.loads(path.with_suffix(".json").read_text())
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            return None
        if isinstance(record.get("refused"), str):
            return record  # a size where int8 did not keep the agreement
        fields_ok = (
            record.get("size") == list(size)
            and all(isinstance(record.get(k), int) for k in ("float32_convolutions", "convolutions", "check_images"))
            and isinstance(record.get("agreement"), float)
            and isinstance(record.get("float32_nodes"), list)
        )
        if fields_ok and record.get("sha256") == file_sha256(path):
            return record
    except (OSError, ValueError):
        pass
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive OS lock on ``path`` while the block runs (released if the process dies)."""
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _spread(dataset: Any, count: int, what: str) -> list[torch.Tensor]:
    n = len(dataset)
    if n < 1:
        raise GcnsegError(f"int8 needs {what} images; the split has none")
    picks = range(n) if n <= count else sorted({round(i * (n - 1) / (count - 1)) for i in range(count)})
    return [dataset[i][0][None].float() for i in picks]


def calibration_sets(data: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The images that quantise a network of ``data`` (a :class:`~gcnseg.config.DataConfig`),
    normalised as evaluation does, spread evenly over their splits: calibration from the
    training split, the agreement check from the validation split (float32 against int8
    predictions: no labels are read)."""
    from .data import build_dataset

    calibration = _spread(build_dataset(data, data.train_split, train=False), CALIBRATION_IMAGES, "calibration")
    check = _spread(build_dataset(data, data.val_split, train=False), CHECK_IMAGES, "check")
    return calibration, check


def export_int8(
    model: nn.Module,
    out: Path,
    size: tuple[int, int],
    data: Any,
    props: dict[str, str],
    target: float | None = None,
    notify: Callable[[str], None] = lambda line: None,
    opset: int = 18,
) -> dict[str, Any]:
    """``model`` quantised for ``size`` (calibrated on the training split of ``data``,
    checked on its validation split) as one ONNX file with ``props`` (the export's
    description, :func:`gcnseg.export.export_metadata`) and the quantisation record in its
    ``metadata_props``; written complete or not at all. Returns the record."""
    import onnx

    calibration, check = calibration_sets(data)
    with tempfile.TemporaryDirectory(prefix="gcnseg-int8-export-") as tmp:
        made = Path(tmp) / "int8.onnx"
        try:
            record = quantize(model, size, calibration, check, made, notify, target, opset)
        except GcnsegError as e:
            raise GcnsegError(f"{e}; {out} not written (--int8-agreement sets the bar)") from None
        proto = onnx.load(str(made))
    h, w = size
    described = {
        **props,
        "input": props["input"].replace("N x 3 x H x W", f"1 x 3 x {h} x {w}").replace(" (any N, H, W)", ""),
        "output": props["output"].replace("N x", "1 x").replace("x H x W", f"x {h} x {w}"),
        "int8": json.dumps({k: v for k, v in record.items() if k != "sha256"}),
    }
    del proto.metadata_props[:]
    for key, value in described.items():
        proto.metadata_props.add(key=key, value=value)
    with atomic_path(out) as tmp_out:
        onnx.save(proto, str(tmp_out))
    return record
