"""Evaluation (Section 4): mean IoU from a confusion matrix accumulated image by
image, boundary vs internal accuracy (Table 5), and the test-time methods of
Tables 7 and 9 (multi-scale, flip, dense CRF, sliding window)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import EvalConfig
from .data import TransformedDataset
from .normalisation import IMAGENET_MEAN, IMAGENET_STD
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
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Score ``model`` on every image of ``dataset`` (items: normalised image, mask).

    Under ``torch.distributed`` each process takes every world-th image and the
    confusion matrices are summed across processes.
    """
    from tqdm import tqdm

    from .inference import predict_scores
    from .metrics import SegMetrics

    device = torch.device(device)
    mean, std = mean or IMAGENET_MEAN, std or IMAGENET_STD  # the inputs' normalisation (for the CRF's image)
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
    model: nn.Module,
    dataset: TransformedDataset,
    out_dir: Path,
    n: int,
    device: torch.device | str = "cpu",
    on_picture: Callable[[str, np.ndarray], None] | None = None,
) -> Path:
    """Side-by-side pictures (image | ground truth | prediction | overlay) of the first ``n``
    images, with a colour key of the classes in the ground truth and the prediction (of all
    classes when they are few). ``on_picture(name, picture)`` is told each picture written
    (``HxWx3`` uint8: the training log adds them to TensorBoard)."""
    from PIL import Image

    from .inference import predict_scores
    from .visualize import colorize, overlay, panel, shown_classes, with_legend

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
            size = (pred.shape[1], pred.shape[0])
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
            mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize(size, Image.Resampling.NEAREST))
        pic = panel(
            [rgb, colorize(mask, palette), colorize(pred, palette), overlay(rgb, pred, palette)],
            ["image", "ground truth", "prediction", "overlay"],
        )
        pic = with_legend(pic, dataset.classes, palette, shown_classes([mask, pred], dataset.num_classes))
        name = f"{i:03d}_{dataset.name(i)}"
        pic.save(out_dir / f"{name}.png")
        if on_picture is not None:
            on_picture(name, np.asarray(pic))
    model.train(was_training)
    return out_dir


class FirstN(TransformedDataset):
    """The first ``n`` items of a dataset (``gcnseg eval --limit``)."""

    def __init__(self, dataset: TransformedDataset, n: int) -> None:
        super().__init__(dataset.base, dataset.transform, dataset.ignore_index)
        self.n = min(n, len(dataset))

    def __len__(self) -> int:
        return self.n
