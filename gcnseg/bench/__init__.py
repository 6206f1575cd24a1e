"""``gcnseg bench``: GCNSeg side by side with what users would pick instead.

Everything is measured in one process, round-robin (one call of each model in
turn, repeated), and reported as medians and as ratios against a reference run
in the same process: these machines are noisy, ratios are what compare. A ratio
is the median over rounds of (time / the reference's time in that round).

Rows (CPU, fp32 unless said otherwise):

- reference: torchvision's ResNet-50 as a feature extractor (res-2..res-5), eager;
- GCNSeg-R50 (GCN k=15, BR, deconvolution) eager, and through the optimised
  inference path that ``predict`` and ``eval`` use (:mod:`gcnseg.optimize`), in
  float32 and by default (bf16 backbone where the CPU has native bf16);
- torchvision's FCN-ResNet50 and DeepLabV3-ResNet50, and
  segmentation_models_pytorch's FPN-ResNet50 where it is installed;
- one training step of GCNSeg-R50 (forward, backward, SGD) against the
  backbone's forward and backward;
- metric accumulation throughput (confusion matrix + boundary band) in Mpx/s;
- peak memory of optimised inference on one 1024x2048 image (a fresh process).
"""

from .cases import (
    bench_inference,
    bench_metrics,
    bench_peak_memory,
    bench_train_step,
    gcnseg_r50,
    inference_models,
)
from .timing import median_times, ratio_rows, round_times

__all__ = [
    "bench_inference",
    "bench_metrics",
    "bench_peak_memory",
    "bench_train_step",
    "gcnseg_r50",
    "inference_models",
    "median_times",
    "ratio_rows",
    "round_times",
]
