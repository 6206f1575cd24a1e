"""The generic folder dataset: images/ + masks/ with matching stems and a class list."""

import numpy as np
import pytest
from fakes import make_folder, save
from PIL import Image

from gcnseg.data import DATASETS, Folder
from gcnseg.errors import DataError


def test_folder_all_split_file_and_subfolder(tmp_path):
    masks = make_folder(tmp_path, ["x1", "x2", "x3"], ["bg", "cat", "dog"])
    ds = DATASETS["folder"](str(tmp_path), "all")
    assert ds.classes == ["bg", "cat", "dog"] and ds.num_classes == 3 and len(ds.palette) == 3
    assert len(ds) == 3 and ds.name(2) == "x3" and np.array_equal(ds.load(2)[1], masks["x3"])
    (tmp_path / "train.txt").write_text("x3\nx1\n")
    assert [Folder(tmp_path, "train").name(i) for i in range(2)] == ["x3", "x1"]
    make_folder(tmp_path / "val", ["v"], ["bg", "cat", "dog"])
    assert len(Folder(tmp_path, "val")) == 1
    custom = Folder(tmp_path, "all", classes=["a", "b", "c", "d"], palette=[[1, 2, 3]] * 4)
    assert custom.num_classes == 4 and custom.palette[0] == (1, 2, 3)


def test_folder_converts_images_and_reads_16bit_masks(tmp_path):
    make_folder(tmp_path, ["g", "r", "p"], ["bg", "fg"])
    Image.open(tmp_path / "images" / "g.png").convert("L").save(tmp_path / "images" / "g.png")
    Image.open(tmp_path / "images" / "r.png").convert("RGBA").save(tmp_path / "images" / "r.png")
    Image.open(tmp_path / "images" / "p.png").convert("P").save(tmp_path / "images" / "p.png")
    m16 = np.zeros((16, 16), np.uint16)
    m16[4:8] = 1
    (tmp_path / "masks" / "g.png").unlink()
    save(tmp_path / "masks" / "g.tif", m16)  # other mask extension, 16-bit
    ds = Folder(tmp_path)
    for i in range(3):
        image, _mask = ds.load(i)
        assert image.mode == "RGB" and image.size == (16, 16)
    assert np.array_equal(ds.load(0)[1], m16.astype(np.int64))


def test_folder_bad_input(tmp_path):
    make_folder(tmp_path, [], ["bg"])
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(DataError, match=r"classes\.txt: not found; expected one class name per line"):
        Folder(tmp_path)
    make_folder(tmp_path, ["a", "b", "c"], ["bg", "fg"])
    for text, problem in (("a\nb\na\n", r":3: 'a' names two classes"),
                          ("a 1 2 3\nb 1 2 3\n", r":2: 'b' has the colour of 'a' \(1, 2, 3\)")):  # fmt: skip
        (tmp_path / "classes.txt").write_text(text)
        with pytest.raises(DataError, match=r"classes\.txt" + problem):
            Folder(tmp_path)
    (tmp_path / "classes.txt").write_text("bg\nfg\n")
    with pytest.raises(DataError, match=r"split 'train' not found; expected train\.txt or train/images/"):
        Folder(tmp_path, "train")
    (tmp_path / "masks" / "a.png").unlink()
    save(tmp_path / "masks" / "b.png", np.full((16, 16), 2, np.uint8))
    (tmp_path / "train.txt").write_text("a\nb\nghost\n")
    ds = Folder(tmp_path, "train")
    with pytest.raises(DataError, match=r"images/a\.png: missing mask \(no file with this stem in .*masks\)"):
        ds.load(0)
    (tmp_path / "masks" / "a.jpg").write_bytes(b"a JPEG")  # lossy: named as the problem, not as a missing mask
    with pytest.raises(DataError, match=r"masks/a\.jpg: a mask must be \.png, .* \(lossless\), not \.jpg$"):
        ds.load(0)
    (tmp_path / "masks" / "a.jpg").unlink()
    (tmp_path / "masks" / "a.png.bak").write_bytes(b"an old copy")  # not a mask of a, nor a lossy one
    with pytest.raises(DataError, match=r"images/a\.png: missing mask"):
        ds.load(0)
    save(tmp_path / "images" / ".a.png", np.zeros((16, 16, 3), np.uint8))  # hidden: no sample of the folder
    assert [image.name for image, _ in Folder(tmp_path, "all").samples] == ["a.png", "b.png", "c.png"]
    with pytest.raises(DataError, match=r"masks/b\.png: label values 2 outside \[0, 2\)"):
        ds.load(1)
    with pytest.raises(DataError, match=r"images/ghost: image file is missing"):
        ds.load(2)
    with pytest.raises(DataError, match=r"nothing: not found; expected a dataset folder"):
        Folder(tmp_path / "nothing")
