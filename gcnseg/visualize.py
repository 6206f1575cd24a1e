"""Pictures a person can look at: colour label maps, overlays, side-by-side panels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

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


def legend(classes: Sequence[str], palette: Sequence[Sequence[int]], width: int = 160) -> Image.Image:
    """A colour key: one swatch and name per class."""
    row = 14
    img = Image.new("RGB", (width, row * len(classes) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for i, (name, rgb) in enumerate(zip(classes, palette)):
        draw.rectangle([3, 2 + i * row, 14, 12 + i * row], fill=tuple(int(c) for c in rgb), outline=(0, 0, 0))
        draw.text((20, 2 + i * row), name, fill=(0, 0, 0))
    return img
