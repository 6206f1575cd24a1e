"""A generic folder dataset for users' own data.

Layout::

    ROOT/images/<stem>.<jpg|png|...>     ROOT/masks/<stem>.png   (class ids, 8/16-bit or palette)
    ROOT/classes.txt                     one class per line: its name, optionally its colour
                                         (``road 128 64 128`` or ``road #804080``)
    ROOT/<split>.txt                     optional: the stems of a split

A split is ``ROOT/<split>.txt`` if present, else ``ROOT/<split>/images`` +
``ROOT/<split>/masks`` if present; the split ``all`` is every image of
``ROOT/images``; without split files, the option ``val_fraction`` (e.g. 0.1) makes
``train`` and ``val`` from ``ROOT/images`` by a hash of each stem (the same split on
every machine, and an image keeps its side when others are added). Masks are matched by stem; 255 is ignored, and other values are
mapped with ``data.void`` / ``data.label_map`` (e.g. ``data.void=[11]``). Without
colours in ``classes.txt``, the classes get :func:`~gcnseg.data.base.distinct_palette`
(no class is black).
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError
from ..runtime import hidden
from .base import FileSegmentation, distinct_palette
from .io import read_listing, require_dir, require_file

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
MASK_EXTS = (".png", ".tif", ".tiff", ".bmp", ".pgm")
FOLDER_HINT = "ROOT/images/, ROOT/masks/ with matching stems, and ROOT/classes.txt"


def read_classes(path: Path) -> tuple[list[str], list[tuple[int, int, int]] | None]:
    """Class names and, where every line gives one, colours from a ``classes.txt``."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; expected one class name per line") from None
    names: list[str] = []
    colours: list[tuple[int, int, int] | None] = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        # a colour is the line's last word (#RRGGBB) or last three (R G B); a name may hold spaces
        digits = len(parts) - next((i + 1 for i, w in reversed(list(enumerate(parts))) if not w.isdigit()), 0)
        tail = [] if len(parts) == 1 else parts[-1:] if parts[-1].startswith("#") else parts[len(parts) - digits :]
        colour = _colour(tail) if tail else None
        if (tail and colour is None) or len(tail) == len(parts):
            raise DataError(f"{path}:{n}: expected 'NAME', 'NAME R G B' or 'NAME #RRGGBB', got {line.strip()!r}")
        name = " ".join(parts[: len(parts) - len(tail)])
        # two classes of one name or colour: the reports or the pictures could not tell them apart
        if name in names:
            raise DataError(f"{path}:{n}: {name!r} names two classes")
        if colour is not None and colour in colours:
            raise DataError(f"{path}:{n}: {name!r} has the colour of {names[colours.index(colour)]!r} {colour}")
        names.append(name)
        colours.append(colour)
    if any(c is not None for c in colours) and not all(c is not None for c in colours):
        raise DataError(f"{path}: give a colour on every line or on none")
    return names, (None if colours and colours[0] is None else [c for c in colours if c is not None])


def _colour(words: list[str]) -> tuple[int, int, int] | None:
    """``["#804080"]`` or ``["128", "64", "128"]`` as an RGB triple; None if not a colour."""
    try:
        if len(words) == 1 and words[0].startswith("#") and len(words[0]) == 7:
            return int(words[0][1:3], 16), int(words[0][3:5], 16), int(words[0][5:7], 16)
        if len(words) == 3 and all(0 <= int(w) <= 255 for w in words):
            return int(words[0]), int(words[1]), int(words[2])
    except ValueError:
        pass
    return None


def _share(stem: str) -> float:
    """Where a stem falls in [0, 1): a hash, the same on every machine and Python."""
    return int(hashlib.sha1(os.fsencode(stem)).hexdigest()[:8], 16) / 16**8


def hashed_split(stems: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """``(train, val)``: a stem is in val when its hash share is below ``val_fraction``;
    each side keeps at least one stem when there are two (the lowest share goes to val)."""
    val = {s for s in stems if _share(s) < val_fraction}
    if len(stems) > 1 and not val:
        val = {min(stems, key=_share)}
    if len(stems) > 1 and len(val) == len(stems):
        val.discard(max(stems, key=_share))
    return [s for s in stems if s not in val], [s for s in stems if s in val]


def _by_stem(folder: Path, exts: Sequence[str]) -> dict[str, Path]:
    """The files of ``folder`` with one of ``exts``, by stem; hidden ones (a Mac's ``._a.png``) are none."""
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in exts and not hidden(p, folder)
    }


