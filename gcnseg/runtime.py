"""Where the code runs and how it writes: the one home of the runtime helpers.

- :func:`resolve_device`: ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` to a device, with
  a one-line error where CUDA is asked for and missing;
- :func:`cpu_features`, :func:`native_bf16`, :func:`resolve_amp`, :func:`resolve_threads`,
  :func:`resolve_compile`: what this machine does natively, and the precision, thread
  count and compiling that ``auto`` means here (the one place that decides them);
- :func:`init_distributed`, :func:`rank_world`, :func:`is_main`: PyTorch's own
  process group as started by ``torchrun`` (``nccl`` on GPUs, ``gloo`` on CPUs);
- :func:`any_process`, :func:`all_reduce_sum_`: the cross-process reductions that keep
  every process in step (all stop together; confusion matrices summed);
- :func:`atomic_path`, :func:`atomic_write_text`: a file appears complete or not at all,
  synced to disk with its folder (as databases do), with the modes of the umask;
- :func:`lock_folder`: one writer per folder, an OS lock that dies with its process.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import torch
import torch.distributed as dist

from .errors import GcnsegError, absent


def notice(line: str) -> None:
    """A line for the person at the terminal (``gcnseg: ...`` on stderr): what a path is
    doing that takes time or changes what runs (compiling, quantising, falling back)."""
    print(f"gcnseg: {line}", file=sys.stderr)


def warn(line: str) -> None:
    """A warning for the person at the terminal (``gcnseg: warning: ...`` on stderr): something
    that did not happen (a picture not drawn, a check not made) while the job goes on."""
    notice(f"warning: {line}")


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


# the instruction-set extensions that decide CPU speed, as /proc/cpuinfo names them
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def _cpu_flags() -> set[str] | None:
    """The x86 flags of /proc/cpuinfo; None where there are none to read (not Linux, not x86)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def cpu_features() -> dict[str, bool]:
    """Which of :data:`CPU_FLAGS` this CPU has (all False where /proc/cpuinfo is not there)."""
    flags = _cpu_flags() or set()
    return {f: f in flags for f in CPU_FLAGS}


def instruction_set() -> str:
    """The vector instruction set that torch uses on this CPU, in words, as figures are
    labelled: ``AVX512-BF16``, ``AVX-512``, ``AVX2`` (torch's own dispatch, so a CPU held
    to AVX2 by ``ATEN_CPU_CAPABILITY`` / ``ONEDNN_MAX_CPU_ISA`` reads as AVX2), with AMX
    where the CPU has it and bf16 runs natively."""
    cap = torch.backends.cpu.get_cpu_capability()
    bf16 = native_bf16()
    name = {"AVX512": "AVX512-BF16" if bf16 else "AVX-512", "AVX2": "AVX2"}.get(cap, cap)
    return name + (" + AMX" if bf16 and cpu_features()["amx_bf16"] else "")


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively: oneDNN's check (which honours
    ``ONEDNN_MAX_CPU_ISA``) and, on x86, the CPU's own AVX512-BF16 or AMX-BF16 flag; oneDNN
    alone says yes on every AVX-512 CPU, where it emulates bf16 slower than float32."""
    flags = _cpu_flags()
    return _onednn_bf16() and (flags is None or bool({"avx512_bf16", "amx_bf16"} & flags))


def _onednn_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_amp(amp: str | None, device: torch.device) -> str | None:
    """The autocast precision that ``train.amp`` means on ``device``: ``auto`` is bf16 where
    the CPU multiplies it natively and float32 (None) where it would be emulated (about 10x
    slower); on a GPU, bf16 where supported, else fp16. ``fp32`` / None: float32."""
    if amp in (None, "fp32"):
        return None
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.type == "cpu" and native_bf16() else None


COMPILE_MIN_STEPS = 1000  # train.compile: auto compiles schedules at least this long, on a GPU


def resolve_compile(value: bool | str, device: torch.device, steps: int) -> bool:
    """Whether ``train.compile`` compiles the training step: ``auto`` compiles on CUDA for
    schedules of at least :data:`COMPILE_MIN_STEPS` steps (which repay the compile), and
    not on the CPU, where GCNSeg-lite0's compiled step measured no faster than the eager
    one (docs/performance.md, per instruction set)."""
    return value is True or (value == "auto" and device.type == "cuda" and steps >= COMPILE_MIN_STEPS)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, as taskset or a container set it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_threads(threads: int | str | None) -> int | None:
    """The intra-op thread count that ``train.threads`` means: ``auto`` is every core this
    process may use, shared among the processes of this machine under torchrun
    (``LOCAL_WORLD_SIZE``); a number is itself; None or 0 leaves torch's default."""
    if threads == "auto":
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
        return max(1, available_cores() // local)
    return int(threads) if threads else None


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


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_mode(folder: bool = False) -> int:
    """The mode that ``open`` / ``mkdir`` give under this process's umask (temporary
    files and folders are made private; what they become is not)."""
    return (0o777 if folder else 0o666) & ~_umask()


def _umask() -> int:
    """This process's umask, read where Linux tells it (setting it to read it back, the
    fallback, races with threads that create files meanwhile)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's data, or a folder's entries (a rename into it), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write to, put in place of ``path`` when the block ends without
    an error (removed when it raises). A regular file (or a path that does not exist yet)
    is replaced by a synced rename, so a kill never leaves half of it; a symlink is written
    through to the file it names, which is replaced, the link kept. Anything else (a FIFO,
    a device, ``/dev/fd/N``) is never replaced: what was written is streamed into it."""
    path = Path(path)
    try:
        mode: int | None = os.stat(path).st_mode  # through links
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    if mode is not None and not stat.S_ISREG(mode):
        with _streamed_to(path) as tmp:
            yield tmp
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, default_mode())
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except OSError as e:  # (a full disk): the error names the file asked for, not the temporary one
        name_in_error(e, path, tmp)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def name_in_error(e: OSError, path: str | os.PathLike[str], tmp: str | os.PathLike[str]) -> None:
    """Name ``path`` in an OSError of writing it through ``tmp`` (a failed ``write`` or
    ``fsync`` names no file, ``open`` the temporary one)."""
    if e.filename is None or Path(e.filename) == Path(tmp):
        e.filename = str(path)


