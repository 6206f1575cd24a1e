"""synthetic-shapes: deterministic, parameterised, class visible only at the outline."""

import numpy as np
import pytest

from gcnseg.data import DATASETS, SyntheticShapes
from gcnseg.errors import DataError


def test_parameters_and_attributes():
    ds = DATASETS["synthetic-shapes"](None, "train", size=64, num_classes=5, length=7, eval_length=3)
    assert len(ds) == 7 and ds.num_classes == 5 and len(ds.palette) == 5 and ds.classes[0] == "background"
    assert len(SyntheticShapes(split="val", size=64, length=7, eval_length=3)) == 3
    image, mask = ds.load(6)
    assert image.size == (64, 64) and image.mode == "RGB" and mask.dtype == np.int64
    assert ds.name(6) == "train-000006" and set(np.unique(mask)) <= set(range(5))
    with pytest.raises(IndexError):
        ds.load(7)


def test_item_is_a_pure_function_of_seed_split_index():
    a = SyntheticShapes(size=48, seed=3)
    b = SyntheticShapes(size=48, seed=3)
    for i in (0, 5):
        assert np.array_equal(np.asarray(a.load(i)[0]), np.asarray(b.load(i)[0]))
    assert not np.array_equal(a.generate(0)[0], a.generate(1)[0])
    assert not np.array_equal(a.generate(0)[0], SyntheticShapes(size=48, seed=4).generate(0)[0])
    assert not np.array_equal(a.generate(0)[0], SyntheticShapes(split="val", size=48, seed=3).generate(0)[0])


def test_object_scale_and_class_only_at_the_outline():
    ds = SyntheticShapes(size=96, num_classes=4, radius=(0.3, 0.4), length=40)
    seen, interiors = set(), {}
    for i in range(len(ds)):
        image, mask = ds.generate(i)
        cls = int(mask.max())
        assert cls > 0 and set(np.unique(mask)) == {0, cls}  # one disc per image
        area = (mask > 0).sum() / 96**2
        assert np.pi * 0.3**2 * 0.9 < area < np.pi * 0.4**2 * 1.1
        ring = (mask > 0) & ~_erode(mask > 0, ds.ring)
        assert np.abs(image[ring].mean(0) - np.array(ds.palette[cls])).max() < 40  # ring has the class colour
        inner = _erode(mask > 0, ds.ring + 2)
        interiors.setdefault(cls, []).append(image[inner].astype(float))
        seen.add(cls)
    assert seen == {1, 2, 3}
    stats = [np.concatenate(v).mean(0) for v in interiors.values()]
    assert np.ptp(np.stack(stats), axis=0).max() < 5  # interiors share one texture across classes


def test_several_objects_get_distinct_classes_and_slots():
    from scipy.ndimage import label

    ds = SyntheticShapes(size=96, num_classes=4, objects=2, radius=(0.2, 0.25))
    for i in range(10):
        _, mask = ds.generate(i)
        classes = sorted(set(np.unique(mask)) - {0})
        assert len(classes) == 2  # distinct classes
        assert all(label(mask == c)[1] == 1 for c in classes)  # side by side, not overlapping


def test_random_placement_and_background_interiors():
    from scipy.ndimage import label

    ds = SyntheticShapes(
        size=96, num_classes=4, objects=3, placement="random", radius=(0.15, 0.3), interior="background"
    )
    tex = SyntheticShapes(size=96, num_classes=4, objects=3, placement="random", radius=(0.15, 0.3))
    for i in range(10):
        image, mask = ds.generate(i)
        classes = sorted(set(np.unique(mask)) - {0})
        assert len(classes) == 3 and all(label(mask == c)[1] == 1 for c in classes)  # apart, distinct
        assert np.array_equal(mask, tex.generate(i)[1])  # the interior option changes only the pixels
        inner = _erode(mask > 0, ds.ring + 2)
        # interiors look like the background (muted, 40..140 before noise), not the bright texture
        assert abs(image[inner].mean() - image[mask == 0].mean()) < 25
        assert tex.generate(i)[0][inner].mean() > 150


def _erode(m: np.ndarray, r: int) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    return binary_erosion(m, iterations=r)


def test_bad_parameters():
    with pytest.raises(DataError, match="unknown split 'dev'"):
        SyntheticShapes(split="dev")
    with pytest.raises(DataError, match="num_classes must be >= 2"):
        SyntheticShapes(num_classes=1)
    with pytest.raises(DataError, match="radius"):
        SyntheticShapes(radius=(0.4, 0.6))
    with pytest.raises(DataError, match="interior"):
        SyntheticShapes(interior="plain")
    with pytest.raises(DataError, match="placement"):
        SyntheticShapes(placement="grid")
    with pytest.raises(DataError, match=r"reads no folder, so data.root=/data/camvid is not used"):
        SyntheticShapes("/data/camvid")  # gcnseg train --config demo --root /data/camvid: not silently the shapes