class Folder(FileSegmentation):
    """``images/`` + ``masks/`` with matching stems and a class list (see module docstring).

    Args:
        root: the dataset folder.
        split: a split name (see module docstring).
        classes: class names; default ``ROOT/classes.txt``.
        palette: one RGB triple per class; default the colours of ``classes.txt``, else
            :func:`~gcnseg.data.base.distinct_palette`.
    """

    def __init__(
        self,
        root: str | Path | None,
        split: str = "all",
        classes: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        val_fraction: float | None = None,
    ) -> None:
        if root is None:
            raise DataError(f"folder: no root given; expected {FOLDER_HINT}")
        root = require_dir(Path(root), "a dataset folder", FOLDER_HINT)
        if classes is None:
            names = require_file(root / "classes.txt", "one class name per line", "or data.options.classes")
            classes, listed = read_classes(names)
            palette = palette if palette is not None else listed
        if not 1 <= len(classes) <= 255:
            raise DataError(f"{root}: need 1 to 255 classes, got {len(classes)}")
        self.classes = list(classes)
        if palette is not None and len(palette) != len(self.classes):
            raise DataError(f"folder: palette has {len(palette)} colours for {len(self.classes)} classes")
        self.palette = [(int(c[0]), int(c[1]), int(c[2])) for c in palette] if palette is not None else distinct_palette(len(classes))

        base = root
        stems: list[str] | None = None
        if (root / f"{split}.txt").is_file():
            stems = [s.strip() for s in read_listing(root / f"{split}.txt").splitlines() if s.strip()]
        elif (root / split / "images").is_dir():
            base = root / split
        elif val_fraction is not None and split in ("train", "val"):
            other = "val" if split == "train" else "train"
            if (root / f"{other}.txt").is_file() or (root / other / "images").is_dir():  # half listed: they may overlap
                raise DataError(
                    f"{root}: has a {other} split but no {split}.txt or {split}/images/; give both splits or neither "
                    f"(data.options.val_fraction={val_fraction} splits images/ when there are none)"
                )
            if not 0 < val_fraction < 1:
                raise DataError(f"folder: val_fraction must lie between 0 and 1, got {val_fraction}")
            everything = _by_stem(require_dir(root / "images", "an images/ folder", FOLDER_HINT), IMAGE_EXTS)
            stems = hashed_split(list(everything), val_fraction)[split == "val"]
        elif split != "all":
            raise DataError(
                f"{root}: split {split!r} not found; expected {split}.txt or {split}/images/ "
                "(or the split 'all', or data.options.val_fraction=0.1 for train and val)"
            )
        image_dir = require_dir(base / "images", "an images/ folder", FOLDER_HINT)
        self.mask_dir = require_dir(base / "masks", "a masks/ folder", FOLDER_HINT)
        images, masks = _by_stem(image_dir, IMAGE_EXTS), _by_stem(self.mask_dir, MASK_EXTS)
        if stems is None:
            stems = list(images)
        samples = []
        for s in stems:  # a listed stem without image is reported when loaded, as a missing file
            samples.append((images.get(s, image_dir / s), masks.get(s)))
        if not samples:
            raise DataError(f"{image_dir}: no images ({', '.join(IMAGE_EXTS)})")
        super().__init__(samples)

    def missing_mask(self, index: int) -> str:
        image = self.samples[index][0]
        lossy = sorted(
            p.name
            for p in self.mask_dir.glob(f"{glob.escape(image.stem)}.*")
            if p.stem == image.stem and p.suffix.lower() in (".jpg", ".jpeg", ".webp")
        )
        if lossy:  # (JPEG changes the class ids at the borders)
            return f"{self.mask_dir / lossy[0]}: a mask must be {', '.join(MASK_EXTS)} (lossless), not {Path(lossy[0]).suffix}"
        return f"{image}: missing mask (no file with this stem in {self.mask_dir})"
