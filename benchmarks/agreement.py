"""Argmax agreement of the optimised inference path with the eager fp32 model on a
trained run's validation images (the check behind `gcnseg.optimize`'s defaults).

    python benchmarks/agreement.py runs/camvid [--limit N] [--precision auto|fp32|bf16]

Prints the share of pixels whose predicted class is the same, over all images, and
the worst image's share.
"""

from __future__ import annotations

import argparse

import torch

from gcnseg.checkpoint import load_model
from gcnseg.data.build import build_dataset
from gcnseg.optimize import optimize_for_inference


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, cfg, _ = load_model(args.run)
    fast = optimize_for_inference(model, precision=args.precision)
    data = build_dataset(cfg.data, cfg.data.val_split, train=False)
    n = len(data) if args.limit is None else min(args.limit, len(data))
    same = pixels = 0
    worst = 1.0
    with torch.inference_mode():
        for i in range(n):
            image = data[i][0][None]
            ref, got = model(image).argmax(1), fast(image).argmax(1)
            k = int((ref == got).sum())
            same, pixels, worst = same + k, pixels + ref.numel(), min(worst, k / ref.numel())
    print(
        f"{args.run}: {n} images {tuple(image.shape[-2:])}, optimised ({fast.backbone_dtype}) vs eager fp32: "
        f"{100 * same / pixels:.3f}% of pixels agree, worst image {100 * worst:.3f}%"
    )


if __name__ == "__main__":
    main()
