"""Test-time inference: sliding window, multi-scale and flip averaging (paper Sec. 4.3, Tables 7, 9)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gcnseg.inference import DEFAULT_MS_SCALES, predict_scores, tile_starts
from gcnseg.models import GCNSeg


def _pointwise(num_classes: int = 5) -> nn.Module:
    """Logits are a fixed function of each pixel alone, so tiling cannot change them."""
    m = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, num_classes, 1))
    return m.eval()


def _symmetric_conv(num_classes: int = 4) -> nn.Module:
    """A 3x3 conv whose kernels are mirror-symmetric left-right: flip-equivariant."""
    conv = nn.Conv2d(3, num_classes, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_((conv.weight + conv.weight.flip(-1)) / 2)
    return conv.eval()


class Counting(nn.Module):
    """Records the input shape of every forward call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.inner(x)


def test_tile_starts():
    assert tile_starts(2048, 1024, 2 / 3) == [0, 341, 683, 1024]  # paper Sec. 4.3: four crops
    assert tile_starts(2048, 1024, 1 / 3) == [0, 512, 1024]
    assert tile_starts(2048, 1024, 0.0) == [0, 1024]
    assert tile_starts(1024, 1024, 2 / 3) == [0]
    assert tile_starts(500, 1024, 1 / 3) == [0]
    starts = tile_starts(53, 16, 1 / 3)
    assert starts[0] == 0 and starts[-1] == 53 - 16
    assert all(b - a <= 16 * (2 / 3) + 1e-9 for a, b in itertools.pairwise(starts))  # overlap >= 1/3
    with pytest.raises(ValueError, match=r"overlap must be in \[0, 1\)"):
        tile_starts(10, 4, 1.0)


def test_cityscapes_four_crops():
    model = Counting(_pointwise(3))
    image = torch.randn(1, 3, 1024, 2048)
    probs = predict_scores(model, image, tile=1024, overlap=2 / 3)
    assert model.shapes == [(1, 3, 1024, 1024)] * 4
    assert probs.shape == (1, 3, 1024, 2048)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 1024, 2048))


def test_tiling_equals_whole_image_for_pointwise_model():
    model = _pointwise()
    image = torch.randn(2, 3, 37, 53)
    whole = predict_scores(model, image)
    for tile, overlap in [(16, 1 / 3), ((20, 9), 0.5), ([16], 0.0), (40, 1 / 3)]:
        counting = Counting(model)
        tiled = predict_scores(counting, image, tile=tile, overlap=overlap)
        torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-6)
        th, tw = (tile, tile) if isinstance(tile, int) else (tile * 2)[:2]
        assert all(s[2] == min(th, 37) and s[3] == min(tw, 53) for s in counting.shapes)


def test_image_smaller_than_tile_runs_whole():
    model = Counting(_pointwise())
    image = torch.randn(1, 3, 30, 45)
    predict_scores(model, image, tile=64)
    assert model.shapes == [(1, 3, 30, 45)]
    model.shapes.clear()
    predict_scores(model, image, tile=(64, 20))  # taller than the image: full height, tiled across
    assert {s[2] for s in model.shapes} == {30} and {s[3] for s in model.shapes} == {20}
    assert len(model.shapes) == len(tile_starts(45, 20, 1 / 3)) == 3


def test_single_scale_and_output_is_softmax():
    model = _pointwise()
    image = torch.randn(1, 3, 21, 19)
    probs = predict_scores(model, image, scales=(1.0,))
    torch.testing.assert_close(probs, model(image).softmax(1), rtol=0, atol=1e-6)
    assert probs.is_inference()


def test_flip_of_flip_equivariant_model_changes_nothing():
    model = _symmetric_conv()
    image = torch.randn(1, 3, 23, 31)
    torch.testing.assert_close(
        predict_scores(model, image, flip=True), predict_scores(model, image, flip=False), rtol=0, atol=1e-6
    )


def test_flip_averages_with_the_mirrored_prediction():
    model = nn.Conv2d(3, 4, 3, padding=1).eval()  # not symmetric
    image = torch.randn(1, 3, 23, 31)
    with torch.no_grad():
        expected = (model(image).softmax(1) + model(image.flip(-1)).softmax(1).flip(-1)) / 2
    got = predict_scores(model, image, flip=True)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(got, predict_scores(model, image))


