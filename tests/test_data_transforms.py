"""Joint transforms: image and mask stay aligned, padding fills, collation, determinism."""

import numpy as np
import pytest
import torch
from fakes import blocks, make_folder
from PIL import Image
from scipy.ndimage import maximum_filter, minimum_filter

from gcnseg.config import DataConfig
from gcnseg.data import build_dataset, build_transforms

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def encoded(h: int, w: int, seed: int) -> tuple[Image.Image, np.ndarray]:
    """A mask of 8-px blocks (labels 0..9) and an image whose red channel is 20 * label."""
    mask = blocks(h, w, list(range(10)), seed=seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = mask * 20
    img[..., 1] = np.arange(w)[None, :] * 255 // w  # left-right gradient: shows flips
    return Image.fromarray(img), mask


def decode(image: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Red channel back to labels, and the green gradient, from a normalised image."""
    r = (image[0] * STD[0] + MEAN[0]) * 255
    return torch.round(r / 20).long().numpy(), (image[1] * STD[1] + MEAN[1]).numpy()


def cfg(**kw) -> DataConfig:
    return DataConfig(mean=MEAN, std=STD, **kw)


@pytest.mark.parametrize("seed", range(6))
def test_image_and_mask_stay_aligned_under_scale_flip_pad_crop(seed):
    t = build_transforms(cfg(scale_range=[0.5, 2.0], flip=True, pad_size=40, crop_size=[32, 48]), train=True)
    torch.manual_seed(seed)
    image, mask = t(*encoded(40, 56, seed))
    assert image.shape == (3, 32, 48) and image.dtype == torch.float32
    assert mask.shape == (32, 48) and mask.dtype == torch.int64
    labels, _ = decode(image)
    valid = mask.numpy() != 255
    assert valid.mean() > 0.2
    m = mask.numpy()
    interior = valid & (maximum_filter(m, 3, mode="constant", cval=255) == minimum_filter(m, 3))  # not at edges
    assert interior.sum() > 50 and (labels[interior] == m[interior]).all()
    assert (labels[valid] == m[valid]).mean() > 0.75  # resampled block edges may differ
    pad = ~valid
    assert torch.allclose(image[:, torch.from_numpy(pad)], torch.zeros(1), atol=1e-6)  # padding = the mean


def test_flip_moves_image_and_mask_together():
    t = build_transforms(cfg(flip=True), train=True)
    image0, mask0 = encoded(16, 24, 0)
    flipped = 0
    for seed in range(8):
        torch.manual_seed(seed)
        image, mask = t(image0, mask0)
        labels, gradient = decode(image)
        assert np.array_equal(labels, mask.numpy())
        if gradient[0, 0] > gradient[0, -1]:
            flipped += 1
            assert np.array_equal(mask.numpy(), mask0[:, ::-1])
        else:
            assert np.array_equal(mask.numpy(), mask0)
    assert 0 < flipped < 8


def test_pad_to_fixed_size_fills_mean_and_ignore():
    t = build_transforms(cfg(flip=False, pad_size=[24, 32]), train=True)
    image, mask = t(*encoded(16, 20, 1))
    assert image.shape == (3, 24, 32) and mask.shape == (24, 32)
    assert (mask[16:] == 255).all() and (mask[:, 20:] == 255).all() and (mask[:16, :20] != 255).all()
    assert image[:, 16:].abs().max() == 0 and image[:, :, 20:].abs().max() == 0
    # images larger than pad_size are cropped to it, so batches still collate
    big, m = t(*encoded(40, 40, 2))
    assert big.shape == (3, 24, 32) and m.shape == (24, 32)


def test_normalisation_and_eval_transform():
    img = Image.fromarray(np.full((8, 8, 3), 255, np.uint8))
    mask = np.zeros((8, 8), np.int64)
    image, m = build_transforms(cfg(), train=False)(img, mask)
    expected = (1 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(image[:, 0, 0], expected) and m.dtype == torch.int64
    image, m = build_transforms(cfg(eval_size=16), train=False)(*encoded(8, 12, 0))
    assert image.shape == (3, 16, 24) and m.shape == (16, 24)
    image, m = build_transforms(cfg(eval_size=[10, 10]), train=False)(*encoded(8, 12, 0))
    assert image.shape == (3, 10, 10) and m.shape == (10, 10)
    _, m = build_transforms(cfg(ignore_index=-1, flip=False, pad_size=12), train=True)(*encoded(8, 8, 0))
    assert (m[8:] == -1).all()


def test_seeded_transforms_reproduce_and_batches_collate(tmp_path):
    make_folder(tmp_path, [f"s{i}" for i in range(6)], ["a", "b", "c", "d"], size=(20, 28))
    c = DataConfig(dataset="folder", root=str(tmp_path), scale_range=[0.5, 1.5], crop_size=16)
    ds = build_dataset(c, "all", train=True)
    torch.manual_seed(7)
    first = [ds[i] for i in range(6)]
    torch.manual_seed(7)
    second = [ds[i] for i in range(6)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second))
    torch.manual_seed(8)
    assert not all(torch.equal(a[0], ds[i][0]) for i, a in enumerate(first))
    images, masks = next(iter(torch.utils.data.DataLoader(ds, batch_size=6)))
    assert images.shape == (6, 3, 16, 16) and masks.shape == (6, 16, 16) and masks.dtype == torch.int64
