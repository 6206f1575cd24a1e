"""Serving the page of ``gcnseg serve`` until Ctrl-C or SIGTERM (``pip install 'gcnseg[serve]'``):
:func:`serve` checks what was asked for, loads the first model, listens, and stops cleanly."""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..errors import GcnsegError

if TYPE_CHECKING:
    from .segmenter import Segmenter


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


def serve(
    models: list[str],
    images: str | None,
    host: str,
    port: int,
    device: str = "auto",
    eager: bool = False,
    max_side: int = 2048,
    overrides: list[str] | None = None,
    path: dict[str, Any] | None = None,
) -> int:
    """Serve the page until stopped; never returns (the process ends here, see below)."""
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)  # from here on, SIGTERM is Ctrl-C
    try:
        _serve(models, images, host, port, device, eager, max_side, overrides or [], path or {})
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


def _warm_up(segmenter: Segmenter, loaded: Any, image: Path) -> None:
    """Compile the first model for the size of the folder's first image before the page
    opens (a CompiledModel compiles on its first input of each size)."""
    try:
        rgb, resized_from = segmenter.read(image)
    except GcnsegError:
        return  # an unreadable first image: the page says so when it is picked
    print(
        f"gcnseg serve: compiling {loaded.choice} for {rgb.shape[0]}x{rgb.shape[1]} images before the page opens",
        flush=True,
    )
    segmenter.segment(loaded, rgb, resized_from=resized_from)


def _serve(
    models: list[str],
    images: str | None,
    host: str,
    port: int,
    device: str,
    eager: bool,
    max_side: int,
    overrides: list[str],
    path: dict[str, Any],
) -> None:
    """Check what was asked for, load the first model, serve until stopped."""
    from ..checkpoint import resolve_checkpoint
    from ..compiled import CompiledModel
    from ..zoo import ZOO
    from .page import build_page, launch
    from .segmenter import Segmenter, folder_path, list_images

    choices = list(dict.fromkeys([*models, *ZOO]))  # what was asked for first, then the zoo
    for choice in choices:
        resolve_checkpoint(choice)  # a typo is an error now, not on the page
    listing = list_images(images) if images else None
    segmenter = Segmenter(
        choices,
        device=device,
        eager=eager,
        max_side=max_side,
        overrides=overrides,
        path=path,
    )
    loaded = segmenter.load(choices[0])  # the first model shown loads before the page is offered
    _check_address(host, port)  # a port in use is said before minutes of compiling
    if listing is not None and listing.names and isinstance(loaded.model, CompiledModel):
        _warm_up(segmenter, loaded, folder_path(images or "", listing.path(listing.names[0])))
    # uploads and pictures in a folder of this server's own, removed when it stops
    # (unless GRADIO_TEMP_DIR names one)
    own_temp = None if os.environ.get("GRADIO_TEMP_DIR") else tempfile.mkdtemp(prefix="gcnseg-serve-")
    if own_temp:
        os.environ["GRADIO_TEMP_DIR"] = own_temp
    try:
        page = build_page(segmenter, images)
        launch(page, host, port, block=False)
        print(f"gcnseg serve: open {url(host, port)} in a browser (Ctrl-C to stop)", flush=True)
        try:
            while page.is_running:  # until Ctrl-C or SIGTERM
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        _close(page, segmenter)
    finally:
        if own_temp:
            shutil.rmtree(own_temp, ignore_errors=True)
