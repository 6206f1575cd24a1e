"""Prediction: segment any images and write pictures a person can look at.

For each input image ``NAME``: ``OUT/labels/NAME.png`` (class ids in a palette
PNG with the dataset's colours; ``gcnseg score OUT/labels GT_DIR`` scores them),
``OUT/overlays/NAME.png`` (colours over the image) and ``OUT/side/NAME.png``
(image | prediction | overlay). Sub-folders of input folders are mirrored. A photo is
turned as its EXIF orientation says, as a viewer shows it. An
unreadable file is reported and skipped; the rest go on (the command then exits 1). Inputs are never
overwritten.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import DataError, GcnsegError
from .runtime import atomic_path, hidden

if TYPE_CHECKING:
    from .config import Config

KINDS = {"label": "labels", "overlay": "overlays", "side": "side"}  # picture -> output sub-folder
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


def find_images(inputs: list[str]) -> list[tuple[Path, Path]]:
    """``(file, output sub-folder)``: files as given, folders searched recursively
    (sorted) with their sub-folders mirrored in the output. Hidden files and folders in a
    searched folder are not images of it (``.git/``, a Mac's ``._name.png``), as ``serve`` sees it."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found += [
                (f, f.parent.relative_to(p))
                for f in sorted(p.rglob("*"))
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not hidden(f, p)
            ]
        elif p.exists():
            found.append((p, Path()))
        else:
            raise GcnsegError(f"{p}: no such file or folder")
    return found


def to_input(image: np.ndarray, mean, std) -> torch.Tensor:
    """``HxWx3`` uint8 -> normalised ``1x3xHxW`` float (mean subtraction, Section 4)."""
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255)
    return ((x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1))[None]


def segment(
    model: Callable[[torch.Tensor], torch.Tensor], rgb: np.ndarray, cfg: Config, device: torch.device
) -> np.ndarray:
    """Class ids ``HxW`` of one ``HxWx3`` uint8 image, with the test-time options of
    ``cfg.eval``: scales and flip (the "-MS" rows of Table 7), sliding window, dense CRF."""
    return segment_scores(model, rgb, cfg, device, keep_scores=False)[0]


def segment_scores(
    model: Callable[[torch.Tensor], torch.Tensor],
    rgb: np.ndarray,
    cfg: Config,
    device: torch.device,
    keep_scores: bool = True,
) -> tuple[np.ndarray, torch.Tensor | None]:
    """:func:`segment`'s class ids and the softmax scores ``C x H x W`` (CPU, float32) they
    are the argmax of (before the CRF, where ``cfg.eval.crf``); None unless ``keep_scores``."""
    from .inference import predict_scores

    ev = cfg.eval
    x = to_input(rgb, cfg.data.mean, cfg.data.std).to(device)
    one_pass = list(ev.scales) == [1.0] and not ev.flip and ev.tile is None and ev.pad_size is None
    with torch.inference_mode():
        if one_pass and not ev.crf:  # the argmax of the logits is the softmax's, without the softmax
            logits = model(x)
            scores = logits[0].float().softmax(0).cpu() if keep_scores else None
            return logits.argmax(1)[0].cpu().numpy(), scores
        probs = predict_scores(
            model, x, scales=tuple(ev.scales), flip=ev.flip, tile=ev.tile, overlap=ev.tile_overlap, pad=ev.pad_size
        )
    scores = probs[0].float().cpu() if keep_scores else None
    if ev.crf:
        from .crf import dense_crf

        return dense_crf(rgb, probs[0].float().cpu().numpy()), scores
    return probs.argmax(1)[0].cpu().numpy(), scores


def write_predictions(
    model: Callable[[torch.Tensor], torch.Tensor],
    cfg: Config,
    palette: list[tuple[int, int, int]],
    files: list[tuple[Path, Path]],
    out: Path,
    device: torch.device,
    classes: list[str] | None = None,
    report: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Segment each ``(file, output sub-folder)`` of :func:`find_images` and write its
    pictures under ``out``; one record per file (``written`` or ``skipped`` with why).
    ``report`` is told a line per file."""
    from .data.io import read_image
    from .visualize import colorize, label_image, overlay, panel, shown_classes, with_legend

    if cfg.eval.crf:
        from .crf import require_crf

        require_crf()
    out.mkdir(parents=True, exist_ok=True)
    inputs = {f.resolve() for f, _ in files}
    written: set[Path] = set()
    records: list[dict[str, Any]] = []
    for f, sub in files:
        try:
            rgb = np.asarray(read_image(f, exif=True))
        except DataError as e:
            print(f"gcnseg: skipped {e}", file=sys.stderr)
            records.append({"input": str(f), "skipped": str(e)})
            continue
        stem, n = f.stem, 1
        while (out / "side" / sub / f"{stem}.png").resolve() in written:  # same name from two places
            n += 1
            stem = f"{f.stem}-{n}"
        targets = {kind: out / folder / sub / f"{stem}.png" for kind, folder in KINDS.items()}
        clash = [t for t in targets.values() if t.resolve() in inputs]
        if clash:
            why = f"output {clash[0]} would overwrite an input"
            print(f"gcnseg: skipped {f}: {why}", file=sys.stderr)
            records.append({"input": str(f), "skipped": why})
            continue
        written |= {t.resolve() for t in targets.values()}
        pred = segment(model, rgb, cfg, device)
        for t in targets.values():
            t.parent.mkdir(parents=True, exist_ok=True)
        over = overlay(rgb, pred, palette)
        _save_array(over, targets["overlay"])
        side = panel([rgb, colorize(pred, palette), over], ["image", "prediction", "overlay"])
        names = [classes[c] if classes and c < len(classes) else str(c) for c in range(len(palette))]
        side = with_legend(side, names, palette, shown_classes([pred], len(palette)))
        _save(side, targets["side"])
        _save(label_image(pred, palette), targets["label"])  # last: a label map means its pictures are there
        counts = np.bincount(pred.ravel(), minlength=len(palette))
        records.append(
            {
                "input": str(f),
                **{kind: str(t) for kind, t in targets.items()},
                "height": int(pred.shape[0]),
                "width": int(pred.shape[1]),
                "class_share": {
                    (classes[c] if classes else str(c)): round(float(counts[c]) / pred.size, 6)
                    for c in np.flatnonzero(counts)
                },
            }
        )
        report(f"{f} -> {targets['side']}")
    return records


def _save(img, path: Path) -> None:
    """Write through a temporary file so that a kill never leaves half a picture."""
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def _save_array(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    _save(Image.fromarray(arr), path)
