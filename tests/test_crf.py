"""Dense CRF post-processing (Tables 7 and 9, "-CRF" rows): runs the real pydensecrf2."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from gcnseg.crf import dense_crf, require_crf
from gcnseg.errors import GcnsegError


def _two_halves(h: int = 32, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A dark left half and a bright right half, and the true labels 0 | 1."""
    rng = np.random.default_rng(0)
    image = np.where(np.arange(w)[None, :, None] < w // 2, 30, 220) + rng.integers(-5, 6, (h, w, 3))
    labels = np.zeros((h, w), np.int64)
    labels[:, w // 2 :] = 1
    return image.astype(np.uint8), labels


def test_crf_cleans_noisy_scores_along_colour_edges():
    image, labels = _two_halves()
    rng = np.random.default_rng(1)
    p1 = np.where(labels == 1, 0.7, 0.3)
    flip = rng.random(labels.shape) < 0.2  # 20% of pixels weakly on the wrong side
    p1 = np.where(flip, 1 - p1 + 0.05 * (1 - 2 * labels), p1)  # wrong class at 0.65
    probs = np.stack([1 - p1, p1]).astype(np.float32)
    before = (probs.argmax(0) == labels).mean()
    out = dense_crf(image, probs)
    after = (out == labels).mean()
    assert out.shape == labels.shape and out.dtype == np.int64
    assert before < 0.85 and after > 0.98, (before, after)


def test_crf_moves_a_soft_boundary_onto_the_colour_edge():
    image, labels = _two_halves()
    x = np.arange(32, dtype=np.float32)
    p1 = np.broadcast_to(1 / (1 + np.exp(-(x - 20) / 2)), (32, 32))  # scores put the change at x=20
    probs = np.stack([1 - p1, p1]).astype(np.float32)
    assert (probs.argmax(0)[0] == 1).argmax() == 21
    out = dense_crf(image, probs)
    assert np.array_equal(out, labels)  # moved to the colour edge at x=16
    flat = np.full_like(image, 128)  # control: without a colour edge the boundary stays put
    assert (dense_crf(flat, probs)[0] == 1).argmax() > 16


def test_crf_keeps_confident_predictions_and_accepts_tensors():
    image, labels = _two_halves(20, 28)
    probs = torch.from_numpy(np.stack([labels == 0, labels == 1]).astype(np.float32) * 0.98 + 0.01)
    out = dense_crf(torch.from_numpy(image), probs, iters=3)
    assert np.array_equal(out, labels)


def test_require_crf_passes_when_installed():
    assert require_crf() is None


def test_bad_shapes():
    image, _labels = _two_halves(8, 8)
    with pytest.raises(ValueError, match="uint8"):
        dense_crf(image.astype(np.float32), np.ones((2, 8, 8), np.float32) / 2)
    with pytest.raises(ValueError, match="probs"):
        dense_crf(image, np.ones((2, 8, 7), np.float32) / 2)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(GcnsegError, match=r"pip install 'gcnseg\[crf\]'"):
        require_crf()
    image, _labels = _two_halves(8, 8)
    with pytest.raises(GcnsegError) as e:
        dense_crf(image, np.ones((2, 8, 8), np.float32) / 2)
    assert str(e.value) == "dense CRF needs pydensecrf2: pip install 'gcnseg[crf]'"
    assert "\n" not in str(e.value)
