"""What the page of ``gcnseg serve`` does, with no web code: models loaded once and kept,
an uploaded file read with a message a person can act on, one image segmented with the
test-time options of Section 4 (flip, the multi-scale "-MS" of Table 7), the prediction
blended over the image, and each class's share of it."""

from __future__ import annotations

import html
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, GcnsegError, absent
from ..predict import IMAGE_SUFFIXES, segment
from ..visualize import overlay

if TYPE_CHECKING:
    import torch

    from ..config import Config

KEEP_MODELS = 4  # loaded models kept in memory, the least recently used dropped first


@dataclass(frozen=True)
class Loaded:
    """A model ready to segment: the network (optimised unless eager), its config, its classes."""

    choice: str  # as chosen: a named model, a run folder or a checkpoint folder
    model: Callable[[torch.Tensor], torch.Tensor]
    cfg: Config
    device: torch.device
    classes: list[str]
    palette: list[tuple[int, int, int]]
    ignore_index: int
    about: str  # one line for the page


@dataclass(frozen=True)
class Segmentation:
    """One image as segmented: the pixels, the class ids, what it took, and the colours of
    the model's classes (what the page needs to blend it again at another opacity)."""

    image: np.ndarray  # HxWx3 uint8
    pred: np.ndarray  # HxW class ids
    seconds: float
    passes: int  # network evaluations: scales x (1 + flip)
    palette: list[tuple[int, int, int]]
    ignore_index: int
    resized_from: tuple[int, int] | None = None  # (w, h) of the file when it was shrunk to the page's limit


