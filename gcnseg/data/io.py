"""Robust reading of images and label masks: every failure is a one-line :class:`DataError`.

Images of any mode (grayscale, RGBA, palette, 16-bit) come back as 8-bit RGB.
Masks come back as ``int64`` class ids: palette PNGs give their indices (VOC),
8- and 16-bit grayscale PNGs give their values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError, absent

IGNORE_INDEX = 255


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def require_dir(path: Path, what: str, hint: str) -> Path:
    """Return ``path`` if it is a folder, else raise ``DataError`` naming ``what`` and where to get it."""
    if not path.is_dir():
        raise DataError(f"{path}: {absent(path, folder=True)}; expected {what} ({hint})")
    return path


def read_listing(path: Path) -> str:
    """A split or list file's text; one that is not UTF-8 is a ``DataError`` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; expected one entry per line") from None


def require_file(path: Path, what: str, hint: str) -> Path:
    """Return ``path`` if it is a file, else raise ``DataError`` naming ``what`` and where to get it."""
    if not path.is_file():
        raise DataError(f"{path}: {absent(path)}; expected {what} ({hint})")
    return path


def _open(path: Path, kind: str) -> Image.Image:
    if not path.is_file():
        raise DataError(f"{path}: {absent(path, missing=f'{kind} file is missing')}")
    img = None
    try:
        img = Image.open(path)
        img.load()  # decode now, so truncated files fail here
    except Image.DecompressionBombError as e:  # more pixels than Pillow agrees to decode
        if img is not None:
            img.close()
        raise DataError(f"{path}: cannot read {kind} (too large: {_first_line(e)})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        if img is not None:
            img.close()
        raise DataError(f"{path}: cannot read {kind} (corrupt or truncated: {_first_line(e)})") from None
    return img


def read_image(path: str | Path, exif: bool = False) -> Image.Image:
    """An RGB ``PIL.Image``; grayscale, RGBA, palette and 16-bit images are converted.
    ``exif``: turned as its EXIF orientation says, as a viewer shows a photo (for
    prediction; a dataset's masks are drawn on the pixels as stored, so training and
    evaluation read them as they are)."""
    path = Path(path)
    img = opened = _open(path, "image")
    if exif:
        from PIL import ImageOps

        img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    rgb = img.convert("RGB")
    if rgb is not opened:
        opened.close()  # the file (an animated GIF keeps it open for its other frames)
    return rgb


def mask_array(img: Image.Image, path: Path) -> np.ndarray:
    """Class ids of a decoded mask image (``int64``, H x W)."""
    if img.mode in ("RGB", "RGBA"):
        arr = np.asarray(img.convert("RGB"))
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise DataError(f"{path}: mask is a colour image; expected single-channel class ids or a palette PNG")
        return arr[..., 0].astype(np.int64)
    if img.mode == "LA":
        return np.asarray(img)[..., 0].astype(np.int64)
    if img.mode == "F":
        arr = np.asarray(img)
        if not np.all(arr == np.round(arr)):
            raise DataError(f"{path}: mask has non-integer values")
    return np.asarray(img).astype(np.int64)  # P, L, 1, I, I;16*


def read_mask(path: str | Path) -> np.ndarray:
    """``int64`` class ids (H x W) of a mask PNG: palette indices or 8/16-bit gray values."""
    path = Path(path)
    return mask_array(_open(path, "mask"), path)


def check_mask(
    mask: np.ndarray,
    image_size: tuple[int, int],
    num_classes: int,
    mask_path: str | Path,
    image_path: str | Path,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """Raise ``DataError`` if ``mask`` does not match the image size or holds labels
    outside ``[0, num_classes)`` and ``ignore_index``; return it unchanged otherwise."""
    w, h = image_size
    if mask.shape != (h, w):
        raise DataError(
            f"{mask_path}: mask size {mask.shape[1]}x{mask.shape[0]} does not match image "
            f"{image_path} size {w}x{h}"
        )
    bad = (mask < 0) | ((mask >= num_classes) & (mask != ignore_index))
    if bad.any():
        values = np.unique(mask[bad])
        shown = ", ".join(str(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
        raise DataError(
            f"{mask_path}: label values {shown} outside [0, {num_classes}) and not the ignore index {ignore_index} "
            f"(data.void=[V] ignores a value, data.label_map={{V: CLASS}} maps one)"
        )
    return mask


def label_lut(void: Sequence[int] = (), label_map: Mapping[int, int] | None = None) -> np.ndarray | None:
    """A look-up table over 16-bit label values: ``void`` values become the ignore index and
    ``label_map`` sends a value to a class id (or to the ignore index, 255); None when both
    are empty. The same table serves check, train, eval and score."""
    if not void and not label_map:
        return None
    lut = np.arange(1 << 16, dtype=np.int64)
    for v in void:
        lut[v] = IGNORE_INDEX
    for v, c in (label_map or {}).items():
        lut[v] = c
    return lut


def apply_lut(mask: np.ndarray, lut: np.ndarray | None) -> np.ndarray:
    """``mask`` with :func:`label_lut`'s table applied (values beyond 16 bits left as they are)."""
    if lut is None:
        return mask
    inside = (mask >= 0) & (mask < len(lut))
    return np.where(inside, lut[np.clip(mask, 0, len(lut) - 1)], mask)
