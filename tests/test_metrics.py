"""Metrics: hand-computed confusion matrices, torchmetrics cross-check, boundary band (Table 5)."""

from __future__ import annotations

import itertools
import time
from fractions import Fraction

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.distributed as dist
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from gcnseg.metrics import BoundaryAccuracy, ConfusionMatrix, SegMetrics, boundary_mask, format_metrics


def _approx(value: float | None, frac: Fraction | float) -> bool:
    return value is not None and value == pytest.approx(float(frac), abs=1e-12)


def _scores(target: list, pred: list, num_classes: int, **kw) -> dict:
    cm = ConfusionMatrix(num_classes, **kw)
    cm.update(torch.tensor(pred), torch.tensor(target))
    return cm.compute()


# ---------------------------------------------------------------- confusion matrix


def test_hand_computed_with_ignore_pixel():
    # gt:   0 0 1 1 2 255      matrix (rows gt, cols pred)   TP  gt  pred  union  IoU
    # pred: 0 1 1 1 0 2        gt0: [1, 1, 0]                 1   2   2     3     1/3
    #                          gt1: [0, 2, 0]                 2   2   3     3     2/3
    #                          gt2: [1, 0, 0]                 0   1   0     1     0
    # the ignore pixel (predicted 2) is not counted anywhere.
    r = _scores([0, 0, 1, 1, 2, 255], [0, 1, 1, 1, 0, 2], 3)
    assert r["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert [Fraction(v).limit_denominator(100) for v in r["iou"]] == [Fraction(1, 3), Fraction(2, 3), 0]
    assert _approx(r["miou"], Fraction(1, 3))  # (1/3 + 2/3 + 0) / 3
    assert _approx(r["pixel_acc"], Fraction(3, 5))  # 3 correct of 5 scored
    assert r["acc"] == pytest.approx([1 / 2, 1.0, 0.0])
    assert _approx(r["mean_acc"], Fraction(1, 2))
    assert _approx(r["fwiou"], Fraction(2, 5) * Fraction(1, 3) + Fraction(2, 5) * Fraction(2, 3))  # = 2/5
    assert r["pixels"] == 5


def test_class_absent_from_gt_and_pred_is_left_out():
    # same pixels with C=4: class 3 never appears, so its IoU/acc are undefined (None)
    r = _scores([0, 0, 1, 1, 2, 255], [0, 1, 1, 1, 0, 2], 4)
    assert r["iou"][3] is None and r["acc"][3] is None
    assert _approx(r["miou"], Fraction(1, 3))  # still the mean over classes 0..2
    assert _approx(r["mean_acc"], Fraction(1, 2))


def test_class_predicted_but_absent_from_gt_counts_as_zero():
    # gt: 0 0, pred: 0 1 -> IoU0 = 1/2, IoU1 = 0/1 = 0 (a false positive), acc1 undefined
    r = _scores([0, 0], [0, 1], 2)
    assert r["iou"] == [0.5, 0.0]
    assert _approx(r["miou"], Fraction(1, 4))
    assert r["acc"] == [0.5, None]
    assert _approx(r["mean_acc"], Fraction(1, 2))
    assert _approx(r["fwiou"], Fraction(1, 2))


def test_all_wrong_and_all_right():
    wrong = _scores([0, 1, 2, 2], [1, 2, 0, 1], 3)
    assert wrong["iou"] == [0.0, 0.0, 0.0]
    assert wrong["miou"] == 0.0 and wrong["pixel_acc"] == 0.0 and wrong["mean_acc"] == 0.0 and wrong["fwiou"] == 0.0
    right = _scores([[0, 1], [2, 255]], [[0, 1], [2, 1]], 3)
    assert right["iou"] == [1.0, 1.0, 1.0]
    assert right["miou"] == 1.0 and right["pixel_acc"] == 1.0 and right["mean_acc"] == 1.0 and right["fwiou"] == 1.0


def test_nothing_scored_gives_none():
    r = _scores([255, 255], [0, 1], 2)
    assert r["pixels"] == 0 and r["iou"] == [None, None]
    assert r["miou"] is None and r["pixel_acc"] is None and r["mean_acc"] is None and r["fwiou"] is None
    cm = ConfusionMatrix(2)
    cm.update(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert cm.compute()["miou"] is None


def test_batches_accumulate_and_reset():
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, 6, (4, 30, 40), generator=g)
    t[t == 5] = 255
    p = torch.randint(0, 5, (4, 30, 40), generator=g)
    whole, parts = ConfusionMatrix(5), ConfusionMatrix(5)
    whole.update(p, t)
    for i in range(4):
        parts.update(p[i], t[i])
    assert torch.equal(whole.matrix, parts.matrix)
    assert whole.matrix.sum() == int((t != 255).sum())
    parts.reset()
    assert parts.matrix.sum() == 0


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
def test_label_dtypes_agree(dtype):
    g = torch.Generator().manual_seed(2)
    t = torch.randint(0, 20, (50, 60), generator=g)
    t[t == 19] = 255
    p = torch.randint(0, 19, (50, 60), generator=g)
    ref = ConfusionMatrix(19)
    ref.update(p, t)
    cm = ConfusionMatrix(19)
    cm.update(p.to(dtype), t.to(dtype))
    assert torch.equal(cm.matrix, ref.matrix)
    # numpy input works too
    cm2 = ConfusionMatrix(19)
    cm2.update(p.numpy(), t.numpy())
    assert torch.equal(cm2.matrix, ref.matrix)


def test_large_label_values_and_many_classes():
    # 16-bit ignore value and a class count whose C*C needs int32 indices
    t = torch.tensor([0, 1, 299, 65535, 299], dtype=torch.int32)
    p = torch.tensor([0, 2, 299, 5, 0])
    r = _scores(t.tolist(), p.tolist(), 300, ignore_index=65535)
    assert r["pixels"] == 4
    assert r["matrix"][299][299] == 1 and r["matrix"][299][0] == 1 and r["matrix"][1][2] == 1


def test_ignore_index_inside_range_and_negative():
    # ignore_index 0 (inside [0, C)) and -1 (negative) take the general path
    r = _scores([0, 1, 2, 2], [2, 1, 2, 1], 3, ignore_index=0)
    assert r["pixels"] == 3 and r["matrix"][0] == [0, 0, 0]
    assert r["iou"] == [None, 0.5, 0.5]
    r = _scores([-1, 1, 2, 2], [2, 1, 2, 1], 3, ignore_index=-1)
    assert r["pixels"] == 3 and r["iou"] == [None, 0.5, 0.5]
    r = _scores([0, 1, 1], [0, 1, 0], 2, ignore_index=None)
    assert r["pixels"] == 3


def test_bad_inputs_are_reported():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"ground-truth labels out of range .*\[7\]"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match=r"predicted class ids out of range .*\[3\]"):
        cm.update(torch.tensor([0, 3]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\[-2\]"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, -2]))
    with pytest.raises(ValueError, match="shapes differ"):
        cm.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="argmax"):
        cm.update(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))
    assert cm.matrix.sum() == 0  # nothing half-added