def describe(choice: str, cfg: Config, meta: dict) -> str:
    """One line: ``NAME: resnet18 + GCN (k=15) + BR, 4 classes (synthetic-shapes), val mIoU 95.8``."""
    m = cfg.model
    k = m.k if isinstance(m.k, int) else "/".join(str(x) for x in m.k)
    parts = f"{m.backbone} + {m.head.upper() if m.head == 'gcn' else m.head} (k={k})" + (" + BR" if m.br else "")
    from ..zoo import ZOO

    metrics = meta.get("metrics")
    miou = ZOO[choice].val_miou / 100 if choice in ZOO else metrics.get("miou") if isinstance(metrics, dict) else None
    score = f", val mIoU {100 * miou:.2f}" if isinstance(miou, (int, float)) else ""
    return f"{choice}: {parts}, {meta['num_classes']} classes ({cfg.data.dataset}){score}"


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def sidecar_classes(meta: dict[str, Any], n: int, where: Path) -> tuple[list[str], list[tuple[int, int, int]], int]:
    """``(class names, colours, ignore index)`` of a checkpoint's sidecar for its ``n``
    classes; what a sidecar written by hand leaves out is filled in (names ``0``..``n-1``,
    the VOC colour map, 255), and what it holds that is not one is a
    :class:`~gcnseg.errors.GcnsegError` naming ``where`` and the key."""
    from ..data.base import color_map

    names = meta.get("classes")
    if names is None:
        names = []
    if not isinstance(names, list) or not all(isinstance(c, (str, int, float)) for c in names):
        raise GcnsegError(f"{where}: classes: expected a list of {n} class names, got {_short(names)}")
    colours = meta.get("palette")
    if colours is None:
        colours = []
    if not isinstance(colours, list) or not all(
        isinstance(c, list) and len(c) == 3 and all(isinstance(v, (int, float)) and 0 <= v <= 255 for v in c)
        for c in colours
    ):
        raise GcnsegError(f"{where}: palette: expected {n} colours [R, G, B] of 0-255, got {_short(colours)}")
    ignore = meta.get("ignore_index", 255)
    if not isinstance(ignore, int) or isinstance(ignore, bool):
        raise GcnsegError(f"{where}: ignore_index: expected a class id or 255, got {_short(ignore)}")
    default = color_map(n)  # for the classes that a sidecar written by hand gives no colour
    classes = [str(c) for c in names[:n]] + [str(i) for i in range(len(names), n)]
    palette = [(int(r), int(g), int(b)) for r, g, b in colours[:n]] + default[len(colours) : n]
    return classes, palette, ignore


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Segmenter:
    """The models a page offers (loaded on first use, and again when a run's best
    checkpoint moves), and the work on one image: one at a time, whatever the number of
    threads that ask (a multi-scale run on a large image takes gigabytes)."""

    def __init__(
        self,
        choices: Sequence[str],
        device: str = "auto",
        eager: bool = False,
        max_side: int = 2048,
        overrides: Sequence[str] = (),
        path: dict[str, Any] | None = None,
    ):
        if not choices:
            raise GcnsegError("no model to serve: name one with --model NAME or --checkpoint RUN")
        self.choices = list(dict.fromkeys(choices))
        self.device = device
        self.eager = eager
        self.path = dict(path or {})  # precision, compile, int8_agreement: inference_model's keywords
        self.max_side = max_side
        self.overrides = list(overrides)  # KEY=VALUE, applied to every model's config
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        self._lock = threading.Lock()  # the models kept
        self.busy = threading.Lock()  # held while an image is segmented

    def load(self, choice: str) -> Loaded:
        """The model of ``choice`` (a named model, run folder or checkpoint folder)."""
        from ..checkpoint import resolve_checkpoint
        from ..zoo import ZOO

        choice = (choice or "").strip()
        if not choice:
            raise GcnsegError("choose a model")
        with self._lock:
            try:
                if choice in ZOO and not Path(choice).exists():  # as resolve_checkpoint reads names
                    key = str(ZOO[choice].folder)  # never moves: not hashed again on every image
                else:
                    key = str(resolve_checkpoint(choice))  # a run's new best checkpoint is a new key
                if key not in self._loaded:
                    self._loaded[key] = self._load(choice, Path(key))
                    while len(self._loaded) > KEEP_MODELS:
                        self._loaded.popitem(last=False)
            except GcnsegError:
                raise
            except OSError as e:  # a name too long for a path, a folder that cannot be read
                raise GcnsegError(f"{choice}: {e.strerror or e}") from None
            except Exception as e:  # a sidecar or config edited by hand into something else: a message, not a crash
                raise GcnsegError(f"{choice}: cannot load the model ({_first_line(e)})") from None
            self._loaded.move_to_end(key)
            return self._loaded[key]

    def _load(self, choice: str, folder: Path) -> Loaded:
        from ..checkpoint import META_FILE, load_model
        from ..config import apply_overrides
        from ..optimize import inference_model
        from ..runtime import resolve_device

        model, cfg, meta = load_model(choice)
        n = meta["num_classes"]
        classes, palette, ignore_index = sidecar_classes(meta, n, folder / META_FILE)  # before the work
        cfg = apply_overrides(cfg, self.overrides)
        device = resolve_device(self.device)
        model.to(device)  # before choosing the path: "auto" precision is bf16 on CPU only
        # a long-lived process: compiled (compile="auto"), each image size once
        model = inference_model(model, eager=self.eager, passes=None, data=cfg.data, **self.path)
        return Loaded(choice, model, cfg, device, classes, palette, ignore_index, describe(choice, cfg, meta))

    def read(self, path: str | Path, name: str | None = None) -> tuple[np.ndarray, tuple[int, int] | None]:
        """An uploaded or picked file as ``HxWx3`` uint8, shrunk to ``max_side`` on its long
        side; errors name ``name`` (the file as the person knows it, not the server's copy)."""
        from PIL import Image

        from ..data.io import read_image

        name = name or Path(path).name
        try:
            img = read_image(path, exif=True)  # a photo as a viewer shows it
        except DataError as e:
            raise GcnsegError(str(e).replace(str(path), name)) from None
        except OSError as e:
            raise GcnsegError(f"{name}: {e.strerror or e}") from None
        if max(img.size) <= self.max_side:
            return np.asarray(img), None
        scale = self.max_side / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        return np.asarray(img.resize(size, Image.Resampling.BILINEAR)), img.size

    def segment(
        self,
        loaded: Loaded,
        rgb: np.ndarray,
        flip: bool = False,
        multi_scale: bool = False,
        resized_from: tuple[int, int] | None = None,
    ) -> Segmentation:
        """Class ids of ``rgb`` by ``loaded``: single scale, or the scales of ``--ms``; with or
        without the flipped image averaged in."""
        from ..inference import DEFAULT_MS_SCALES

        scales = list(DEFAULT_MS_SCALES) if multi_scale else [1.0]
        cfg = replace(loaded.cfg, eval=replace(loaded.cfg.eval, scales=scales, flip=flip, crf=False))
        with self.busy:
            start = time.perf_counter()
            pred = segment(loaded.model, rgb, cfg, loaded.device)
            seconds = time.perf_counter() - start
        if len(loaded.classes) <= 255:  # kept per browser tab: a byte a pixel, not eight
            pred = pred.astype(np.uint8)
        passes = len(scales) * (2 if flip else 1)
        return Segmentation(rgb, pred, seconds, passes, loaded.palette, loaded.ignore_index, resized_from)


def blend(seg: Segmentation, opacity: float) -> np.ndarray:
    """The prediction's colours over the image: 0 shows the image, 1 the colours alone."""
    alpha = float(np.clip(opacity, 0, 1))
    return overlay(seg.image, seg.pred, seg.palette, alpha=alpha, ignore_index=seg.ignore_index)


def shares(pred: np.ndarray, num_classes: int) -> np.ndarray:
    """The fraction of the image's pixels given to each class (ignored ones count for none)."""
    counts = np.bincount(pred.ravel().astype(np.intp), minlength=num_classes)[:num_classes]
    return counts / max(pred.size, 1)


