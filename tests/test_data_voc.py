"""PASCAL VOC 2012 and the SBD augmentation (Section 4), in their real layouts."""

import numpy as np
import pytest
import torchvision
from fakes import make_sbd, make_voc, save_sbd_mat

from gcnseg.data import DATASETS, VOC, VOCAug
from gcnseg.data.voc import VOC_CLASSES
from gcnseg.errors import DataError


def test_voc_loads_palette_masks_and_matches_torchvision(tmp_path):
    masks = make_voc(tmp_path, ["2007_000032", "2007_000039"], ["2007_000033"])
    ds = DATASETS["voc"](str(tmp_path), "train")
    assert len(ds) == 2 and ds.num_classes == 21 and ds.classes == VOC_CLASSES and len(ds.palette) == 21
    assert ds.palette[:3] == [(0, 0, 0), (128, 0, 0), (0, 128, 0)] and ds.ignore_index == 255
    image, mask = ds.load(1)
    assert image.mode == "RGB" and image.size == (32, 24)
    assert mask.dtype == np.int64 and np.array_equal(mask, masks["2007_000039"])
    assert set(np.unique(mask)) <= {0, 1, 15, 20, 255} and ds.name(1) == "2007_000039"
    tv = torchvision.datasets.VOCSegmentation(str(tmp_path), year="2012", image_set="train")
    assert [str(p) for p, _ in ds.samples] == tv.images and [str(m) for _, m in ds.samples] == tv.masks
    assert np.array_equal(np.asarray(tv[1][1]), mask)
    assert len(VOC(tmp_path, "trainval")) == 3 and ds[0][1].shape == (24, 32)
    # root may also be VOC2012 itself
    assert len(VOC(tmp_path / "VOCdevkit" / "VOC2012", "val")) == 1


def test_voc_bad_root_and_split(tmp_path):
    with pytest.raises(
        DataError, match=r"nowhere: not found; expected a folder holding VOCdevkit/VOC2012 .*host\.robots"
    ):
        VOC(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"VOC2012: not found; expected VOCdevkit/VOC2012"):
        VOC(tmp_path)
    make_voc(tmp_path, ["a"], ["b"])
    with pytest.raises(DataError, match=r"test\.txt: not found; expected the VOC split list"):
        VOC(tmp_path, "test")


def test_voc_bad_files_name_the_file(tmp_path):
    make_voc(tmp_path, ["a", "b", "c"], ["d"])
    base = tmp_path / "VOCdevkit" / "VOC2012"
    (base / "SegmentationClass" / "a.png").unlink()
    (base / "JPEGImages" / "b.jpg").write_bytes(b"\xff\xd8\xff garbage")
    ds = VOC(tmp_path)
    with pytest.raises(DataError, match=r"SegmentationClass/a\.png: mask file is missing"):
        ds.load(0)
    with pytest.raises(DataError, match=r"JPEGImages/b\.jpg: cannot read image"):
        ds.load(1)
    assert ds.load(2)[1].shape == (24, 32)


def test_sbd_mat_matches_torchvision(tmp_path):
    make_sbd(tmp_path, ["2008_000002"], ["2008_000003"])
    sbd = tmp_path / "benchmark_RELEASE" / "dataset"
    tv = torchvision.datasets.SBDataset(str(sbd), image_set="train", mode="segmentation")
    from gcnseg.data.voc import read_sbd_mat

    mine = read_sbd_mat(sbd / "cls" / "2008_000002.mat")
    assert np.array_equal(np.asarray(tv[0][1]), mine) and set(np.unique(mine)) <= {0, 3, 7, 12}
    tvb = torchvision.datasets.SBDataset(str(sbd), image_set="train", mode="boundaries")
    assert tvb[0][1].shape == (20, 24, 32)  # the fake .mat has SBD's full struct


def test_voc_aug_is_sbd_plus_voc_train_minus_voc_val(tmp_path):
    voc = make_voc(tmp_path, ["t1", "t2", "shared"], ["v1", "v2"])
    sbd = make_sbd(tmp_path, ["s1", "shared", "v1"], ["s2", "v2", "s1"])
    ds = DATASETS["voc_aug"](str(tmp_path), "train")
    names = [ds.name(i) for i in range(len(ds))]
    assert names == ["t1", "t2", "shared", "s1", "s2"]  # no VOC val image, no duplicate
    assert np.array_equal(ds.load(2)[1], voc["shared"])  # VOC's own mask wins
    assert np.array_equal(ds.load(3)[1], sbd["s1"]) and str(ds.samples[3][1]).endswith("cls/s1.mat")
    val = VOCAug(tmp_path, "val")
    assert [val.name(i) for i in range(len(val))] == ["v1", "v2"]
    assert ds.classes == VOC_CLASSES


def test_voc_aug_explicit_roots_and_errors(tmp_path):
    make_voc(tmp_path / "v", ["t1"], ["v1"])
    make_sbd(tmp_path / "s", ["s1"], [])
    ds = VOCAug(None, voc_root=tmp_path / "v", sbd_root=tmp_path / "s" / "benchmark_RELEASE" / "dataset")
    assert len(ds) == 2
    with pytest.raises(DataError, match=r"benchmark_RELEASE/dataset: not found; expected the SBD .*benchmark\.tgz"):
        VOCAug(tmp_path / "v")
    bad = tmp_path / "s" / "benchmark_RELEASE" / "dataset" / "cls" / "s1.mat"
    bad.write_bytes(b"MATLAB 5.0 truncated")
    with pytest.raises(DataError, match=r"s1\.mat: cannot read SBD mask"):
        ds.load(1)
    save_sbd_mat(bad, np.full((24, 32), 21, np.uint8))
    with pytest.raises(DataError, match=r"s1\.mat: label values 21 outside \[0, 21\)"):
        ds.load(1)
