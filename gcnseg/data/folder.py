"""A generic folder dataset for users' own data.

Layout::

    ROOT/images/<stem>.<jpg|png|...>     ROOT/masks/<stem>.png   (class ids, 8/16-bit or palette)
    ROOT/classes.txt                     one class name per line (or the ``classes`` option)
    ROOT/<split>.txt                     optional: the stems of a split

A split is ``ROOT/<split>.txt`` if present, else ``ROOT/<split>/images`` +
``ROOT/<split>/masks`` if present; the split ``all`` is every image of
``ROOT/images``. Masks are matched by stem; 255 is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError
from .base import FileSegmentation, color_map
from .io import require_dir

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
MASK_EXTS = (".png", ".tif", ".tiff", ".bmp", ".pgm")
FOLDER_HINT = "ROOT/images/, ROOT/masks/ with matching stems, and ROOT/classes.txt"


def _by_stem(folder: Path, exts: Sequence[str]) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in exts}


class Folder(FileSegmentation):
    """``images/`` + ``masks/`` with matching stems and a class list (see module docstring).

    Args:
        root: the dataset folder.
        split: a split name (see module docstring).
        classes: class names; default ``ROOT/classes.txt``.
        palette: one RGB triple per class; default the VOC colour map.
    """

    def __init__(
        self,
        root: str | Path | None,
        split: str = "all",
        classes: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
    ) -> None:
        if root is None:
            raise DataError(f"folder: no root given; expected {FOLDER_HINT}")
        root = require_dir(Path(root), "a dataset folder", FOLDER_HINT)
        if classes is None:
            names = root / "classes.txt"
            if not names.is_file():
                raise DataError(f"{names}: not found; expected one class name per line (or data.options.classes)")
            classes = [line.strip() for line in names.read_text().splitlines() if line.strip()]
        if not 1 <= len(classes) <= 255:
            raise DataError(f"{root}: need 1 to 255 classes, got {len(classes)}")
        self.classes = list(classes)
        if palette is not None and len(palette) != len(self.classes):
            raise DataError(f"folder: palette has {len(palette)} colours for {len(self.classes)} classes")
        self.palette = [(int(c[0]), int(c[1]), int(c[2])) for c in palette] if palette is not None else color_map(len(classes))

        base = root
        stems: list[str] | None = None
        if (root / f"{split}.txt").is_file():
            stems = [s.strip() for s in (root / f"{split}.txt").read_text().splitlines() if s.strip()]
        elif (root / split / "images").is_dir():
            base = root / split
        elif split != "all":
            raise DataError(f"{root}: split {split!r} not found; expected {split}.txt or {split}/images/ (or use split 'all')")
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
        return f"{self.samples[index][0]}: missing mask (no file with this stem in {self.mask_dir})"