def test_matches_torchmetrics_on_random_data():
    g = torch.Generator().manual_seed(3)
    c = 7
    jac_none = MulticlassJaccardIndex(c, average="none", ignore_index=255)
    jac_macro = MulticlassJaccardIndex(c, average="macro", ignore_index=255)
    acc_micro = MulticlassAccuracy(c, average="micro", ignore_index=255)
    acc_macro = MulticlassAccuracy(c, average="macro", ignore_index=255)
    cm = ConfusionMatrix(c)
    for _ in range(3):
        t = torch.randint(0, c, (2, 41, 37), generator=g)
        p = torch.where(torch.rand(t.shape, generator=g) < 0.6, t, torch.randint(0, c, t.shape, generator=g))
        t[torch.rand(t.shape, generator=g) < 0.1] = 255
        cm.update(p, t)
        for m in (jac_none, jac_macro, acc_micro, acc_macro):
            m.update(p, t)
    r = cm.compute()
    torch.testing.assert_close(torch.tensor(r["iou"], dtype=torch.float32), jac_none.compute(), rtol=0, atol=1e-6)
    assert r["miou"] == pytest.approx(float(jac_macro.compute()), abs=1e-6)
    assert r["pixel_acc"] == pytest.approx(float(acc_micro.compute()), abs=1e-6)
    assert r["mean_acc"] == pytest.approx(float(acc_macro.compute()), abs=1e-6)


def test_matches_torchmetrics_with_absent_class():
    # class 4 never occurs: torchmetrics' macro average leaves it out too
    g = torch.Generator().manual_seed(4)
    t = torch.randint(0, 4, (500,), generator=g)
    p = torch.randint(0, 4, (500,), generator=g)
    r = _scores(t.tolist(), p.tolist(), 5)
    jac = MulticlassJaccardIndex(5, average="macro", ignore_index=255)
    assert r["iou"][4] is None
    assert r["miou"] == pytest.approx(float(jac(p, t)), abs=1e-6)


