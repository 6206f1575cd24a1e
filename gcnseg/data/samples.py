"""Images of a split written as files, with their labels as palette PNGs (``gcnseg data
samples``): the embedded synthetic data as pictures to look at with ``gcnseg predict`` or
``gcnseg serve``, or to score against."""

from __future__ import annotations

from pathlib import Path

from ..runtime import atomic_path
from ..visualize import label_image
from .base import SegmentationDataset


def unique(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``, ...: the first not in ``taken`` (which it joins)."""
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name)
    return name


def write_samples(ds: SegmentationDataset, out: Path, limit: int) -> int:
    """The first ``limit`` images of ``ds`` as ``out/images/NAME.png`` and their labels as
    ``out/labels/NAME.png``; the number written."""
    n = min(limit, len(ds))
    taken: set[str] = set()
    for i in range(n):
        image, mask = ds.load(i)
        name = unique(Path(ds.name(i)).name, taken)  # one folder: the same name from two cities gets a suffix
        for kind, picture in (("images", image.convert("RGB")), ("labels", label_image(mask, ds.palette))):
            (out / kind).mkdir(parents=True, exist_ok=True)
            with atomic_path(out / kind / f"{name}.png") as tmp:
                picture.save(tmp, format="PNG")
    return n
