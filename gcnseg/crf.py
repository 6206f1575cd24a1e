"""Dense (fully connected) CRF post-processing, the "-CRF" rows of Tables 7 and 9.

The paper applies denseCRF [Krähenbühl & Koltun, NIPS 2011] after multi-scale inference
(Table 7: 80.4 -> 81.0 on VOC val; Table 9: 77.2 -> 77.4 on Cityscapes val). This wraps
``pydensecrf2`` (import name ``pydensecrf``), an optional extra:
``pip install 'gcnseg[crf]'`` (it compiles with a C++ compiler, about a minute).

The defaults are DeepLab-v2's (ResNet-101, PASCAL VOC) CRF parameters: appearance
(bilateral) kernel weight 4 with spatial std 67 px and colour std 3; smoothness
(Gaussian) kernel weight 3 with spatial std 1 px; Potts compatibility.
DeepLab runs 10 mean-field iterations; 5 (the default here) is usually converged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import GcnsegError

__all__ = ["CRF_INSTALL_HINT", "dense_crf", "require_crf"]

CRF_INSTALL_HINT = "dense CRF needs pydensecrf2: pip install 'gcnseg[crf]'"


def _import_densecrf() -> Any:
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError:
        raise GcnsegError(CRF_INSTALL_HINT) from None
    return dcrf


def require_crf() -> None:
    """Fail early (before a long evaluation) with the one-line install hint when
    pydensecrf2 is missing: raises :class:`gcnseg.errors.GcnsegError`."""
    _import_densecrf()


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _owned(a: np.ndarray, dtype: type) -> np.ndarray:
    """A C-contiguous, writable copy of ``a`` as ``dtype``: pydensecrf's typed memoryviews
    refuse read-only buffers ("buffer source array is read-only"), and an image read with
    ``np.asarray(PIL image)`` or a NumPy view of a torch tensor may be one; the copy also
    keeps pydensecrf from writing into the caller's array."""
    return np.array(a, dtype=dtype, order="C", copy=True)


def dense_crf(
    image: Any,
    probs: Any,
    iters: int = 5,
    *,
    pos_w: float = 3.0,
    pos_xy_std: float = 1.0,
    bi_w: float = 4.0,
    bi_xy_std: float = 67.0,
    bi_rgb_std: float = 3.0,
    clip: float = 1e-8,
) -> np.ndarray:
    """Labels ``[H, W]`` (int64) after mean-field inference of a fully connected CRF.

    Args:
        image: the RGB image, uint8 ``[H, W, 3]`` (not normalised; any layout, read-only too).
        probs: class probabilities ``[C, H, W]`` (e.g. one image of
            :func:`gcnseg.inference.predict_scores`); the unary term is ``-log(probs)``.
        iters: mean-field iterations.
        pos_w, pos_xy_std: weight and spatial std (px) of the smoothness kernel.
        bi_w, bi_xy_std, bi_rgb_std: weight, spatial std (px) and colour std of the
            appearance kernel.
        clip: probabilities are clipped to at least this before the log.

    Raises :class:`gcnseg.errors.GcnsegError` when pydensecrf2 is not installed.
    """
    dcrf = _import_densecrf()
    img = _numpy(image)
    p = _numpy(probs)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {img.dtype} {img.shape}")
    if p.ndim != 3 or p.shape[1:] != img.shape[:2]:
        raise ValueError(f"probs must be [C, H, W] with H, W = {img.shape[:2]}, got {p.shape}")
    c, h, w = p.shape
    # every array handed to pydensecrf is its own (C-contiguous, writable), whatever the caller's
    unary = _owned(-np.log(np.clip(p.reshape(c, -1).astype(np.float32), clip, None)), np.float32)
    crf = dcrf.DenseCRF2D(w, h, c)
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=pos_xy_std, compat=pos_w)
    crf.addPairwiseBilateral(sxy=bi_xy_std, srgb=bi_rgb_std, rgbim=_owned(img, np.uint8), compat=bi_w)
    q = np.asarray(crf.inference(iters), dtype=np.float32).reshape(c, h, w)
    return q.argmax(0).astype(np.int64)