def test_all_reduce_single_process(tmp_path):
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    before = cm.matrix.clone()
    cm.all_reduce()  # not initialised: a no-op
    assert torch.equal(cm.matrix, before)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        sm = SegMetrics(2)
        sm.update(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 0]]))
        sm.all_reduce()  # sum over one process: unchanged
        cm.all_reduce()
        assert torch.equal(cm.matrix, before)
        assert torch.equal(sm.confusion.matrix, before)
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- boundary band


def _brute_force_band(t: np.ndarray, width: float, ignore: int | None = 255) -> np.ndarray:
    """Independent, slow definition: 4-neighbour label changes, then all pixels within width."""
    h, w = t.shape
    edge = np.zeros((h, w), bool)
    for y, x in itertools.product(range(h), range(w)):
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w and t[yy, xx] != t[y, x]:
                edge[y, x] = True
    ey, ex = np.nonzero(edge)
    band = np.zeros((h, w), bool)
    for y, x in itertools.product(range(h), range(w)):
        if ignore is not None and t[y, x] == ignore:
            continue
        band[y, x] = bool(np.any((ey - y) ** 2 + (ex - x) ** 2 <= width * width))
    return band


def _square() -> np.ndarray:
    t = np.zeros((20, 20), np.uint8)
    t[6:14, 6:14] = 1  # an 8x8 square
    return t


def test_boundary_mask_square_by_hand():
    t = _square()
    # width 0: the label boundary itself. Inside ring of the square: 4*8 - 4 = 28 pixels;
    # outside pixels with a 4-neighbour in the square: 4 sides of 8 = 32 (no corners).
    assert int(boundary_mask(t, width=0).sum()) == 28 + 32
    # width 1: adds 1 ring inside (6x6 ring: 20), outside: 4 sides of 8 at distance 2 = 32,
    # plus the 4 diagonal corners at distance sqrt(2) > 1? no: they are at distance 1 from
    # the outside edge pixels (which touch them horizontally) -> 4.
    assert int(boundary_mask(t, width=1).sum()) == 28 + 32 + 20 + 32 + 4
    m2 = boundary_mask(t, width=2).numpy()
    assert np.array_equal(m2, _brute_force_band(t, 2))
    assert m2[10, 10] == False and m2[0, 0] == False and m2[9, 6] and m2[9, 3]  # noqa: E712


def test_boundary_mask_matches_brute_force_and_edt():
    rng = np.random.default_rng(5)
    t = np.kron(rng.integers(0, 3, (4, 5)), np.ones((6, 5), np.int64))  # 24x25 blocks
    t[rng.random(t.shape) < 0.03] = 255
    for width in (0, 1, 2, 2.5, 3, 7):
        m = boundary_mask(torch.from_numpy(t), width=width).numpy()
        assert np.array_equal(m, _brute_force_band(t, width)), width
        edges = boundary_mask(t, width=0, ignore_index=None).numpy()
        edt = (ndi.distance_transform_edt(~edges) <= width) & (t != 255)
        assert np.array_equal(m, edt), width


def test_boundary_mask_batched_and_large_against_edt():
    rng = np.random.default_rng(6)
    t = np.kron(rng.integers(0, 19, (3, 12, 16)), np.ones((1, 24, 24), np.uint8)).astype(np.uint8)
    t = np.ascontiguousarray(t[:, :, :370])  # rows of 370 px: 5 full 64-bit words and a partial one
    t[rng.random(t.shape) < 0.005] = 255
    for width in (7, 70):  # 70: dilation across more than one word
        m = boundary_mask(torch.from_numpy(t), width=width).numpy()
        for i in range(3):  # images in a batch do not touch each other
            edges = boundary_mask(t[i], width=0, ignore_index=None).numpy()
            assert np.array_equal(m[i], (ndi.distance_transform_edt(~edges) <= width) & (t[i] != 255))


def test_ignore_pixels_form_a_boundary_but_never_count():
    # class 0 | ignore band | class 1, as in PASCAL VOC outlines
    t = np.array([[0, 0, 0, 255, 255, 1, 1, 1]] * 3, np.uint8)
    m = boundary_mask(t, width=1).numpy()
    assert m.tolist()[0] == [False, True, True, False, False, True, True, False]
    uniform = np.full((5, 5), 2, np.uint8)
    assert not boundary_mask(uniform).any()
    with pytest.raises(ValueError, match="boundary width must be >= 0"):
        boundary_mask(t, width=-1)
    with pytest.raises(ValueError, match="2 dimensions"):
        BoundaryAccuracy().update(np.zeros(4, np.uint8), np.zeros(4, np.uint8))


