"""``gcnseg serve``: a local page to look at a model's predictions (``pip install 'gcnseg[serve]'``)."""

from __future__ import annotations

import argparse
import importlib.util
import signal
import socket
import sys
import time
from types import FrameType

from ..cli import positive_int
from ..errors import GcnsegError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", dest="models", default=[], metavar="NAME",
                   help="a named model to offer (gcnseg models); repeatable; the first given is shown first")  # fmt: skip
    p.add_argument("--checkpoint", action="append", dest="models", metavar="RUN",
                   help="a run folder or checkpoint folder to offer; repeatable")  # fmt: skip
    p.add_argument("--images", metavar="DIR", help="a folder of images to step through on the page")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=positive_int, default=7860, help="port to listen on (default 7860)")
    p.add_argument("--device", default="auto")
    p.add_argument("--eager", action="store_true", help="run the plain model, not the optimised inference path")
    p.add_argument("--max-side", type=positive_int, default=2048, metavar="PIXELS",
                   help="larger images are shrunk to this many pixels on their long side (default 2048)")  # fmt: skip


def _check_port(host: str, port: int) -> None:
    """Refuse a port that is taken now, with a line that says so (not Gradio's search message)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise GcnsegError(
            f"{host}:{port}: cannot listen there ({e.strerror or e}); choose another with --port"
        ) from None


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the page closes as on Ctrl-C


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("gradio") is None:
        raise GcnsegError("gcnseg serve needs Gradio: pip install 'gcnseg[serve]'")
    from ..checkpoint import resolve_checkpoint
    from ..zoo import ZOO
    from .page import build_page, launch
    from .segmenter import Segmenter, folder_images

    choices = list(dict.fromkeys([*args.models, *ZOO]))  # what was asked for first, then the zoo
    for choice in choices:
        resolve_checkpoint(choice)  # a typo is an error now, not on the page
    if args.images:
        folder_images(args.images)
    segmenter = Segmenter(choices, device=args.device, eager=args.eager, max_side=args.max_side)
    segmenter.load(choices[0])  # the first model shown loads before the page is offered
    _check_port(args.host, args.port)
    page = build_page(segmenter, args.images)
    launch(page, args.host, args.port, block=False)
    print(f"gcnseg serve: open http://{args.host}:{args.port}/ in a browser (Ctrl-C to stop)", flush=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        while page.is_running:  # until Ctrl-C or SIGTERM
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        page.close()
    print("gcnseg serve: stopped", file=sys.stderr)
    return 0
