"""Errors that the command line reports as one line (``gcnseg: error: ...``) with a non-zero exit."""

from __future__ import annotations

import os


class GcnsegError(Exception):
    """Base class: bad input from the user (file, config, data), never a bug."""


class DataError(GcnsegError):
    """A dataset, image or mask is missing, unreadable or inconsistent; the message names the file."""


class Stopped(Exception):
    """The run stopped cleanly when asked (SIGTERM, Ctrl-C) after saving a checkpoint;
    the command exits with ``128 + signal`` (143 for SIGTERM, 130 for SIGINT). ``go_on``:
    the command that takes the work up again (a caller that started the run may say its own)."""

    def __init__(self, message: str, exit_code: int, go_on: str | None = None) -> None:
        super().__init__(message)
        self.message, self.exit_code, self.go_on = message, exit_code, go_on

    def __str__(self) -> str:
        return self.message + (f"; go on with: {self.go_on}" if self.go_on else "")


def absent(path: str | os.PathLike[str], folder: bool = False, missing: str = "not found") -> str:
    """Why ``path`` is not the file (``folder``: the folder) asked for, for a one-line
    error: ``missing``, or what stands there instead."""
    if os.path.isdir(path) and not folder:
        return "is a folder, not a file"
    if os.path.lexists(path) and folder:
        return "is a file, not a folder" if os.path.isfile(path) else "is not a folder"
    return missing
