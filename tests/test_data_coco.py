"""COCO -> VOC (Section 4.2): rendering with pycocotools, class mapping, dropped images."""

import json

import numpy as np
import pytest
from fakes import make_coco, rgb, save

from gcnseg.data import COCOVOC, DATASETS
from gcnseg.data.coco import COCO_TO_VOC
from gcnseg.data.voc import VOC_CLASSES
from gcnseg.errors import DataError

# pycocotools (not this project) warns about numpy 2's copy keyword
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_mapping_covers_the_20_voc_classes():
    assert sorted(COCO_TO_VOC.values()) == list(range(1, 21))
    assert VOC_CLASSES[COCO_TO_VOC["couch"]] == "sofa" and VOC_CLASSES[COCO_TO_VOC["tv"]] == "tvmonitor"


def test_renders_voc_classes_and_drops_images_without_them(tmp_path):
    expected = make_coco(tmp_path)
    ds = DATASETS["coco_voc"](str(tmp_path), "train")  # "train" -> train2017
    assert [ds.name(i) for i in range(len(ds))] == ["a", "c"]  # giraffe-only and empty images dropped
    assert ds.classes == VOC_CLASSES and ds.num_classes == 21
    image, mask = ds.load(0)
    assert image.size == (30, 20) and mask.dtype == np.int64
    dog = mask[12:18, 22:28]  # polygon: dog -> 12
    expected["a"][12:18, 22:28] = dog  # polygon edges are pycocotools' business; check the interior
    assert (dog[1:-1, 1:-1] == 12).all()
    assert np.array_equal(mask, expected["a"])  # person 15, car 7, overlap 255, giraffe background
    assert np.array_equal(ds.load(1)[1], expected["c"])  # crowd region ignored


def test_coco_bad_input(tmp_path):
    with pytest.raises(DataError, match=r"coco: not found; expected a COCO folder"):
        COCOVOC(tmp_path / "coco")
    make_coco(tmp_path)
    with pytest.raises(DataError, match=r"instances_val2017\.json: not found; expected COCO instance annotations"):
        COCOVOC(tmp_path, "val")
    (tmp_path / "train2017" / "a.jpg").unlink()
    ds = COCOVOC(tmp_path, "train2017")
    with pytest.raises(DataError, match=r"train2017/a\.jpg: image file is missing"):
        ds.load(0)
    save(tmp_path / "train2017" / "c.jpg", rgb(21, 30, 0), "JPEG")
    with pytest.raises(
        DataError, match=r"c\.jpg: image size 30x21 does not match 30x20 recorded in .*instances_train2017"
    ):
        ds.load(1)
    ann = tmp_path / "annotations" / "instances_train2017.json"
    data = json.loads(ann.read_text())
    data["images"][2]["height"] = 21
    ann.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"instances_train2017\.json: annotation 6 of image 3 has size 30x20, .* 30x21"):
        COCOVOC(tmp_path, "train2017").load(1)
    ann.write_text("{not json")
    with pytest.raises(DataError, match=r"instances_train2017\.json: not a valid COCO annotation file"):
        COCOVOC(tmp_path, "train2017")
