"""build_dataset: attributes forwarded, '+'-joined datasets and splits, per-dataset options."""

import numpy as np
import pytest
import torch
from fakes import make_coco, make_sbd, make_voc

from gcnseg.config import DataConfig
from gcnseg.data import DATASETS, build_dataset
from gcnseg.errors import DataError

# pycocotools (not this project) warns about numpy 2's copy keyword
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

NAMES = {"voc", "voc_aug", "coco_voc", "cityscapes", "camvid", "folder", "synthetic-shapes"}


def test_registry_names():
    assert set(DATASETS) == NAMES


def test_default_config_builds_synthetic_shapes():
    cfg = DataConfig(options={"size": 32, "length": 4, "eval_length": 2})
    train, val = build_dataset(cfg, "train", train=True), build_dataset(cfg, "val", train=False)
    assert (len(train), len(val)) == (4, 2)
    image, mask = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and mask.dtype == torch.int64
    for ds in (train, val):
        assert ds.num_classes == 4 and len(ds.classes) == 4 and len(ds.palette) == 4 and ds.ignore_index == 255
        pil, raw = ds.load(1)
        assert pil.size == (32, 32) and raw.dtype == np.int64 and ds.name(1).endswith("000001")
    assert not np.array_equal(train.load(0)[1], val.load(0)[1])


def test_stage1_concatenation_with_per_dataset_roots(tmp_path):
    make_voc(tmp_path / "voc", ["t1", "t2"], ["v1"])
    make_sbd(tmp_path / "voc", ["s1"], [])
    make_coco(tmp_path / "coco")
    cfg = DataConfig(
        dataset="coco_voc+voc_aug", root=str(tmp_path / "voc"), pad_size=40, flip=False,
        options={"coco_voc": {"root": str(tmp_path / "coco")}},
    )  # fmt: skip
    ds = build_dataset(cfg, "train", train=True)
    assert len(ds) == 2 + 3 and [ds.name(i) for i in range(5)] == ["a", "c", "t1", "t2", "s1"]
    assert ds.num_classes == 21 and ds.classes[15] == "person"
    images, masks = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert images.shape == (5, 3, 40, 40) and masks.shape == (5, 40, 40)
    assert (masks[0, :20, :30] == torch.from_numpy(DATASETS["coco_voc"](tmp_path / "coco").load(0)[1])).all()
    # validation on VOC val only: COCO is left out of "val"
    cfg.options["coco_voc"]["splits"] = {"val": None}
    val = build_dataset(cfg, "val", train=False)
    assert [val.name(i) for i in range(len(val))] == ["v1"]
    # one root for everything: ROOT/{VOCdevkit, benchmark_RELEASE, coco}
    (tmp_path / "coco").rename(tmp_path / "voc" / "coco")
    one = build_dataset(DataConfig(dataset="coco_voc+voc_aug", root=str(tmp_path / "voc")), "train", train=False)
    assert len(one) == 5


def test_build_errors(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'kitti'"):
        build_dataset(DataConfig(dataset="kitti"), "train", True)
    with pytest.raises(DataError, match=r"synthetic-shapes: bad data.options \['colour'\]"):
        build_dataset(DataConfig(options={"colour": 1}), "train", True)
    from fakes import make_cityscapes

    make_voc(tmp_path, ["a"], ["b"])
    make_cityscapes(tmp_path, "train", ["x_0_0"])
    with pytest.raises(DataError, match="cannot join VOC and Cityscapes"):
        build_dataset(DataConfig(dataset="voc+cityscapes", root=str(tmp_path)), "train", True)
    with pytest.raises(DataError, match=r"voc: no root given; expected a folder holding VOCdevkit/VOC2012"):
        build_dataset(DataConfig(dataset="voc"), "train", True)
