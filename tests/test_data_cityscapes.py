"""Cityscapes (Section 4.3): labelIds -> 19 train ids, fine and coarse (train_extra)."""

import numpy as np
import pytest
import torchvision
from fakes import make_cityscapes, save

from gcnseg.config import DataConfig
from gcnseg.data import DATASETS, Cityscapes, build_dataset
from gcnseg.errors import DataError


def test_classes_and_exact_mapping(tmp_path):
    ids = make_cityscapes(tmp_path, "train", ["aachen_000000_000019", "bochum_000000_000313"])
    ds = DATASETS["cityscapes"](str(tmp_path), "train")
    assert ds.num_classes == 19 and ds.classes[0] == "road" and ds.classes[18] == "bicycle"
    assert ds.palette[0] == (128, 64, 128) and len(ds.palette) == 19
    raw = ids["aachen_000000_000019"]
    _, mask = ds.load(0)
    assert ds.name(0) == "aachen_000000_000019"
    for label_id, train_id in [(0, 255), (1, 255), (7, 0), (8, 1), (9, 255), (24, 11), (26, 13), (33, 18)]:
        assert (mask[raw == label_id] == train_id).all()
    tv = torchvision.datasets.Cityscapes(str(tmp_path), split="train", mode="fine", target_type="semantic")
    assert sorted(tv.images) == [str(p) for p, _ in ds.samples]
    assert sorted(t[0] for t in tv.targets) == [str(m) for _, m in ds.samples]


def test_train_extra_is_coarse_and_stage1_joins_splits(tmp_path):
    make_cityscapes(tmp_path, "train", ["aachen_000000_000019"])
    coarse = make_cityscapes(tmp_path, "train_extra", ["augsburg_000000_000000", "bad_000000_000001"], coarse=True)
    extra = Cityscapes(tmp_path, "train_extra")
    assert str(extra.samples[0][1]).endswith(
        "gtCoarse/train_extra/augsburg/augsburg_000000_000000_gtCoarse_labelIds.png"
    )
    assert (extra.load(0)[1][coarse["augsburg_000000_000000"] == 26] == 13).all()
    cfg = DataConfig(dataset="cityscapes", root=str(tmp_path), flip=False)
    both = build_dataset(cfg, "train+train_extra", train=False)
    assert len(both) == 3 and both.num_classes == 19 and both.name(2) == "bad_000000_000001"


def test_cityscapes_bad_input(tmp_path):
    with pytest.raises(
        DataError, match=r"leftImg8bit/train: not found; expected leftImg8bit/train/<city>/ .*cityscapes-dataset"
    ):
        Cityscapes(tmp_path, "train")
    make_cityscapes(tmp_path, "val", ["lindau_000000_000019", "lindau_000001_000019"])
    with pytest.raises(DataError, match=r"gtCoarse/val: not found"):
        Cityscapes(tmp_path, "val", mode="coarse")
    save(
        tmp_path / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_labelIds.png",
        np.full((16, 32), 34, np.uint8),
    )
    (tmp_path / "gtFine" / "val" / "lindau" / "lindau_000001_000019_gtFine_labelIds.png").unlink()
    ds = Cityscapes(tmp_path, "val")
    with pytest.raises(
        DataError, match=r"lindau_000000_000019_gtFine_labelIds\.png: label ids 34 are not Cityscapes labelIds"
    ):
        ds.load(0)
    with pytest.raises(DataError, match=r"lindau_000001_000019_gtFine_labelIds\.png: mask file is missing"):
        ds.load(1)
