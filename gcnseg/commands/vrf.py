"""``gcnseg vrf``: the valid receptive field of the score map at one point (Figure 3),
of one model or of two side by side."""

from __future__ import annotations

import argparse

from .args import add_checkpoint, add_device


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint(p)
    p.add_argument("--image", required=True, help="an image file")
    p.add_argument("--point", help="X,Y: the score map location, in image pixels (default: the centre)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="the picture; the numbers go to FILE.json")
    p.add_argument(
        "--compare", metavar="CKPT2", help="a second model drawn beside the first (e.g. 1x1 baseline vs GCN k=15)"
    )
    p.add_argument(
        "--target",
        choices=("sum", "predicted"),
        default="sum",
        help="score whose gradient is taken: sum of all class scores (default) or the predicted class",
    )
    add_device(p)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from ..checkpoint import checkpoint_files, load_model, resolve_checkpoint
    from ..data.io import read_image
    from ..errors import GcnsegError
    from ..predict import to_input
    from ..runtime import atomic_write_text, check_output, resolve_device
    from ..visualize import panel
    from ..vrf import describe, draw_vrf, parse_point, valid_receptive_field, vrf_stats

    rgb = np.asarray(read_image(args.image))
    h, w = rgb.shape[:2]
    point = parse_point(args.point, w, h) if args.point else (w // 2, h // 2)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise GcnsegError(f"--out {out}: expected a .png file name")
    reads = [args.image] + [
        f for c in (args.checkpoint, args.compare) if c for f in checkpoint_files(resolve_checkpoint(c))
    ]
    check_output(out, "--out", inputs=reads)
    check_output(out.with_suffix(".json"), "--out", inputs=reads)
    device = resolve_device(args.device)
    pictures, titles, records = [], [], []
    for ckpt in [args.checkpoint] + ([args.compare] if args.compare else []):
        model, cfg, _ = load_model(ckpt)
        x = to_input(rgb, cfg.data.mean, cfg.data.std).to(device)
        vrf = valid_receptive_field(model.to(device), x, point, args.target)
        stats = vrf_stats(vrf, point)
        name = describe(cfg)
        pictures.append(draw_vrf(rgb, vrf, point, stats))
        titles.append(f"{name} (r90 {stats['radius90']:.0f}px)")
        records.append({"checkpoint": str(ckpt), "model": name, **stats})
        print(
            f"{name} ({ckpt}): VRF radius 50% {stats['radius50']:.1f} px, 90% {stats['radius90']:.1f} px; "
            f"area 50% {100 * stats['area50']:.1f}%, 90% {100 * stats['area90']:.1f}% of the image"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    panel(pictures, titles).save(out)
    doc = {"image": str(args.image), "size": [w, h], "point": list(point), "target": args.target, "models": records}
    atomic_write_text(out.with_suffix(".json"), json.dumps(doc, indent=2))
    print(f"picture: {out}\nnumbers: {out.with_suffix('.json')}")
    return 0