def legend_html(classes: Sequence[str], palette: Sequence[Sequence[int]], share: np.ndarray | None = None) -> str:
    """The legend: a colour swatch, the class name and (after a prediction) its share of the
    image with a bar (the largest share fills its cell), largest first; classes the image
    does not have are listed last, dimmed."""
    order = range(len(classes)) if share is None else sorted(range(len(share)), key=lambda i: -share[i])
    top = float(share.max()) if share is not None and share.max() > 0 else 1.0  # the longest bar fills its cell
    rows = []
    for i in order:
        r, g, b = palette[i] if i < len(palette) else (0, 0, 0)
        name = html.escape(classes[i])
        cells = f'<td><span class="swatch" style="background: rgb({r},{g},{b})"></span></td><td>{name}</td>'
        if share is not None:
            pct = 100 * float(share[i])
            said = "<0.1%" if 0 < pct < 0.05 else f"{pct:.1f}%"  # present, if only a few pixels
            cells += (
                f'<td class="share">{html.escape(said)}</td>'
                f'<td class="bar"><span style="width: {100 * float(share[i]) / top:.1f}%; '
                f'background: rgb({r},{g},{b})"></span></td>'
            )
        dim = ' class="absent"' if share is not None and share[i] == 0 else ""
        rows.append(f'<tr data-class="{name}"{dim}>{cells}</tr>')
    head = "<tr><th></th><th>class</th><th>share</th><th></th></tr>" if share is not None else ""
    return f'<table class="gcnseg-legend">{head}{"".join(rows)}</table>'


def summary(name: str, seg: Segmentation) -> str:
    """``street.png: 480x360, 71 ms (1 pass)``, and the file's size when it was shrunk."""
    h, w = seg.pred.shape
    shrunk = f" (shrunk from {seg.resized_from[0]}x{seg.resized_from[1]})" if seg.resized_from else ""
    passes = f"{seg.passes} pass" + ("es" if seg.passes > 1 else "")
    return f"{name}: {w}x{h}{shrunk}, {1000 * seg.seconds:.0f} ms ({passes})"


MAX_LISTED = 10_000  # images listed from one folder
LIST_SECONDS = 5.0  # and the time spent looking for them


def folder_path(folder: str | Path, name: str = "") -> Path:
    """``folder`` as typed on the page (spaces around it dropped, ``~`` expanded), and ``name`` in it."""
    text = str(folder).strip()
    if not text:
        raise GcnsegError("no folder given: type one and press Enter")
    return Path(text).expanduser() / name


@dataclass(frozen=True)
class Listing:
    """The images of a folder as the page lists them: ``names`` (relative paths, sorted),
    ``paths`` (for a name shown other than it is on disk: the real relative path) and
    ``note`` (why the list stopped short, and which names it had to escape; "" if nothing)."""

    names: list[str]
    paths: dict[str, str]
    note: str

    def path(self, name: str) -> str:
        """The relative path on disk of the listed ``name``."""
        return self.paths.get(name, name)


def shown_name(name: str) -> str:
    """A file name as the page can show it: as it is where it is valid UTF-8, else with
    its undecodable bytes as ``\\xNN`` escapes (``caf\\xe9.png`` for a Latin-1 ``café.png``;
    Python hands such bytes over as lone surrogates, which a web page cannot carry)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def list_images(folder: str | Path, limit: int = MAX_LISTED, seconds: float = LIST_SECONDS) -> Listing:
    """The images under ``folder`` (sub-folders searched, hidden files and folders not): at
    most ``limit``, found in at most ``seconds`` of looking. A name that is not valid UTF-8
    is listed with escapes (:func:`shown_name`) and opened by its real name; one whose
    escaped form is the name of another file is left out. The note says either."""
    root = folder_path(folder)
    try:
        if not root.is_dir():
            raise GcnsegError(f"{root}: {absent(root, folder=True, missing='no such folder')}")
    except OSError as e:
        raise GcnsegError(f"{root}: {e.strerror or e}") from None
    found: list[str] = []
    notes: list[str] = []
    deadline = time.monotonic() + seconds
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(here).relative_to(root)
        found += [
            str(rel / f) for f in sorted(files) if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES
        ]
        if len(found) >= limit:
            found = found[:limit]
            notes.append(f"the first {limit} found")
            break
        if time.monotonic() > deadline:
            notes.append(f"those found in {seconds:g} s of looking")
            break
    names = {n for n in found if shown_name(n) == n}
    paths: dict[str, str] = {}
    clashes = 0
    for n in found:
        shown = shown_name(n)
        if shown == n:
            continue
        if shown in names or shown in paths:  # (a file named with the backslashes themselves)
            clashes += 1
            continue
        paths[shown] = n
    if paths:
        notes.append(f"{_count(len(paths), 'name')} not valid UTF-8, shown with \\x escapes")
    if clashes:
        notes.append(f"{_count(clashes, 'name')} not valid UTF-8 left out (another file has its escaped name)")
    if not names and not paths:
        raise GcnsegError(f"{root}: no image in it (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return Listing(sorted([*names, *paths]), paths, "; ".join(notes))


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def folder_images(folder: str | Path, limit: int = MAX_LISTED, seconds: float = LIST_SECONDS) -> tuple[list[str], str]:
    """The images under ``folder`` as paths relative to it, as the page shows them (sorted;
    sub-folders searched, hidden files and folders not), and a note when the listing
    stopped short (at ``limit`` images or after ``seconds`` of looking) or had to escape
    names (see :func:`list_images`, which also gives the real path of an escaped name)."""
    listing = list_images(folder, limit, seconds)
    return listing.names, listing.note
