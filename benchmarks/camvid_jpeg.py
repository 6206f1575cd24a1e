"""A JPEG copy of CamVid's train and val splits, small enough for the device tool's carry.

    python benchmarks/camvid_jpeg.py CAMVID OUT [--quality 95]

CamVid's train+val PNGs are 122 MB; the GPU machine takes at most 64 MiB with the working
tree. This writes ``OUT/{split}/*.jpg`` (4:4:4, ``--quality``), copies the label PNGs
unchanged to ``OUT/{split}annot/`` and lists the pairs in ``OUT/{split}.txt``, the layout
``gcnseg.data.camvid.CamVid`` reads. Whether the copy scores like the PNGs is measured, not
assumed: ``gcnseg eval --model camvid-gcn-lite0 --root OUT`` against ``--root CAMVID``
(docs/ablations.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

SPLITS = ("train", "val")


def copy_split(src: Path, out: Path, split: str, quality: int) -> int:
    """Write one split's JPEG images, its labels and its listing; the number of pairs."""
    (out / split).mkdir(parents=True, exist_ok=True)
    (out / f"{split}annot").mkdir(parents=True, exist_ok=True)
    lines = []
    for image in sorted((src / split).glob("*.png")):
        label = src / f"{split}annot" / image.name
        if not label.is_file():
            raise SystemExit(f"camvid_jpeg: {label}: missing label of {image}")
        with Image.open(image) as im:
            im.convert("RGB").save(out / split / f"{image.stem}.jpg", quality=quality, subsampling=0)
        shutil.copyfile(label, out / f"{split}annot" / label.name)
        lines.append(f"{split}/{image.stem}.jpg {split}annot/{label.name}")
    if not lines:
        raise SystemExit(f"camvid_jpeg: {src / split}: no PNG images")
    (out / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("camvid", type=Path, help="CamVid in the SegNet layout (train/, trainannot/, val/, valannot/)")
    p.add_argument("out", type=Path, help="the folder to write (must not exist)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    args = p.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"camvid_jpeg: {args.out}: exists; give a new folder")
    partial = args.out.with_name(args.out.name + ".partial")  # renamed when whole: no half copy under OUT
    shutil.rmtree(partial, ignore_errors=True)
    for split in SPLITS:
        n = copy_split(args.camvid, partial, split, args.quality)
        print(f"{split}: {n} pairs")
    partial.rename(args.out)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
