"""Test helpers (no tests): a real headless browser for the page of ``gcnseg serve``
(Debian's Chromium, which ``make browser`` installs, driven by Playwright), a guard that
records and refuses every request for anything off this machine, and the page served
from a thread of the test process."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

# As root, in a closed network: no sandbox (it needs a user namespace), and none of
# Chromium's own background connections (updates, sync, field trials).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL = {"127.0.0.1", "localhost", "::1"}


def find_chromium() -> str:
    """The browser to drive: ``$GCNSEG_CHROMIUM``, else Chromium or Chrome on the PATH."""
    for candidate in (os.environ.get("GCNSEG_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        path = candidate and shutil.which(candidate)
        if path:
            return path
    raise RuntimeError("no Chromium found: `make browser` installs Debian's (or set GCNSEG_CHROMIUM)")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a fresh profile each time, made by Playwright)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def guard_page(page: Any) -> list[str]:
    """Refuse every request of ``page`` for a host off this machine; the refused URLs."""
    outside: list[str] = []

    def route(r: Any) -> None:
        if urlsplit(r.request.url).hostname in LOCAL or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("websocket", lambda ws: None if urlsplit(ws.url).hostname in LOCAL else outside.append(ws.url))
    return outside


def guard_process(monkeypatch: Any = None) -> list[str]:
    """Record (and refuse) every connection or name look-up of this process for anything
    off this machine: what the server side of the page would send out. Undone at the end
    of the test with pytest's ``monkeypatch``; for good without it (a process of its own)."""
    outside: list[str] = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in LOCAL:
            outside.append(f"connect {address}")
            raise ConnectionRefusedError(f"test guard: {address} is off this machine")
        return connect(sock, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOCAL and host is not None and host != "":
            outside.append(f"look-up {host}")
            raise socket.gaierror(f"test guard: {host} is off this machine")
        return getaddrinfo(host, *args, **kwargs)

    patch = monkeypatch.setattr if monkeypatch is not None else setattr
    patch(socket.socket, "connect", guarded_connect)
    patch(socket, "getaddrinfo", guarded_getaddrinfo)
    return outside


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
