"""Evaluation (Section 4): mean IoU from a confusion matrix accumulated image by
image, boundary vs internal accuracy (Table 5), and the test-time methods of
Tables 7 and 9 (multi-scale, flip, dense CRF, sliding window); ``gcnseg eval``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .cli import add_checkpoint_arguments, positive_int
from .config import EvalConfig
from .data import TransformedDataset
from .models.encoders import IMAGENET_MEAN, IMAGENET_STD
from .runtime import rank_world


def _denormalize(image: torch.Tensor, mean, std) -> np.ndarray:
    """Normalised ``3xHxW`` tensor back to ``HxWx3`` uint8 (for CRF and pictures)."""
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    return (image.cpu() * s + m).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    dataset: TransformedDataset,
    cfg: EvalConfig,
    device: torch.device | str = "cpu",
    num_classes: int | None = None,
    ignore_index: int = 255,
    show_progress: bool = True,
    amp_dtype: torch.dtype | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> dict[str, Any]:
    """Score ``model`` on every image of ``dataset`` (items: normalised image, mask).

    Under ``torch.distributed`` each process takes every world-th image and the
    confusion matrices are summed across processes.
    """
    from tqdm import tqdm

    from .inference import predict_scores
    from .metrics import SegMetrics

    device = torch.device(device)
    num_classes = num_classes or dataset.num_classes
    was_training = model.training
    model.eval()
    rank, world = rank_world()
    metrics = SegMetrics(num_classes, ignore_index, cfg.boundary_width)
    crf: Callable[..., np.ndarray] | None = None
    if cfg.crf:
        from .crf import dense_crf

        crf = dense_crf
    indices = range(rank, len(dataset), world)
    for i in tqdm(indices, disable=not (show_progress and rank == 0), desc="eval", unit="img", mininterval=1.0):
        image, mask = dataset[i]
        with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext():
            probs = predict_scores(
                model,
                image[None].to(device),
                scales=tuple(cfg.scales),
                flip=cfg.flip,
                tile=cfg.tile,
                overlap=cfg.tile_overlap,
                pad=cfg.pad_size,
            )
        if crf is not None:
            pred = torch.from_numpy(crf(_denormalize(image, mean, std), probs[0].float().cpu().numpy())).long()[None]
        else:
            pred = probs.argmax(1).cpu()
        metrics.update(pred, mask[None])
    if world > 1:
        metrics.all_reduce()
    model.train(was_training)
    return metrics.compute()


@torch.inference_mode()
def write_previews(
    model: nn.Module, dataset: TransformedDataset, out_dir: Path, n: int, device: torch.device | str = "cpu"
) -> Path:
    """Side-by-side pictures (image | ground truth | prediction | overlay) of the first ``n`` images."""
    from .inference import predict_scores
    from .visualize import colorize, overlay, panel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    palette = dataset.palette
    for i in range(min(n, len(dataset))):
        image, _ = dataset[i]
        picture, mask = dataset.load(i)
        rgb = np.asarray(picture.convert("RGB"))
        pred = predict_scores(model, image[None].to(device)).argmax(1)[0].cpu().numpy()
        if pred.shape != mask.shape:  # evaluation resize: draw at the network's size
            from PIL import Image

            size = (pred.shape[1], pred.shape[0])
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
            mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize(size, Image.Resampling.NEAREST))
        pic = panel(
            [rgb, colorize(mask, palette), colorize(pred, palette), overlay(rgb, pred, palette)],
            ["image", "ground truth", "prediction", "overlay"],
        )
        pic.save(out_dir / f"{i:03d}_{dataset.name(i)}.png")
    model.train(was_training)
    return out_dir


# ----------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint_arguments(p)
    # shorthands for overrides of the checkpoint's config
    p.add_argument("--data", dest="dataset", help="data.dataset (default: the checkpoint's)")
    p.add_argument("--root", help="data.root (default: the checkpoint's)")
    p.add_argument("--split", default=None, help="data.val_split: the split to evaluate (default: the config's)")
    p.add_argument("--ms", action="store_true", help="eval.scales=[0.5, ..., 1.75]: multi-scale testing (Table 7)")
    p.add_argument("--scales", type=float, nargs="+", help="eval.scales: explicit test scales")
    p.add_argument("--flip", action="store_true", help="eval.flip=true: average with the horizontally flipped image")
    p.add_argument(
        "--crf", action="store_true", help="eval.crf=true: dense CRF post-processing (pip install 'gcnseg[crf]')"
    )
    p.add_argument("--tile", type=int, nargs="+", help="eval.tile: sliding-window tile size (H [W])")
    p.add_argument("--boundary-width", type=int, help="eval.boundary_width: boundary band in pixels (Table 5: 7)")
    p.add_argument("--device", default="auto")
    p.add_argument("--eager", action="store_true", help="run the plain model, not the optimised inference path")
    p.add_argument("--json", dest="json_out", help="also write the result to this JSON file")
    p.add_argument("--limit", type=positive_int, help="only the first N images")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.eval_size=256")


def run(args: argparse.Namespace) -> int:
    from .checkpoint import load_model
    from .config import apply_overrides, given
    from .data import build_dataset
    from .errors import GcnsegError
    from .inference import DEFAULT_MS_SCALES
    from .metrics import format_metrics
    from .runtime import atomic_write_text, check_output, resolve_device

    if args.json_out:
        check_output(args.json_out, "--json")
    model, cfg, meta = load_model(args.checkpoint)
    tile = None if not args.tile else args.tile[0] if len(args.tile) == 1 else args.tile[:2]
    cfg = apply_overrides(
        cfg,
        args.overrides,
        given(
            {
                "data.dataset": args.dataset,
                "data.root": args.root,
                "data.val_split": args.split,
                "eval.scales": args.scales or (list(DEFAULT_MS_SCALES) if args.ms else None),
                "eval.flip": args.flip or None,
                "eval.crf": args.crf or None,
                "eval.tile": tile,
                "eval.boundary_width": args.boundary_width,
            }
        ),
    )
    e = cfg.eval
    if e.crf:
        from .crf import require_crf

        require_crf()
    split = cfg.data.val_split
    dataset = build_dataset(cfg.data, split, train=False)
    if dataset.num_classes != meta["num_classes"]:
        raise GcnsegError(
            f"{args.checkpoint}: model has {meta['num_classes']} classes, dataset {cfg.data.dataset} has {dataset.num_classes}"
        )
    if args.limit:
        dataset = _Head(dataset, args.limit)
    device = resolve_device(args.device)
    if not args.eager:
        from .optimize import optimize_for_inference

        model = optimize_for_inference(model.to(device))  # on its device: "auto" precision is bf16 on CPU only
    result = evaluate(
        model.to(device),
        dataset,
        e,
        device,
        meta["num_classes"],
        cfg.data.ignore_index,
        mean=cfg.data.mean or IMAGENET_MEAN,
        std=cfg.data.std or IMAGENET_STD,
    )
    print(format_metrics(result, meta.get("classes")))
    if args.json_out:
        out = {
            "checkpoint": str(args.checkpoint),
            "dataset": cfg.data.dataset,
            "split": split,
            "scales": e.scales,
            "flip": e.flip,
            "crf": e.crf,
            "images": len(dataset),
            **{k: v for k, v in result.items() if k != "matrix"},
        }
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.json_out), json.dumps(out, indent=2, default=_jsonable))
        print(f"written {args.json_out}")
    return 0


def _jsonable(x):
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x))


class _Head(TransformedDataset):
    """The first ``n`` items of a dataset (``eval --limit``)."""

    def __init__(self, dataset: TransformedDataset, n: int) -> None:
        super().__init__(dataset.base, dataset.transform, dataset.ignore_index)
        self.n = min(n, len(dataset))

    def __len__(self) -> int:
        return self.n
