"""Common base of all datasets: class names, palette and raw access (``load``, ``name``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError
from .io import IGNORE_INDEX, apply_lut, check_mask, read_image, read_mask


def color_map(n: int) -> list[tuple[int, int, int]]:
    """The PASCAL VOC devkit colour map (``labelcolormap.m``): ``n`` RGB colours, 0 is black."""
    colors = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors.append((r, g, b))
    return colors


# matplotlib's tab20 (Vega's category20), the darker of each pair first: distinct colours, none black
TAB20 = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
]  # fmt: skip


def distinct_palette(n: int) -> list[tuple[int, int, int]]:
    """``n`` colours for classes of one's own, none black (black reads as "nothing"):
    tab20's twenty, then the VOC colour map without its black."""
    return (TAB20 + color_map(max(0, n - len(TAB20)) + 1)[1:])[:n]


class SegmentationDataset(Dataset):
    """A segmentation dataset. ``load(i)`` gives the raw ``(PIL RGB image, int64 mask)``;
    ``__getitem__`` returns the same (transforms are added by :func:`gcnseg.data.build_dataset`).

    Subclasses set ``classes``, ``palette`` and implement ``__len__``, ``load`` and ``name``.
    """

    classes: list[str] = []
    palette: list[tuple[int, int, int]] = []
    ignore_index: int = IGNORE_INDEX

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> tuple[Image.Image, np.ndarray]:
        raise NotImplementedError

    def name(self, index: int) -> str:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[Image.Image, np.ndarray]:
        return self.load(index)

    def _index(self, index: int) -> int:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {type(self).__name__} of length {n}")
        return index


class FileSegmentation(SegmentationDataset):
    """A dataset of ``(image file, mask file)`` pairs. Files are only read in ``load``,
    so that ``gcnseg data check`` can report every bad file of a split at once.

    ``samples`` holds ``(image path, mask path or None)``; a ``None`` mask is reported
    as missing. Subclasses may override :meth:`read_label` (e.g. to map label ids).
    """

    def __init__(self, samples: Sequence[tuple[Path, Path | None]]) -> None:
        self.samples = list(samples)
        self.label_lut: np.ndarray | None = None  # data.void / data.label_map (gcnseg.data.io.label_lut)

    def __len__(self) -> int:
        return len(self.samples)

    def name(self, index: int) -> str:
        return self.samples[self._index(index)][0].stem

    def image_size(self, index: int) -> tuple[int, int] | None:
        """``(width, height)`` of image ``index`` as :meth:`load` gives it, read from the
        file's header alone (nothing decoded: cheap for a whole split); None where the file
        cannot be opened (:meth:`load` says why)."""
        path = self.samples[self._index(index)][0]
        try:
            with Image.open(path) as img:
                return img.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return None

    def read_label(self, path: Path) -> np.ndarray:
        """Class ids of the mask file ``path`` (before the range check)."""
        return read_mask(path)

    def missing_mask(self, index: int) -> str:
        """Message for a sample without a mask file."""
        return f"{self.samples[index][0]}: missing mask"

    def load(self, index: int) -> tuple[Image.Image, np.ndarray]:
        index = self._index(index)
        image_path, mask_path = self.samples[index]
        image = read_image(image_path)
        if mask_path is None:
            raise DataError(self.missing_mask(index))
        mask = apply_lut(self.read_label(mask_path), self.label_lut)
        check_mask(mask, image.size, self.num_classes, mask_path, image_path, self.ignore_index)
        return image, mask
