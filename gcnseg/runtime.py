"""Where the code runs and how it writes: the one home of the runtime helpers.

- :func:`resolve_device`: ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` to a device, with
  a one-line error where CUDA is asked for and missing;
- :func:`init_distributed`, :func:`rank_world`, :func:`is_main`: PyTorch's own
  process group as started by ``torchrun`` (``nccl`` on GPUs, ``gloo`` on CPUs);
- :func:`any_process`, :func:`all_reduce_sum_`: the cross-process reductions that keep
  every process in step (all stop together; confusion matrices summed);
- :func:`atomic_path`, :func:`atomic_write_text`: a file appears complete or not at all.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist

from .errors import GcnsegError


def resolve_device(name: str, key: str = "--device") -> torch.device:
    """``"auto"`` is this process's GPU (``LOCAL_RANK`` under torchrun) when there is one, else the CPU.
    ``key`` (the config key or flag that gave ``name``) is named in errors."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GcnsegError(f"{key}={name}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GcnsegError(f"{key}={name}: CUDA is not available on this machine (use cpu or auto)")
    return device


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); initialises the process group when started by ``torchrun``."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank_world()


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a process group."""
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """The process that writes shared files and prints: rank 0 (``RANK`` before the group is up)."""
    if dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", 0)) == 0


def any_process(flag: bool, device: torch.device) -> bool:
    """True if ``flag`` holds on any process: under torchrun all processes stop
    together, none is left waiting for another's gradients."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor(float(flag), device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_reduce_sum_(t: torch.Tensor) -> None:
    """Sum ``t`` over all processes, in place (int64 counts: exact, on any backend)."""
    if not dist.is_initialized():
        return
    if dist.get_backend() == "nccl" and t.device.type != "cuda":  # NCCL reduces GPU tensors only
        tmp = t.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(tmp, op=dist.ReduceOp.SUM)
        t.copy_(tmp.cpu())
    else:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the
    block ends without an error, removed when it raises (a kill leaves only a
    hidden ``.NAME.*.tmp`` file, never half of ``path``)."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
