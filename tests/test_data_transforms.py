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


@pytest.mark.parametrize("size", [[20], 20])
def test_one_size_is_a_square_for_crop_and_pad(size):
    """``[s]`` is a Size as ``s`` is (the config accepts both): a square crop, a square pad."""
    image, mask = build_transforms(cfg(flip=False, crop_size=size), train=True)(*encoded(40, 56, 3))
    assert image.shape == (3, 20, 20) and mask.shape == (20, 20)
    image, mask = build_transforms(cfg(flip=False, pad_size=size), train=True)(*encoded(16, 12, 3))
    assert image.shape == (3, 20, 20) and mask.shape == (20, 20) and (mask[16:] == 255).all()


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


def test_photometric_jitter_and_blur_change_images_not_masks():
    image0, mask0 = encoded(32, 48, 1)
    plain = build_transforms(cfg(flip=False), train=True)(image0, mask0)[0]
    jitter = build_transforms(cfg(flip=False, color_jitter=[0.4, 0.4, 0.4, 0.1]), train=True)
    blur = build_transforms(cfg(flip=False, blur=1.0), train=True)
    for t in (jitter, blur):
        outs = []
        for seed in range(3):
            torch.manual_seed(seed)
            image, mask = t(image0, mask0)
            assert np.array_equal(mask.numpy(), mask0)  # labels untouched
            outs.append(image)
        assert all((o - plain).abs().max() > 0.05 for o in outs)  # each draw changes the picture
        assert (outs[0] - outs[1]).abs().max() > 0  # by a different amount per draw
        torch.manual_seed(0)
        assert torch.equal(t(image0, mask0)[0], outs[0])  # reproduced by the seed
    torch.manual_seed(0)
    smooth = blur(image0, mask0)[0]
    assert smooth[1].diff(dim=1).abs().max() < plain[1].diff(dim=1).abs().max() + 1e-6  # blurred: no sharper
    # off: bit-identical to a config that never named them
    for off in (cfg(flip=False, color_jitter=[0.0, 0.0, 0.0, 0.0]), cfg(flip=False, blur=0.0)):
        torch.manual_seed(0)
        assert torch.equal(build_transforms(off, train=True)(image0, mask0)[0], plain)
    evaluation = build_transforms(cfg(color_jitter=[0.4] * 4, blur=1.0), train=False)
    assert torch.equal(evaluation(image0, mask0)[0], build_transforms(cfg(), train=False)(image0, mask0)[0])


def test_photometric_settings_are_checked():
    from gcnseg.config import ConfigError, load_config

    cfg_ = load_config(None, ["data.color_jitter=[0.3, 0.3, 0.3, 0.05]", "data.blur=0.5"])
    assert (cfg_.data.color_jitter, cfg_.data.blur) == ([0.3, 0.3, 0.3, 0.05], 0.5)
    for bad in ("[0.3, 0.3, 0.3]", "[0.3, 0.3, 0.3, 0.6]"):
        with pytest.raises(
            ConfigError, match=r"data\.color_jitter: expected \[brightness, contrast, saturation, hue\]"
        ):
            load_config(None, [f"data.color_jitter={bad}"])
    with pytest.raises(ConfigError, match=r"data\.color_jitter"):
        load_config(None, ["data.color_jitter=[-0.1, 0, 0, 0]"])
    with pytest.raises(ConfigError, match=r"data\.blur: must be at most 1"):
        load_config(None, ["data.blur=1.5"])
