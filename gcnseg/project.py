"""A project on one's own data in one step (``gcnseg init``): the data checked, class
weights computed from the training split, and a config written from a recipe, named
after the data, sized to it, with a comment on each choice.

The config is written as text (YAML with comments), not dumped: a reader sees what each
key does and why it has its value, and loads it back through the same checks as any
config (:func:`gcnseg.config.load_config`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .config import Config, apply_overrides, config_from_dict, config_path, flatten, load_config
from .data import SegmentationDataset, open_dataset
from .data.check import CheckReport, check_dataset
from .data.weights import class_pixels, class_weights
from .errors import GcnsegError

# the training images a fine-tuning recipe sees (camvid_lite0: 40 epochs of CamVid's 367);
# init keeps it, so that a small data set gets more epochs and a large one fewer
IMAGES_SEEN = 15_000
EPOCHS = (5, 300)  # the epoch count is kept within these
VALIDATIONS = 8  # about this many validations over a run

# what each key a project config shows is for (the recipe's values, or init's)
COMMENTS = {
    "name": "the run's name (progress bar, summary.json)",
    "out_dir": "where the run writes: checkpoints, metrics, pictures",
    "model.backbone": "the feature network (Fig. 2A); timm/NAME for any encoder timm builds",
    "model.weights": "imagenet: the ImageNet weights (packaged with gcnseg[pretrained])",
    "model.head": "gcn: the Global Convolutional Network (Fig. 2B); conv1x1 is Table 1's baseline",
    "model.k": "GCN kernel size per stage res-2..res-5 (Section 3.1: large kernels)",
    "model.br": "Boundary Refinement blocks (Fig. 2C)",
    "data.dataset": "a folder of images/ and masks/ (gcnseg.data.folder)",
    "data.root": "the data, as an absolute path",
    "data.train_split": "the split trained on",
    "data.val_split": "the split validated on (the best checkpoint is chosen on it)",
    "data.scale_range": "random rescaling of training images",
    "data.flip": "random horizontal flips in training",
    "data.color_jitter": "random brightness, contrast, saturation, hue of training images",
    "data.blur": "the share of training images blurred (Gaussian, sigma 0.1-2)",
    "data.crop_size": "training crops [height, width] (smaller images are padded first)",
    "data.pad_size": "pad to at least this size before cropping",
    "data.void": "label values that are ignored (not a class)",
    "data.label_map": "label values sent to class ids",
    "data.options": "options of the folder dataset",
    "data.workers": "DataLoader worker processes (0: load in the training process)",
    "optim.name": "the optimiser",
    "optim.lr": "learning rate of the heads",
    "optim.encoder_lr_mult": "the encoder's learning rate as a multiple of optim.lr",
    "optim.weight_decay": "L2 weight decay",
    "optim.schedule": "poly: lr x (1 - step/total)^0.9",
    "optim.warmup_iters": "steps of linear learning-rate warm-up",
    "train.batch_size": "images per step",
    "train.epochs": "passes over the training split",
    "train.val_every": "validate every this many steps",
    "train.checkpoint_every": "save every this many steps (a kill loses at most these)",
    "train.class_weights": "per-class loss weights (class-balanced cross-entropy)",
    "train.ema": "moving average of the weights (decay per step), validated and saved as the model",
    "train.ohem_thresh": "online hard example mining: pixels whose true class is less likely than this",
    "train.amp": "auto: bf16 where the CPU has it natively, else float32",
    "train.threads": "auto: every core this process may use",
    "train.max_minutes": "a time guard: stop cleanly (validated, saved) after this long; null: none",
    "train.log_every": "a log record every this many steps",
    "eval.boundary_width": "the boundary band of Table 5, in pixels",
    "eval.flip": "average with the horizontally flipped image (eval, predict, serve)",
}


@dataclass
class Project:
    """What :func:`init_project` found and wrote."""

    config: Config
    text: str  # the YAML written
    train_images: int
    val_images: int
    reports: dict[str, CheckReport]
    weights: list[float] | None
    datasets: dict[str, SegmentationDataset]  # each split, opened once (the reports name their classes)


def _splits(root: Path) -> dict[str, Any]:
    """The split settings of a folder dataset at ``root``: its own train/val split files or
    folders, else a hashed 90/10 split of ``images/``."""
    if all((root / f"{s}.txt").is_file() or (root / s / "images").is_dir() for s in ("train", "val")):
        return {"data.train_split": "train", "data.val_split": "val"}
    return {"data.train_split": "train", "data.val_split": "val", "data.options.val_fraction": 0.1}


def _crops_for(cfg: Config, train_ds: Any) -> dict[str, Any]:
    """The recipe's crop and pad sizes, made no larger than the smallest training image
    (read from the files' headers): small pictures are not padded out to the recipe's
    crops, whose padding would be most of what the network sees."""
    from .train.state import training_image_sizes

    d = cfg.data
    sizes = [hw for _, hw in training_image_sizes(train_ds)]
    if not sizes or d.crop_size is None:
        return {}
    w, h = min(s[0] for s in sizes), min(s[1] for s in sizes)
    ch, cw = (d.crop_size, d.crop_size) if isinstance(d.crop_size, int) else d.crop_size
    if h >= ch and w >= cw:
        return {}
    crop = [min(ch, h), min(cw, w)]
    return {"data.crop_size": crop, "data.pad_size": crop if d.pad_size is not None else None}


def epochs_for(images: int) -> int:
    """Epochs that show the network about :data:`IMAGES_SEEN` training images."""
    return max(EPOCHS[0], min(EPOCHS[1], math.ceil(IMAGES_SEEN / max(images, 1))))


def init_project(
    root: str | Path, recipe: str = "camvid_lite0", overrides: list[str] | None = None, method: str = "enet"
) -> Project:
    """Check the folder dataset at ``root`` and make a config for it from ``recipe``.
    Nothing is written; a bad file is reported in ``Project.reports`` (and the config made
    all the same, without weights where the training split has bad files)."""
    root = Path(root)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", root.resolve().name).strip("-") or "data"
    recipe_cfg = load_config(recipe)
    if recipe_cfg.data.dataset != "folder":  # another dataset's options (e.g. synthetic-shapes' size)
        recipe_cfg.data.options = {}
    own = {
        "name": f"{name}-{recipe_cfg.name}",
        "out_dir": f"runs/{name}",
        "data.dataset": "folder",
        "data.root": str(root),
        "train.init_from": None,
        **_splits(root),
    }
    given = {item.split("=", 1)[0].strip() for item in overrides or []}  # what the user sets wins
    own = {k: v for k, v in own.items() if not any(k == g or k.startswith(g + ".") for g in given)}
    cfg = apply_overrides(recipe_cfg, overrides, own, source=f"{recipe} for {root}")
    datasets = {s: open_dataset(cfg.data, s) for s in dict.fromkeys((cfg.data.train_split, cfg.data.val_split))}
    reports = {split: check_dataset(ds) for split, ds in datasets.items()}
    sizes = {split: len(ds) for split, ds in datasets.items()}
    train_ds = datasets[cfg.data.train_split]
    weights = None
    if not reports[cfg.data.train_split].bad:
        pixels, present = class_pixels(train_ds)
        weights = [round(w, 4) for w in class_weights(pixels, present, method)]
    n = sizes[cfg.data.train_split]
    epochs = epochs_for(n)
    batch = min(cfg.train.batch_size, n)  # a step needs a whole batch
    steps = max(1, n // batch)
    sized = {
        "train.batch_size": batch,
        "train.epochs": epochs,
        "train.val_every": steps * max(1, epochs // VALIDATIONS),
        "train.class_weights": weights,
        "train.max_minutes": None,
        **_crops_for(cfg, train_ds),
    }
    cfg = apply_overrides(cfg, values={k: v for k, v in sized.items() if k not in given}, source=f"{recipe} for {root}")
    text = config_text(cfg, recipe, config_path(recipe), n, sizes[cfg.data.val_split], method, list(train_ds.classes))
    if config_from_dict(yaml.safe_load(text), "gcnseg init").to_dict() != cfg.to_dict():
        raise GcnsegError("gcnseg init: the config text does not read back as the config (a bug; please report it)")
    return Project(cfg, text, n, sizes[cfg.data.val_split], reports, weights, datasets)


def _flow(value: Any) -> str:
    """A value as one line of YAML."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def config_text(
    cfg: Config, recipe: str, recipe_file: Path, train: int, val: int, method: str, classes: list[str]
) -> str:
    """``cfg`` as commented YAML: the keys the recipe sets or init chose, each with what it
    is for; the recipe's header kept below the project's own."""
    recipe_keys = set(flatten(yaml.safe_load(recipe_file.read_text()) or {}))
    shown = recipe_keys | {
        "name", "out_dir", "data.dataset", "data.root", "data.train_split", "data.val_split", "data.options",
        "train.batch_size", "train.epochs", "train.val_every", "train.class_weights", "train.max_minutes",
    }  # fmt: skip
    values = cfg.to_dict()
    flat = flatten(values)
    shown |= {k for k in ("data.void", "data.label_map") if flat.get(k)}
    header = [
        f"# {cfg.name}: the {recipe} recipe on {cfg.data.root} ({len(classes)} classes: {', '.join(classes)}).",
        f"# Written by gcnseg init: {train} training and {val} validation images, checked;",
        f"# {cfg.train.epochs} epochs, about {IMAGES_SEEN:,} training images seen as the recipe does;",
        f"# class weights from the training split's label frequencies ({method}).",
        "#   gcnseg train --config THIS_FILE      (KEY=VALUE overrides change any key)",
        "#",
        f"# The {recipe} recipe (gcnseg configs {recipe}):",
        *[line for line in recipe_file.read_text().splitlines() if line.startswith("#")],
    ]
    lines = header
    for f in fields(cfg):
        key = f.name
        if isinstance(values[key], dict):
            section = [(k, v) for k, v in values[key].items() if f"{key}.{k}" in shown or _under(f"{key}.{k}", shown)]
            if not section:
                continue
            lines.append(f"{key}:")
            for k, v in section:
                lines.append(_line(f"  {k}: {_flow(v)}", COMMENTS.get(f"{key}.{k}")))
        elif key in shown:
            lines.append(_line(f"{key}: {_flow(values[key])}", COMMENTS.get(key)))
    return "\n".join(lines) + "\n"


def _under(key: str, shown: set[str]) -> bool:
    return any(s.startswith(key + ".") for s in shown)


def _line(text: str, comment: str | None) -> str:
    return f"{text}  # {comment}" if comment else text
