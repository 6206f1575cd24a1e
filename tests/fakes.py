"""Test helpers (no tests): tiny datasets written in each real on-disk layout under a tmp
folder, and the settings of the suite's one shared trained run (``conftest.trained_run``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse
from PIL import Image

from gcnseg.data.voc import VOC_PALETTE


def rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def blocks(h: int, w: int, values: list[int], seed: int, block: int = 8) -> np.ndarray:
    """A mask of ``block``-px squares with labels drawn from ``values``."""
    rng = np.random.default_rng(seed)
    small = rng.choice(values, size=(-(-h // block), -(-w // block)))
    return np.kron(small, np.ones((block, block), dtype=np.int64))[:h, :w].astype(np.int64)


def street_scene(h: int = 360, w: int = 480) -> np.ndarray:
    """A drawn street scene (uint8 RGB): a pale blue sky, a facade with rows of windows,
    grey asphalt, slightly noisy."""
    img = np.empty((h, w, 3), np.float32)
    y = np.linspace(0, 1, h // 3)[:, None, None]
    img[: h // 3] = np.array([200, 215, 240]) - y * np.array([40, 30, 20])
    facade = np.full((h // 3, w, 3), (150, 120, 100), np.float32)
    for r in range(10, h // 3, 30):
        for c in range(10, w, 40):
            facade[r : r + 15, c : c + 20] = (60, 60, 70)
    img[h // 3 : 2 * h // 3] = facade
    img[2 * h // 3 :] = (95, 95, 100)
    img += np.random.default_rng(0).normal(0, 5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def save_palette_png(path: Path, mask: np.ndarray) -> None:
    img = Image.fromarray(mask.astype(np.uint8), "P")
    flat = [v for c in VOC_PALETTE for v in c]
    img.putpalette(flat + [224, 224, 192] * (256 - len(VOC_PALETTE)))  # 255 = VOC's void colour
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def save(path: Path, array: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def make_voc(root: Path, train: list[str], val: list[str], size: tuple[int, int] = (24, 32)) -> dict[str, np.ndarray]:
    """``root/VOCdevkit/VOC2012`` with JPEG images, palette masks and split lists; returns the masks."""
    base = root / "VOCdevkit" / "VOC2012"
    masks = {}
    for k, stem in enumerate(train + val):
        h, w = size
        save(base / "JPEGImages" / f"{stem}.jpg", rgb(h, w, k), "JPEG")
        m = blocks(h, w, [0, 1, 15, 20, 255], seed=k)
        save_palette_png(base / "SegmentationClass" / f"{stem}.png", m)
        masks[stem] = m
    sets = base / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / "train.txt").write_text("".join(s + "\n" for s in train))
    (sets / "val.txt").write_text("".join(s + "\n" for s in val))
    (sets / "trainval.txt").write_text("".join(s + "\n" for s in train + val))
    return masks


def save_sbd_mat(path: Path, seg: np.ndarray) -> None:
    """An SBD ``cls/*.mat``: struct ``GTcls`` with Boundaries (20 sparse), Segmentation, CategoriesPresent."""
    bounds = np.empty((20, 1), dtype=object)
    for i in range(20):
        bounds[i, 0] = scipy.sparse.csc_matrix(np.zeros(seg.shape, dtype=np.uint8))
    present = np.unique(seg[(seg > 0) & (seg < 255)]).reshape(-1, 1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        path, {"GTcls": {"Boundaries": bounds, "Segmentation": seg.astype(np.uint8), "CategoriesPresent": present}}
    )


def make_sbd(root: Path, train: list[str], val: list[str], size: tuple[int, int] = (24, 32)) -> dict[str, np.ndarray]:
    """``root/benchmark_RELEASE/dataset`` with img/*.jpg, cls/*.mat, train.txt, val.txt."""
    base = root / "benchmark_RELEASE" / "dataset"
    masks = {}
    for k, stem in enumerate(train + val):
        h, w = size
        save(base / "img" / f"{stem}.jpg", rgb(h, w, 100 + k), "JPEG")
        m = blocks(h, w, [0, 3, 7, 12], seed=100 + k)
        save_sbd_mat(base / "cls" / f"{stem}.mat", m)
        masks[stem] = m
    (base / "train.txt").write_text("".join(s + "\n" for s in train))
    (base / "val.txt").write_text("".join(s + "\n" for s in val))
    return masks


def make_cityscapes(
    root: Path, split: str, names: list[str], coarse: bool = False, size=(16, 32)
) -> dict[str, np.ndarray]:
    """``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` + ``gtFine|gtCoarse/.../*_labelIds.png``."""
    gt = "gtCoarse" if coarse else "gtFine"
    ids = {}
    for k, n in enumerate(names):
        city = n.split("_")[0]
        h, w = size
        save(root / "leftImg8bit" / split / city / f"{n}_leftImg8bit.png", rgb(h, w, k))
        m = blocks(h, w, [0, 1, 7, 8, 9, 24, 26, 33], seed=k, block=4)
        save(root / gt / split / city / f"{n}_{gt}_labelIds.png", m.astype(np.uint8))
        ids[n] = m
    return ids


def make_camvid(
    root: Path, splits: dict[str, list[str]], segnet_paths: bool = True, size=(16, 24)
) -> dict[str, np.ndarray]:
    """SegNet layout: <split>/, <split>annot/ and <split>.txt (SegNet's absolute paths if asked)."""
    masks = {}
    for s, stems in splits.items():
        lines = []
        for k, stem in enumerate(stems):
            h, w = size
            save(root / s / f"{stem}.png", rgb(h, w, k))
            m = blocks(h, w, list(range(12)), seed=k, block=4)
            save(root / f"{s}annot" / f"{stem}.png", m.astype(np.uint8))
            masks[stem] = m
            prefix = "/SegNet/CamVid/" if segnet_paths else ""
            lines.append(f"{prefix}{s}/{stem}.png {prefix}{s}annot/{stem}.png\n")
        (root / f"{s}.txt").write_text("".join(lines))
    return masks


def make_folder(root: Path, stems: list[str], classes: list[str], size=(16, 16)) -> dict[str, np.ndarray]:
    """``images/*.png``, ``masks/*.png`` (8-bit ids) and ``classes.txt``."""
    masks = {}
    for k, stem in enumerate(stems):
        h, w = size
        save(root / "images" / f"{stem}.png", rgb(h, w, k))
        m = blocks(h, w, list(range(len(classes))), seed=k, block=4)
        save(root / "masks" / f"{stem}.png", m.astype(np.uint8))
        masks[stem] = m
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return masks


def rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a boolean mask, JSON-ready."""
    from pycocotools import mask as mask_utils

    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def make_coco(root: Path, split: str = "train2017") -> dict[str, np.ndarray]:
    """``annotations/instances_<split>.json`` + ``<split>/*.jpg``: four 20x30 images.

    a: person (RLE) and dog (polygon) overlapping a car box; b: giraffe only (dropped);
    c: car with a crowd region of persons; d: no annotation (dropped).
    Returns the expected VOC masks of the kept images.
    """
    h, w = 20, 30
    cats = [
        {"id": 1, "name": "person", "supercategory": "person"},
        {"id": 3, "name": "car", "supercategory": "vehicle"},
        {"id": 18, "name": "dog", "supercategory": "animal"},
        {"id": 25, "name": "giraffe", "supercategory": "animal"},
    ]
    images, anns = [], []
    for i, name in enumerate(["a", "b", "c", "d"], 1):
        images.append({"id": i, "file_name": f"{name}.jpg", "height": h, "width": w})
        save(root / split / f"{name}.jpg", rgb(h, w, i), "JPEG")
    person = np.zeros((h, w), bool)
    person[2:10, 2:10] = True
    car = np.zeros((h, w), bool)
    car[6:14, 6:20] = True
    giraffe = np.zeros((h, w), bool)
    giraffe[0:5, 20:30] = True
    crowd = np.zeros((h, w), bool)
    crowd[15:20, 0:10] = True

    def ann(aid: int, img: int, cat: int, m: np.ndarray, iscrowd: int = 0) -> dict:
        ys, xs = np.nonzero(m)
        box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        return {"id": aid, "image_id": img, "category_id": cat, "segmentation": rle(m), "area": int(m.sum()),
                "bbox": box, "iscrowd": iscrowd}  # fmt: skip

    anns += [ann(1, 1, 1, person), ann(2, 1, 3, car), ann(3, 1, 25, giraffe), ann(4, 2, 25, giraffe)]
    # a dog polygon well away from the others: a rectangle x 22..28, y 12..18
    anns.append({"id": 5, "image_id": 1, "category_id": 18, "segmentation": [[22, 12, 28, 12, 28, 18, 22, 18]],
                 "area": 36, "bbox": [22, 12, 6, 6], "iscrowd": 0})  # fmt: skip
    anns += [ann(6, 3, 3, car), ann(7, 3, 1, crowd, iscrowd=1)]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    data = {"images": images, "annotations": anns, "categories": cats, "info": {}, "licenses": []}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))

    a = np.zeros((h, w), np.int64)
    a[person] = 15
    a[car] = 7
    a[person & car] = 255
    c = np.zeros((h, w), np.int64)
    c[car] = 7
    c[crowd] = 255
    return {"a": a, "c": c}


# The suite's one trained run: a ResNet-18 GCN (k=7, BR) trained 25 steps on 64x64
# synthetic-shapes, enough for scores with margins (as in use); 3 classes, 3 val images.
TRAINED_RUN = [
    "model.backbone=resnet18",
    "model.k=7",
    "data.dataset=synthetic-shapes",
    "data.options={size: 64, num_classes: 3, length: 64, eval_length: 3, seed: 3}",
    "optim.name=adam",
    "optim.lr=0.001",
    "train.batch_size=8",
    "train.iterations=25",
    "train.previews=1",
    "train.threads=1",
    "train.amp=fp32",
]


def once_per_session(tmp_path_factory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` run once for all xdist workers of this session (under a file lock);
    its folder."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process
        return build(tmp_path_factory.getbasetemp() / name)
    shared = tmp_path_factory.getbasetemp().parent  # the same for every worker of this session
    from filelock import FileLock

    with FileLock(str(shared / f"{name}.lock")):
        return build(shared / name)


def street_camvid(root: Path) -> Path:
    """A CamVid-layout folder (SegNet's lists) of drawn street scenes at 96x128, each
    shifted and some mirrored: real-looking images for the shipped CamVid model."""
    base = street_scene(96, 128)
    mask = np.repeat(np.array([0, 1, 3], np.uint8), 32)[:, None].repeat(128, 1)  # sky, building, road
    for split, n in (("train", 6), ("val", 3)):
        lines = []
        for k in range(n):
            img = np.roll(base, 9 * k + (split == "val") * 5, axis=1)
            img = img[:, ::-1] if k % 2 else img
            save(root / split / f"{k}.png", np.ascontiguousarray(img))
            save(root / f"{split}annot" / f"{k}.png", mask)
            lines.append(f"{split}/{k}.png {split}annot/{k}.png\n")
        (root / f"{split}.txt").write_text("".join(lines))
    return root
