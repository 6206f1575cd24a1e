"""``gcnseg export``: a checkpoint as ONNX or TorchScript with dynamic height and width,
describing itself (class names, palette, input normalisation: ONNX ``metadata_props``,
TorchScript's ``meta.json``); ``--end-to-end`` takes uint8 RGB and gives the label map."""

from __future__ import annotations

import argparse

from .args import add_checkpoint, add_int8_agreement, add_overrides, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint(p)
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="the file's kind")
    p.add_argument(
        "--out",
        help="output file (default: beside the checkpoint, model.onnx / model.pt; NAME.onnx for --model NAME; "
        "-int8-HxW before the suffix for --precision int8)",
    )
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (17 to 23)")
    p.add_argument(
        "--end-to-end",
        action="store_true",
        help="input uint8 RGB N x H x W x 3 as decoded from a picture, output the label map N x H x W "
        "(normalisation and argmax inside the graph); default: normalised float N x 3 x H x W in, logits out",
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "int8"],
        default="fp32",
        help="int8: ONNX quantised with ONNX Runtime for one input size (--size), calibrated on the model's "
        "training split (--root), kept only where its predictions agree with float32 (--int8-agreement)",
    )
    p.add_argument("--size", type=positive_int, nargs=2, metavar=("H", "W"), help="the input size of an int8 export")
    p.add_argument("--root", help="data.root: the model's dataset, to calibrate an int8 export")
    add_int8_agreement(p)
    add_overrides(p, "data.mean=[0.5,0.5,0.5]")


def run(args: argparse.Namespace) -> int:
    import warnings
    from pathlib import Path

    from ..checkpoint import checkpoint_files, load_model, resolve_checkpoint
    from ..config import apply_overrides, given
    from ..errors import GcnsegError
    from ..export import ONNX_OPSETS, export_metadata, export_onnx, export_torchscript
    from ..runtime import check_output
    from ..zoo import ZOO

    if args.precision == "int8" and (args.format != "onnx" or args.end_to_end or not args.size):
        raise GcnsegError("--precision int8 writes ONNX for one input size: give --size H W (no --end-to-end)")
    if args.precision != "int8" and (args.size or args.root):
        raise GcnsegError("--size and --root are for --precision int8 (a float export takes any size)")
    if args.format == "onnx" and args.opset not in ONNX_OPSETS:
        raise GcnsegError(
            f"--opset {args.opset}: expected {ONNX_OPSETS.start} to {ONNX_OPSETS.stop - 1} (what torch's exporter writes)"
        )
    ckpt = resolve_checkpoint(args.checkpoint)
    suffix = "onnx" if args.format == "onnx" else "pt"
    kind = f"-int8-{args.size[0]}x{args.size[1]}" if args.precision == "int8" else ""
    if args.out:
        out = Path(args.out)
        other = {"onnx": (".pt", ".pth", ".ts"), "torchscript": (".onnx",)}[args.format]
        if out.suffix.lower() in other:  # a reader would take the file for the other kind
            raise GcnsegError(f"--out {out}: a {out.suffix} name for --format {args.format}; name it .{suffix}")
    elif args.checkpoint in ZOO:  # the package's own folder is not a place to write
        out = Path(f"{args.checkpoint}{kind}.{suffix}")
    else:
        out = ckpt / f"model{kind}.{suffix}"
    if not out.parent.is_dir():
        raise GcnsegError(f"{out.parent}: output folder does not exist")
    check_output(out, "--out", inputs=checkpoint_files(ckpt))
    model, cfg, meta = load_model(args.checkpoint)
    cfg = apply_overrides(cfg, args.overrides, given({"data.root": args.root}))
    # a named model: its name, not a path inside site-packages
    source = args.checkpoint if args.checkpoint in ZOO and not Path(args.checkpoint).exists() else str(ckpt)
    e2e = args.end_to_end
    with warnings.catch_warnings():  # the exporters' notes on traced sizes are expected here
        warnings.simplefilter("ignore")
        if args.precision == "int8":
            from ..int8 import export_int8, require_onnxruntime

            require_onnxruntime()
            if cfg.data.root is None:
                raise GcnsegError("--precision int8 calibrates on the model's training split: give --root DIR")
            record = export_int8(
                model, out, tuple(args.size), cfg.data, export_metadata(meta, cfg, source), args.int8_agreement / 100,
                notify=print, opset=args.opset,
            )  # fmt: skip
            print(
                f"int8: {record['float32_convolutions']} of {record['convolutions']} convolutions float32, "
                f"argmax agreement with float32 {100 * record['agreement']:.2f}% on {record['check_images']} "
                "validation images"
            )
        elif args.format == "onnx":
            export_onnx(model, out, opset=args.opset, meta=meta, cfg=cfg, source=source, end_to_end=e2e)
        else:
            export_torchscript(model, out, meta=meta, cfg=cfg, source=source, end_to_end=e2e)
    described = export_metadata(meta, cfg, source, e2e)
    if args.precision == "int8":  # one input size: what the file itself says
        import onnx

        described = {p.key: p.value for p in onnx.load(str(out), load_external_data=False).metadata_props}
    where = "ONNX metadata_props" if args.format == "onnx" else "its extra file meta.json"
    print(
        f"written {out} ({out.stat().st_size / 1e6:.1f} MB)\n"
        f"  input  {described['input']}\n"
        f"  output {described['output']}\n"
        f"  classes, palette, mean, std and the model's description are in {where}"
    )
    return 0
