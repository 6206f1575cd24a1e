"""Errors that the command line reports as one line (``gcnseg: error: ...``) with a non-zero exit."""


class GcnsegError(Exception):
    """Base class: bad input from the user (file, config, data), never a bug."""


class DataError(GcnsegError):
    """A dataset, image or mask is missing, unreadable or inconsistent; the message names the file."""


class Stopped(Exception):
    """The run stopped cleanly when asked (SIGTERM, Ctrl-C) after saving a checkpoint;
    the command exits with ``128 + signal`` (143 for SIGTERM, 130 for SIGINT)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
