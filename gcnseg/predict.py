"""``gcnseg predict``: segment any images and write pictures a person can look at.

For each input image ``NAME``: ``OUT/labels/NAME.png`` (class ids in a palette
PNG with the dataset's colours; ``gcnseg score OUT/labels GT_DIR`` scores them),
``OUT/overlays/NAME.png`` (colours over the image) and ``OUT/side/NAME.png``
(image | prediction | overlay). Sub-folders of input folders are mirrored. A photo is
turned as its EXIF orientation says, as a viewer shows it. An
unreadable file is reported and skipped; the rest go on. Inputs are never
overwritten.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .cli import add_checkpoint_arguments
from .errors import DataError, GcnsegError
from .runtime import atomic_path

if TYPE_CHECKING:
    from .config import Config

KINDS = {"label": "labels", "overlay": "overlays", "side": "side"}  # picture -> output sub-folder
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


def find_images(inputs: list[str], skip: Path | None = None) -> list[tuple[Path, Path]]:
    """``(file, output sub-folder)``: files as given, folders searched recursively
    (sorted) with their sub-folders mirrored in the output; nothing inside ``skip`` (the
    output folder, which may lie inside an input folder) is taken from a folder."""
    found: list[tuple[Path, Path]] = []
    skip = skip.resolve() if skip is not None else None
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found += [
                (f, f.parent.relative_to(p))
                for f in sorted(p.rglob("*"))
                if f.is_file()
                and f.suffix.lower() in IMAGE_SUFFIXES
                and (skip is None or not f.resolve().is_relative_to(skip))
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
    from .inference import predict_scores

    ev = cfg.eval
    x = to_input(rgb, cfg.data.mean, cfg.data.std).to(device)
    one_pass = list(ev.scales) == [1.0] and not ev.flip and ev.tile is None and ev.pad_size is None
    with torch.inference_mode():
        if one_pass and not ev.crf:  # the argmax of the logits is the softmax's, without the softmax
            return model(x).argmax(1)[0].cpu().numpy()
        probs = predict_scores(
            model, x, scales=tuple(ev.scales), flip=ev.flip, tile=ev.tile, overlap=ev.tile_overlap, pad=ev.pad_size
        )
    if ev.crf:
        from .crf import dense_crf

        return dense_crf(rgb, probs[0].float().cpu().numpy())
    return probs.argmax(1)[0].cpu().numpy()


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint_arguments(p)
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="images or folders (searched recursively), and KEY=VALUE overrides of the checkpoint's config",
    )
    p.add_argument("--out", required=True, help="output folder")
    # shorthands for overrides of the checkpoint's config
    p.add_argument("--ms", action="store_true", help="eval.scales=[0.5, ..., 1.75]: multi-scale testing")
    p.add_argument("--flip", action="store_true", help="eval.flip=true: average with the horizontally flipped image")
    p.add_argument(
        "--crf", action="store_true", help="eval.crf=true: dense CRF post-processing (pip install 'gcnseg[crf]')"
    )
    p.add_argument("--tile", type=int, help="eval.tile: sliding-window tile size for large images")
    p.add_argument("--device", default="auto")
    p.add_argument("--eager", action="store_true", help="run the plain model, not the optimised inference path")


def run(args: argparse.Namespace) -> int:
    from .checkpoint import load_model
    from .config import apply_overrides, given, split_overrides
    from .data.io import read_image
    from .inference import DEFAULT_MS_SCALES
    from .runtime import check_output, resolve_device
    from .visualize import colorize, label_image, overlay, panel

    overrides, inputs_given = split_overrides(args.inputs)
    if not inputs_given:
        raise GcnsegError("no INPUT given: name image files or folders to segment")
    out = check_output(args.out, "--out", folder=True)
    files = find_images(inputs_given, skip=out)
    if not files:
        raise GcnsegError(f"no image in {', '.join(inputs_given)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    model, cfg, meta = load_model(args.checkpoint)
    cfg = apply_overrides(
        cfg,
        overrides,
        given(
            {
                "eval.scales": list(DEFAULT_MS_SCALES) if args.ms else None,
                "eval.flip": args.flip or None,
                "eval.crf": args.crf or None,
                "eval.tile": args.tile or None,
            }
        ),
    )
    ev = cfg.eval
    device = resolve_device(args.device)
    model.to(device)  # before optimising: "auto" precision is bf16 on CPU only
    if not args.eager:
        from .optimize import optimize_for_inference

        model = optimize_for_inference(model)
    if ev.crf:
        from .crf import require_crf

        require_crf()
    out.mkdir(parents=True, exist_ok=True)
    inputs = {f.resolve() for f, _ in files}
    written: set[Path] = set()
    palette = [tuple(c) for c in meta["palette"]]
    failed = 0
    for f, sub in files:
        try:
            rgb = np.asarray(read_image(f, exif=True))
        except DataError as e:
            print(f"gcnseg: skipped {e}", file=sys.stderr)
            failed += 1
            continue
        stem, n = f.stem, 1
        while (out / "side" / sub / f"{stem}.png").resolve() in written:  # same name from two places
            n += 1
            stem = f"{f.stem}-{n}"
        targets = {kind: out / folder / sub / f"{stem}.png" for kind, folder in KINDS.items()}
        clash = [t for t in targets.values() if t.resolve() in inputs]
        if clash:
            print(f"gcnseg: skipped {f}: output {clash[0]} would overwrite an input", file=sys.stderr)
            failed += 1
            continue
        written |= {t.resolve() for t in targets.values()}
        pred = segment(model, rgb, cfg, device)
        for t in targets.values():
            t.parent.mkdir(parents=True, exist_ok=True)
        over = overlay(rgb, pred, palette)
        _save(label_image(pred, palette), targets["label"])
        _save_array(over, targets["overlay"])
        _save(panel([rgb, colorize(pred, palette), over], ["image", "prediction", "overlay"]), targets["side"])
        print(f"{f} -> {targets['side']}")
    print(f"{len(files) - failed} of {len(files)} images written to {out}" + (f", {failed} skipped" if failed else ""))
    return 1 if failed and failed == len(files) else 0


def _save(img, path: Path) -> None:
    """Write through a temporary file so that a kill never leaves half a picture."""
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def _save_array(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    _save(Image.fromarray(arr), path)
