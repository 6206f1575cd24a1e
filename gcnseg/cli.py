"""The ``gcnseg`` command. Each subcommand lives in its own module, which
provides ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from . import __version__
from .errors import GcnsegError, Stopped

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("gcnseg.info", "parameters and FLOPs of a network, per part"),
    "score": ("gcnseg.score", "score label PNGs against ground truth"),
    "data": ("gcnseg.data.cli", "check datasets for bad files"),
    "train": ("gcnseg.train.cli", "train a network from a config (Section 4)"),
    "eval": ("gcnseg.evaluate", "evaluate a checkpoint: mIoU, boundary/internal accuracy"),
    "predict": ("gcnseg.predict", "segment images and write label maps and pictures"),
    "export": ("gcnseg.export", "export a checkpoint to ONNX or TorchScript"),
    "bench": ("gcnseg.bench.cli", "time GCNSeg against ResNet-50 and other segmentation networks"),
    "ablate": ("gcnseg.ablate.cli", "train and tabulate the networks of a paper ablation table (Tables 1-5)"),
    "vrf": ("gcnseg.vrf", "valid receptive field of the score map at one point (Figure 3)"),
    "models": ("gcnseg.zoo.cli", "list the trained models that ship with gcnseg"),
    "serve": ("gcnseg.serve.cli", "a local page to look at a model's predictions on any image"),
}


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1 (``--limit 0`` is refused, not "all")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    """``--checkpoint PATH`` or ``--model NAME`` (one of them): what a command runs."""
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--checkpoint", help="run folder, checkpoint folder, its model.safetensors, or a named model")
    g.add_argument(
        "--model", dest="checkpoint", metavar="NAME", help="a trained model that ships with gcnseg (gcnseg models)"
    )


class Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake as one line that points at ``--help`` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gcnseg",
        description="Global Convolutional Network for semantic segmentation (Peng et al., CVPR 2017).",
    )
    parser.add_argument("--version", action="version", version=f"gcnseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()  # imports every command's module: seconds, in which Ctrl-C may come
    except KeyboardInterrupt:
        print("gcnseg: interrupted", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    try:
        code = int(importlib.import_module(args._module).run(args) or 0)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except GcnsegError as e:
        print(f"gcnseg: error: {e}", file=sys.stderr)
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
        print(f"gcnseg: error: {where}: {e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
