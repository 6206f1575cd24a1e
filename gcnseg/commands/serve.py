"""``gcnseg serve``: a local page to look at a model's predictions on any image
(``pip install 'gcnseg[serve]'``)."""

from __future__ import annotations

import argparse

from .args import add_device, add_inference, add_overrides, positive_int


def host(text: str) -> str:
    """An ``argparse`` type: a host name or address, not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a host name or address, got nothing")
    return text.strip()


def port(text: str) -> int:
    """An ``argparse`` type: a TCP port, 1 to 65535."""
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", dest="models", default=[], metavar="NAME",
                   help="a named model to offer (gcnseg models); repeatable; the first given is shown first")  # fmt: skip
    p.add_argument("--checkpoint", action="append", dest="models", metavar="RUN",
                   help="a run folder or checkpoint folder to offer; repeatable")  # fmt: skip
    p.add_argument("--images", metavar="DIR", help="a folder of images to step through on the page")
    p.add_argument("--host", type=host, default="127.0.0.1",
                   help="address to listen on (127.0.0.1: this machine only; 0.0.0.0 offers the page, and "
                        "every image and run folder this account can read, to the whole network)")  # fmt: skip
    p.add_argument("--port", type=port, default=7860, help="port to listen on, 1 to 65535")
    add_device(p)
    add_inference(p)
    p.add_argument("--max-side", type=positive_int, default=2048, metavar="PIXELS",
                   help="larger images are shrunk to this many pixels on their long side")  # fmt: skip
    add_overrides(p, "eval.tile=1024 (of every model's config)")


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from ..errors import GcnsegError

    if importlib.util.find_spec("gradio") is None:
        raise GcnsegError("gcnseg serve needs Gradio: pip install 'gcnseg[serve]'")
    from ..config import apply_overrides, load_config

    apply_overrides(load_config(), args.overrides)  # a bad override is one line now, not on the page
    from ..serve.server import serve

    return serve(
        args.models, args.images, args.host, args.port, args.device, args.eager, args.max_side, args.overrides,
        {"precision": args.precision, "compile": args.compile, "int8_agreement": args.int8_agreement / 100},
    )  # fmt: skip
