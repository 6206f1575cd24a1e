"""Pictures a person can look at: colour label maps, overlays, side-by-side panels and
their colour keys (legends)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from .runtime import warn

IGNORE_COLOR = (0, 0, 0)


def colorize(mask: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int = 255) -> np.ndarray:
    """``HxW`` class ids -> ``HxWx3`` uint8 colours; ignored or unknown ids are black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = np.asarray(palette, dtype=np.uint8)[:256]
    if ignore_index < 256:
        lut[ignore_index] = IGNORE_COLOR
    return lut[np.clip(mask, 0, 255).astype(np.intp)]


def label_image(mask: np.ndarray, palette: Sequence[Sequence[int]]) -> Image.Image:
    """A palette ("P" mode) PNG-ready image whose pixel values are the class ids."""
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    flat = [c for rgb in palette for c in rgb][: 256 * 3]
    img.putpalette(flat + [0] * (768 - len(flat)))
    return img


def overlay(
    image: np.ndarray, mask: np.ndarray, palette: Sequence[Sequence[int]], alpha: float = 0.5, ignore_index: int = 255
) -> np.ndarray:
    """Blend the colour label map over the RGB image (ignored pixels keep the image)."""
    color = colorize(mask, palette, ignore_index).astype(np.float32)
    out = image.astype(np.float32)
    keep = (mask == ignore_index)[..., None]
    blended = (1 - alpha) * out + alpha * color
    return np.where(keep, out, blended).round().astype(np.uint8)


def panel(images: Sequence[np.ndarray], titles: Sequence[str], gap: int = 4) -> Image.Image:
    """Images of one height side by side, each with a title strip above it."""
    h = max(im.shape[0] for im in images)
    w = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    strip = 16
    canvas = Image.new("RGB", (w, h + strip), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for im, title in zip(images, titles):
        canvas.paste(Image.fromarray(im), (x, strip))
        draw.text((x + 3, 2), title, fill=(0, 0, 0))
        x += im.shape[1] + gap
    return canvas


SWATCH, ROW, PAD, SPACING = 12, 16, 4, 14  # legend geometry (pixels): swatch side, row height, margin, between entries
FEW_CLASSES = 12  # up to this many classes a legend lists them all (CamVid's 11); more: those in the picture


def legend(
    classes: Sequence[str],
    palette: Sequence[Sequence[int]],
    present: Iterable[int] | None = None,
    width: int | None = None,
) -> Image.Image:
    """A colour key: a swatch of the class's exact palette colour and its name, per class.

    ``present``: the class ids to list (ids without a name or colour are left out); None:
    every class. ``width``: the strip's width, entries wrapping onto more rows (None: one
    row as wide as the entries). Drawn with PIL's default font: nothing to download."""
    known = min(len(classes), len(palette))
    ids = list(range(known)) if present is None else [int(c) for c in present if 0 <= int(c) < known]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    placed: list[tuple[int, int, int]] = []  # (class id, x, y)
    x, y, right = PAD, 0, 2 * PAD
    for c in ids:
        w = SWATCH + 4 + math.ceil(probe.textlength(str(classes[c]))) + SPACING
        if width is not None and x > PAD and x + w > width:
            x, y = PAD, y + ROW
        placed.append((c, x, y))
        x += w
        right = max(right, x)
    size = (right if width is None else max(width, right), y + ROW + 2)  # (wider only for a name wider than width)
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for c, x, y in placed:
        top = y + (ROW - SWATCH) // 2 + 1
        color = tuple(int(v) for v in palette[c])
        draw.rectangle([x, top, x + SWATCH - 1, top + SWATCH - 1], fill=color, outline=(0, 0, 0))
        draw.text((x + SWATCH + 4, y + 2), str(classes[c]), fill=(0, 0, 0))
    return img


def shown_classes(masks: Iterable[np.ndarray], num_classes: int, few: int = FEW_CLASSES) -> list[int] | None:
    """The class ids a picture's legend lists: None (every class) when there are at most
    ``few``, else those that occur in ``masks`` (ignored and unknown ids left out), sorted."""
    if num_classes <= few:
        return None
    seen: set[int] = set()
    for m in masks:
        seen.update(int(v) for v in np.unique(m))
    return sorted(c for c in seen if 0 <= c < num_classes)


def with_legend(
    picture: Image.Image,
    classes: Sequence[str],
    palette: Sequence[Sequence[int]],
    present: Iterable[int] | None = None,
) -> Image.Image:
    """``picture`` with its :func:`legend` under it (as wide as the picture). A legend that
    cannot be drawn is a warning, never a lost picture: the picture comes back as it was."""
    try:
        key = legend(classes, palette, present, width=picture.width)
        out = Image.new("RGB", (max(picture.width, key.width), picture.height + key.height), (255, 255, 255))
        out.paste(picture.convert("RGB"), (0, 0))
        out.paste(key, (0, picture.height))
        return out
    except Exception as e:  # a picture without its key beats no picture
        warn(f"could not draw the legend ({e})")
        return picture
