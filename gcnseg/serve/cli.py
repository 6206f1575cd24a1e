"""``gcnseg serve``: a local page to look at a model's predictions (``pip install 'gcnseg[serve]'``)."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib.util
import io
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..cli import positive_int
from ..errors import GcnsegError

if TYPE_CHECKING:
    from .segmenter import Segmenter


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", dest="models", default=[], metavar="NAME",
                   help="a named model to offer (gcnseg models); repeatable; the first given is shown first")  # fmt: skip
    p.add_argument("--checkpoint", action="append", dest="models", metavar="RUN",
                   help="a run folder or checkpoint folder to offer; repeatable")  # fmt: skip
    p.add_argument("--images", metavar="DIR", help="a folder of images to step through on the page")
    p.add_argument("--host", type=host, default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 offers the page, and "
                        "every image and run folder this account can read, to the whole network)")  # fmt: skip
    p.add_argument("--port", type=port, default=7860, help="port to listen on, 1 to 65535 (default 7860)")
    p.add_argument("--device", default="auto")
    p.add_argument("--eager", action="store_true", help="run the plain model, not the optimised inference path")
    p.add_argument("--max-side", type=positive_int, default=2048, metavar="PIXELS",
                   help="larger images are shrunk to this many pixels on their long side (default 2048)")  # fmt: skip


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


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _check_address(host: str, port: int) -> None:
    """Refuse an address that cannot be listened on now, in a line that says so (not
    Gradio's search message)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.create_server((host, port), family=family):
            pass
    except OSError as e:
        message = e.strerror or str(e)
        raise GcnsegError(f"{host}:{port}: cannot listen there ({message}); choose another --port or --host") from None


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # stops as Ctrl-C does


class _AtOnce(Exception):
    """A second Ctrl-C while stopping: end now, the image in flight left unfinished."""


def _close(page: Any, segmenter: Segmenter) -> None:
    """Stop taking requests, then wait for the image being segmented (a second Ctrl-C
    stops at once): the process never ends its normal way with a computation in flight."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Gradio's own "Closing server" line
            page.close()  # seconds, when a request is being answered
        if not segmenter.busy.acquire(blocking=False):
            print("gcnseg serve: finishing the image being segmented (Ctrl-C again to stop at once)", file=sys.stderr)
            segmenter.busy.acquire()
        segmenter.busy.release()
    except KeyboardInterrupt:
        raise _AtOnce from None


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("gradio") is None:
        raise GcnsegError("gcnseg serve needs Gradio: pip install 'gcnseg[serve]'")
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)  # from here on, SIGTERM is Ctrl-C
    try:
        _serve(args)
        code, said = 0, "gcnseg serve: stopped"
    except _AtOnce:
        code, said = 130, "gcnseg serve: stopped at once"
    finally:  # a refusal before serving leaves the caller's handler as it was
        signal.signal(signal.SIGTERM, previous)
    print(said, file=sys.stderr)
    # Ended here, after the exit handlers: the C++ destructors that would run next abort the
    # process ("terminate called without an active exception") once torch has run on the
    # server's worker threads, which are still alive (and may still be computing).
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def _serve(args: argparse.Namespace) -> None:
    """Check what was asked for, load the first model, serve until stopped."""
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
    _check_address(args.host, args.port)
    # uploads and pictures in a folder of this server's own, removed when it stops
    # (unless GRADIO_TEMP_DIR names one)
    own_temp = None if os.environ.get("GRADIO_TEMP_DIR") else tempfile.mkdtemp(prefix="gcnseg-serve-")
    if own_temp:
        os.environ["GRADIO_TEMP_DIR"] = own_temp
    try:
        page = build_page(segmenter, args.images)
        launch(page, args.host, args.port, block=False)
        print(f"gcnseg serve: open {url(args.host, args.port)} in a browser (Ctrl-C to stop)", flush=True)
        try:
            while page.is_running:  # until Ctrl-C or SIGTERM
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        _close(page, segmenter)
    finally:
        if own_temp:
            shutil.rmtree(own_temp, ignore_errors=True)
