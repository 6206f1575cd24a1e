"""Robust image and mask reading: modes, 16-bit masks and each bad-input case."""

import numpy as np
import pytest
from PIL import Image

from gcnseg.data.io import check_mask, read_image, read_mask
from gcnseg.errors import DataError


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "RGB"])
def test_images_of_any_mode_become_rgb(tmp_path, mode):
    arr = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    img = Image.fromarray(arr, "L").convert(mode)
    img.save(tmp_path / "x.png")
    out = read_image(tmp_path / "x.png")
    assert out.mode == "RGB" and out.size == (10, 12)
    if mode in ("L", "RGBA", "RGB"):
        assert np.array_equal(np.asarray(out)[..., 1], arr)


def test_16bit_image_is_scaled_to_8bit(tmp_path):
    Image.fromarray(np.full((4, 5), 65535, np.uint16)).save(tmp_path / "x.png")
    assert np.asarray(read_image(tmp_path / "x.png")).min() == 255


def test_masks_palette_8bit_16bit_and_gray_rgb(tmp_path):
    m = np.array([[0, 1, 20], [255, 3, 4]], np.uint8)
    p = Image.fromarray(m, "P")
    p.putpalette([0, 0, 0, 128, 0, 0] * 128)
    p.save(tmp_path / "p.png")
    assert np.array_equal(read_mask(tmp_path / "p.png"), m)  # palette indices, not colours
    Image.fromarray(m).save(tmp_path / "l.png")
    assert read_mask(tmp_path / "l.png").dtype == np.int64
    big = np.array([[0, 300], [1000, 65535]], np.uint16)
    Image.fromarray(big).save(tmp_path / "i16.png")
    assert np.array_equal(read_mask(tmp_path / "i16.png"), big.astype(np.int64))
    Image.fromarray(np.stack([m] * 3, -1)).save(tmp_path / "g.png")
    assert np.array_equal(read_mask(tmp_path / "g.png"), m)


def test_colour_mask_is_an_error(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (4, 4, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    with pytest.raises(DataError, match=r"c\.png: mask is a colour image"):
        read_mask(tmp_path / "c.png")


def test_missing_corrupt_and_truncated_files(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jpg: image file is missing"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(DataError, match=r"nope\.png: mask file is missing"):
        read_mask(tmp_path / "nope.png")
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"junk\.png: cannot read image"):
        read_image(tmp_path / "junk.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"t\.png: cannot read image \(corrupt or truncated"):
        read_image(tmp_path / "t.png")
    with pytest.raises(DataError, match=r"t\.png: cannot read mask"):
        read_mask(tmp_path / "t.png")


def test_check_mask_size_and_label_range():
    m = np.array([[0, 1], [2, 255]])
    assert check_mask(m, (2, 2), 3, "m.png", "i.jpg") is m
    with pytest.raises(DataError, match=r"m\.png: mask size 2x2 does not match image i\.jpg size 3x2"):
        check_mask(m, (3, 2), 3, "m.png", "i.jpg")
    with pytest.raises(DataError, match=r"m\.png: label values 2 outside \[0, 2\)"):
        check_mask(m, (2, 2), 2, "m.png", "i.jpg")
    with pytest.raises(DataError, match=r"label values -1"):
        check_mask(np.array([[-1]]), (1, 1), 2, "m.png", "i.jpg")