@contextmanager
def _streamed_to(path: Path) -> Iterator[Path]:
    """A private temporary file whose bytes are copied into the special file ``path``
    (opened for writing as it is, never created, replaced or truncated by a rename)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    except OSError as e:
        name_in_error(e, path, tmp)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def hidden(path: Path, root: Path) -> bool:
    """``path`` lies in a hidden file or folder under ``root`` (``.git/``, a Mac's ``._a.png``):
    not data of the folder that a command reads."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def lock_folder(folder: Path, what: str) -> IO[str]:
    """An exclusive lock on ``folder`` (``folder/.lock``) held until the returned file is
    closed or the process ends, however it ends: a second writer is refused in one line.
    ``what`` names the writer in that line (e.g. ``gcnseg train``)."""
    f = open(folder / ".lock", "a+")  # noqa: SIM115 (held open: the lock lives as long as the file)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise in_use(folder, holder) from None
    f.seek(0)
    f.truncate()
    f.write(f"{what} (pid {os.getpid()})\n")
    f.flush()
    return f


def check_output(
    path: str | os.PathLike[str], key: str, folder: bool = False, inputs: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """``path`` can be written as a file (or, ``folder``, made a folder): checked before
    the work, so that a bad ``--out`` / ``--json`` is one line and not a traceback after
    it. ``inputs``: what the command reads (files, and folders such as a dataset's root):
    the output may be none of them, nor inside such a folder. Nothing is created."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise GcnsegError(f"{key} {path}: {absent(path, folder)}")
    if path.exists() and not path.is_dir() and not path.is_file():  # a FIFO or device: written into as it is
        if not os.access(path, os.W_OK):
            raise GcnsegError(f"{key} {path}: not writable")
        return path
    if path.is_symlink():  # written through: the place that counts is the target's
        path = Path(os.path.realpath(path))
    parent = path if folder and path.exists() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise GcnsegError(f"{key} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GcnsegError(f"{key} {path}: {parent} is not writable")
    where = Path(os.path.realpath(path))
    for item in inputs:
        read = Path(os.path.realpath(item))
        inside = (read.is_dir() and where.is_relative_to(read)) or (folder and read.is_relative_to(where))
        if where == read or inside:
            raise GcnsegError(f"{key} {path}: {'is' if where == read else 'overlaps'} {item}, which this command reads")
    return path


def in_use(folder: Path, holder: str) -> GcnsegError:
    return GcnsegError(f"{folder}: in use by {holder}; wait for it to end, or use another out_dir")


def folder_holder(folder: Path) -> str | None:
    """Who holds :func:`lock_folder`'s lock on ``folder`` now (None: nobody); creates nothing."""
    try:
        f = open(folder / ".lock")  # noqa: SIM115 (closed below, whichever way)
    except OSError:
        return None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read().strip() or "another process"
    return None