def test_multi_scale_is_the_mean_of_resized_probabilities():
    model = _symmetric_conv()
    image = torch.randn(1, 3, 24, 30)
    with torch.no_grad():
        small = F.interpolate(image, size=(12, 15), mode="bilinear", align_corners=False)
        p_small = F.interpolate(model(small).softmax(1), size=(24, 30), mode="bilinear", align_corners=False)
        expected = (p_small + model(image).softmax(1)) / 2
    torch.testing.assert_close(predict_scores(model, image, scales=(0.5, 1.0)), expected, rtol=0, atol=1e-6)


def test_odd_sizes_all_options():
    model = Counting(nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 6, 5, padding=2)).eval())
    image = torch.randn(2, 3, 37, 53)
    probs = predict_scores(model, image, scales=DEFAULT_MS_SCALES, flip=True, tile=32, overlap=1 / 3, num_classes=6)
    assert probs.shape == (2, 6, 37, 53)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 37, 53))
    sizes = {s[2:] for s in model.shapes}
    assert (round(37 * 0.5), round(53 * 0.5)) in sizes and max(h for h, _ in sizes) <= 32
    assert DEFAULT_MS_SCALES == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def test_works_with_gcnseg():
    model = GCNSeg(3, backbone="resnet18", k=3).eval()
    image = torch.randn(1, 3, 45, 70)
    probs = predict_scores(model, image, scales=(0.75, 1.0), flip=True, tile=48)
    assert probs.shape == (1, 3, 45, 70)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 45, 70))


def test_bad_arguments():
    model = _pointwise(5)
    image = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="expected 3"):
        predict_scores(model, image, num_classes=3)
    with pytest.raises(ValueError, match="logits"):
        predict_scores(nn.Conv2d(3, 2, 3), image)  # no padding: output smaller than input
    with pytest.raises(ValueError, match=r"image must be \[N, 3, H, W\]"):
        predict_scores(model, image[0])
    with pytest.raises(ValueError, match="scales must not be empty"):
        predict_scores(model, image, scales=())
    with pytest.raises(ValueError, match="overlap must be in"):
        predict_scores(model, image, tile=4, overlap=1.5)


def test_pad_runs_the_model_on_the_padded_size_and_crops_back():
    """Section 4.1: inputs padded to 512x512 (here 16x24) with zeros, scores cropped back."""
    seen = []

    class GlobalMean(torch.nn.Module):
        """Logits depend on the whole input (so padding changes them)."""

        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            m = x.mean(dim=(2, 3), keepdim=True)
            return torch.cat([x[:, :1] + m[:, :1], x[:, 1:2] - m[:, :1]], 1)

    image = torch.randn(1, 3, 10, 13)
    probs = predict_scores(GlobalMean(), image, pad=(16, 24))
    assert seen == [(16, 24)] and probs.shape == (1, 2, 10, 13)
    padded = torch.nn.functional.pad(image, (0, 11, 0, 6))
    expected = GlobalMean()(padded)[:, :, :10, :13].softmax(1)
    torch.testing.assert_close(probs, expected)
    seen.clear()
    predict_scores(GlobalMean(), torch.randn(1, 3, 20, 30), pad=16)  # larger: run as it is
    assert seen == [(20, 30)]


def test_one_pass_segmentation_is_the_argmax_of_the_scores(trained_run):
    """``predict.segment`` takes the logits' argmax when there is one pass (no softmax);
    the classes are those of the softmax scores."""
    import dataclasses

    import numpy as np
    from fakes import street_scene

    from gcnseg.checkpoint import load_model
    from gcnseg.optimize import optimize_for_inference
    from gcnseg.predict import segment, to_input

    model, cfg, _ = load_model(trained_run)
    model = optimize_for_inference(model)
    rgb = street_scene(60, 84)
    with torch.inference_mode():
        scores = predict_scores(model, to_input(rgb, cfg.data.mean, cfg.data.std))
    expected = scores.argmax(1)[0].numpy()
    assert np.array_equal(segment(model, rgb, cfg, torch.device("cpu")), expected)
    flipped = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, flip=True))
    assert segment(model, rgb, flipped, torch.device("cpu")).shape == expected.shape  # the scores' path
