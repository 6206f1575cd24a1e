"""``gcnseg predict``: segment images and folders, and write label maps (palette PNGs for
``gcnseg score``), overlays and side-by-side pictures."""

from __future__ import annotations

import argparse

from .args import add_checkpoint, add_device, add_json, add_limit, check_json, human, inference_network, write_json
from .eval import add_test_time, test_time_values


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint(p)
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="images or folders (searched recursively), and KEY=VALUE overrides of the checkpoint's config",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (labels/, overlays/, side/)")
    add_test_time(p)
    add_device(p)
    add_json(p, "one record per image (outputs, class shares, skipped files)")
    add_limit(p)
    p.add_argument("--no-progress", action="store_true", help="no line per image")


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import checkpoint_files, load_model, resolve_checkpoint
    from ..config import apply_overrides, given, split_overrides
    from ..errors import GcnsegError
    from ..predict import IMAGE_SUFFIXES, find_images, write_predictions
    from ..runtime import check_output

    overrides, inputs_given = split_overrides(args.inputs)
    if not inputs_given:
        raise GcnsegError("no INPUT given: name image files or folders to segment")
    files = find_images(inputs_given)
    # pictures written among the inputs would be read as inputs by the next run on them
    out = check_output(args.out, "--out", folder=True, inputs=inputs_given)
    check_json(args.json, [f for f, _ in files] + checkpoint_files(resolve_checkpoint(args.checkpoint)))
    if not files:
        raise GcnsegError(f"no image in {', '.join(inputs_given)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    files = files[: args.limit] if args.limit else files
    model, cfg, meta = load_model(args.checkpoint)
    cfg = apply_overrides(cfg, overrides, given(test_time_values(args)))
    model, device = inference_network(args, model, cfg, len(files))
    palette = [tuple(c) for c in meta["palette"]]
    to = human(args.json)
    lines = (lambda line: None) if args.no_progress else (lambda line: print(line, file=to))
    records = write_predictions(model, cfg, palette, files, out, device, meta.get("classes"), report=lines)
    failed = sum("skipped" in r for r in records)
    print(
        f"{len(files) - failed} of {len(files)} images written to {out}" + (f", {failed} skipped" if failed else ""),
        file=to,
    )
    write_json(args.json, {"checkpoint": str(args.checkpoint), "out": str(out), "images": records})
    return 1 if failed else 0  # the others are written; the exit status says that some were not
