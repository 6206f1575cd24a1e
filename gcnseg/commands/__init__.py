"""The ``gcnseg`` command: a thin layer above the library, as torchvision's ``references/``
stand above torchvision. Each subcommand is one module here with ``add_arguments(parser)``
and ``run(args) -> int``: it parses flags and calls the library's functions. The library
(``gcnseg.models``, ``gcnseg.data``, ``gcnseg.train``, ...) never imports this package.

The modules import only ``argparse`` and :mod:`.args` at the top, so that ``gcnseg
--help`` answers without loading torch; each ``run`` imports what it needs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from .. import __version__
from ..errors import GcnsegError, Stopped
from .args import Parser

# subcommand -> (module under gcnseg.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "configs": ("configs", "list the recipes that ship with gcnseg (--config NAME)"),
    "init": ("init", "start a project on a folder of your own images: check, class weights, a config"),
    "data": ("data", "check a dataset, compute class weights, write samples"),
    "train": ("train", "train a network from a config (Section 4)"),
    "eval": ("eval", "evaluate a checkpoint: mIoU, boundary/internal accuracy"),
    "predict": ("predict", "segment images and write label maps and pictures"),
    "score": ("score", "score label PNGs against ground truth"),
    "export": ("export", "export a checkpoint to ONNX or TorchScript"),
    "models": ("models", "list the trained models that ship with gcnseg"),
    "serve": ("serve", "a local page to look at a model's predictions on any image"),
    "info": ("info", "parameters and FLOPs of a network, per part"),
    "bench": ("bench", "time GCNSeg against ResNet-50 and other segmentation networks"),
    "ablate": ("ablate", "train and tabulate the networks of a paper ablation table (Tables 1-5)"),
    "vrf": ("vrf", "valid receptive field of the score map at one point (Figure 3)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gcnseg",
        description="Global Convolutional Network for semantic segmentation (Peng et al., CVPR 2017).",
    )
    parser.add_argument("--version", action="version", version=f"gcnseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)  # a Parser: defaults shown in --help
        p.set_defaults(_module=module)
        importlib.import_module(f"{__name__}.{module}").add_arguments(p)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The command line, with ``KEY=VALUE`` overrides taken wherever they stand: argparse
    stops taking positionals after a flag, so those it leaves over join the command's
    overrides (``predict``: its inputs), and anything else is a usage error."""
    from ..config import is_override

    args, extra = parser.parse_known_args(argv)
    target = "inputs" if getattr(args, "_module", None) == "predict" else "overrides"
    if extra and all(is_override(e) for e in extra) and isinstance(getattr(args, target, None), list):
        getattr(args, target).extend(extra)
    elif extra:
        strays = [e for e in extra if not is_override(e)] or extra
        parser.error(f"unrecognized arguments: {' '.join(strays)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    try:
        args = parse(build_parser(), argv)
        code = int(importlib.import_module(f"{__name__}.{args._module}").run(args) or 0)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except GcnsegError as e:
        _error(str(e))
        return 2
    except Stopped as e:
        print(f"gcnseg: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("gcnseg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``gcnseg data check ... | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # the place: a full disk, a read-only or missing folder, a path that is a file
        where = e.filename if e.filename is not None else "gcnseg"
        _error(f"{where}: {e.strerror or e}")
        return 2
    except (MemoryError, RuntimeError) as e:  # out of memory, whatever allocated: one line that says what to do
        if not _out_of_memory(e):
            raise
        _error(_memory_message(e, args))
        return 2


def _error(message: str) -> None:
    """``gcnseg: error: MESSAGE`` on stderr, as one line of bounded length (a path or value
    holding a line break shows it as ``\\n``)."""
    text = message.strip().replace("\r", "\\r").replace("\n", "\\n")
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 3] + "..."
    print(f"gcnseg: error: {text}", file=sys.stderr)


_MAX_MESSAGE = 2000
# what torch (CPU and CUDA allocators), numpy and the C library say when an allocation fails
_NO_MEMORY = re.compile(
    r"out of memory|can't allocate memory|cannot allocate memory|could not allocate|unable to allocate"
    r"|failed to allocate|not enough memory",
    re.IGNORECASE,
)


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or bool(_NO_MEMORY.search(str(e)))


# the command's inputs that may be too large, and what makes the work smaller
_MEMORY_HINT: dict[str, tuple[str, str]] = {
    "predict": ("inputs", "segment it in tiles with --tile SIZE (e.g. --tile 512), or on fewer scales"),
    "eval": ("checkpoint", "evaluate in tiles with --tile SIZE (e.g. --tile 512), or on fewer scales"),
    "vrf": ("image", "give a smaller --image"),
    "train": ("config", "lower train.batch_size or data.crop_size"),
    "serve": ("checkpoint", "serve smaller images (--max-side) or tiles (eval.tile=SIZE)"),
}


def _memory_message(e: BaseException, args: argparse.Namespace | None) -> str:
    """One line for an allocation that failed: the command's input, what it asked for, and
    what to do (a tiled pass for predict and eval). The input named is the one the work
    was on where the library noted it on the error (``e.add_note``), else the command's."""
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    command = getattr(args, "_module", None) or "gcnseg"
    attr, hint = _MEMORY_HINT.get(command, ("", "give it a smaller input"))
    notes = getattr(e, "__notes__", None) or []
    subject: object = notes[0] if notes else getattr(args, attr, None) if attr else None
    if command == "predict" and not notes:
        from ..config import is_override

        subject = ", ".join(str(i) for i in (getattr(args, "inputs", None) or []) if not is_override(str(i)))
    where = f"{subject}: " if subject else ""
    return f"{where}out of memory in gcnseg {command} ({first}); {hint}"
