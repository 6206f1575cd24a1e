"""Errors that the command line reports as one line (``gcnseg: error: ...``) with a non-zero exit."""


class GcnsegError(Exception):
    """Base class: bad input from the user (file, config, data), never a bug."""


class DataError(GcnsegError):
    """A dataset, image or mask is missing, unreadable or inconsistent; the message names the file."""