def test_boundary_accuracy_by_hand():
    t = np.array([[0, 0, 0, 0, 1, 1, 1, 255]], np.uint8)
    p = np.array([[0, 1, 0, 1, 1, 0, 1, 1]], np.uint8)
    # width 1: edges at x=3,4 (and x=6,7 next to the ignore pixel); boundary = x in 2..6
    # (x=7 is ignore). boundary: x=2 ok, 3 wrong, 4 ok, 5 wrong, 6 ok -> 3/5
    # internal: x=0 ok, x=1 wrong -> 1/2
    ba = BoundaryAccuracy(width=1)
    ba.update(torch.from_numpy(p), torch.from_numpy(t))
    r = ba.compute()
    assert r == {"boundary_acc": 3 / 5, "internal_acc": 1 / 2, "boundary_pixels": 5, "internal_pixels": 2}
    ba.update(p, t)  # accumulates
    assert ba.compute()["boundary_pixels"] == 10
    ba.reset()
    assert ba.compute()["boundary_acc"] is None


def test_segmetrics_one_dict_and_format():
    t = torch.from_numpy(_square()).long()
    p = t.clone()
    p[6, 6:14] = 0  # top row of the square wrong: all in the boundary band
    sm = SegMetrics(3, boundary_width=2)
    sm.update(p, t)
    r = sm.compute()
    assert r["internal_acc"] == 1.0 and r["boundary_acc"] < 1.0
    assert r["boundary_pixels"] + r["internal_pixels"] == 400 == r["pixels"]
    assert r["iou"][2] is None and r["iou"][1] == pytest.approx(56 / 64)
    text = format_metrics(r, class_names=["bg", "square", "unused"])
    assert "square" in text and "87.50" in text and "n/a" in text
    assert "mIoU" in text and "boundary acc (width 2)" in text and "internal acc" in text
    assert "boundary_acc" not in SegMetrics(3, boundary_width=None).compute()
    with pytest.raises(ValueError, match="1 class names for 3 classes"):
        format_metrics(r, class_names=["a"])


def test_throughput_is_vectorised():
    # a 1024x2048 map (one Cityscapes image) with the band: ~15 ms here; a per-pixel
    # Python loop would take minutes, so a generous bound keeps this robust on busy CPUs.
    rng = np.random.default_rng(7)
    t = torch.from_numpy(np.kron(rng.integers(0, 19, (32, 64)), np.ones((32, 32), np.uint8)).astype(np.uint8))
    p = torch.where(torch.rand(t.shape) < 0.1, torch.randint(0, 19, t.shape, dtype=torch.uint8), t)
    sm = SegMetrics(19)
    sm.update(p, t)
    start = time.perf_counter()
    for _ in range(3):
        sm.update(p, t)
    assert (time.perf_counter() - start) / 3 < 0.5
    assert sm.compute()["pixels"] == 4 * 1024 * 2048


@pytest.mark.parametrize("ignore", [255, None])
def test_a_no_class_prediction_is_wrong_where_scored_and_nothing_where_ignored(ignore):
    gt = np.array([0, 1, 1, 1, 0, 255 if ignore is not None else 0])
    pred = np.array([0, 1, 255, 255, 0, 255])
    cm = ConfusionMatrix(2, ignore)
    cm.update(pred, gt, no_class=255)
    r = cm.compute()
    if ignore is not None:  # 5 scored: class 0 right twice, class 1 right once of three
        assert r["pixels"] == 5 and r["unassigned_pixels"] == 2
        assert r["iou"] == [1.0, pytest.approx(1 / 3)] and r["pixel_acc"] == pytest.approx(3 / 5)
    else:  # the last pixel is scored too: a class-0 pixel given no class
        assert r["pixels"] == 6 and r["unassigned_pixels"] == 3
        assert r["iou"] == [pytest.approx(2 / 3), pytest.approx(1 / 3)]
    with pytest.raises(ValueError, match="predicted class ids out of range"):
        cm.update(pred, gt)  # without no_class, 255 is an error as before


def test_label_agreement_counts_pixels_over_all_pairs():
    import numpy as np
    import torch

    from gcnseg.metrics import label_agreement

    a = torch.tensor([[0, 1], [2, 2]])
    b = np.array([[0, 1], [1, 2]])  # 3 of 4 the same
    c = torch.zeros(1, 3, dtype=torch.long)  # 3 of 3 the same as itself
    assert label_agreement([(a, b)]) == 0.75
    assert label_agreement([(a, b), (c, c.clone())]) == 6 / 7  # pixels, not images, weigh
    assert label_agreement([(a, b), (c, torch.zeros(3, 1))]) == 0.0  # a shape mismatch never agrees
    assert label_agreement([]) == 0.0
