"""The flags that several commands share, defined once so that each means the same
thing everywhere: ``--checkpoint``/``--model``, ``--config``, ``--device``, ``--json``,
``--no-progress``, ``--limit``, ``--tile``, and the trailing ``KEY=VALUE`` overrides.

Nothing here imports torch: ``gcnseg --help`` builds every command's parser.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Each flag's default in ``--help``, unless it has none (None, False) or its help says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake as one line that points at ``--help`` (exit 2), and
    each flag's default shown in ``--help``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if "unrecognized arguments" in message and "=" in message:
            message += (
                "; KEY=VALUE overrides are section.key=value (model, data, optim, train, eval), name= or out_dir="
            )
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1 (``--limit 0`` is refused, not "all")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """An ``argparse`` type: a finite number above 0 (a test scale)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def listed(kind: Callable[[str], T]) -> Callable[[str], T]:
    """``kind`` for a flag of several values (``nargs="+"``), which takes every value after
    it: where a value is no number at all (``--scales 0.5 1 photos/``), the error says the
    flag took it and how to end its values (``--``)."""

    @functools.wraps(kind)
    def parse(text: str) -> T:
        try:
            return kind(text)
        except argparse.ArgumentTypeError as e:
            try:
                float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{e}: the flag takes every value after it; end its values with -- or give {text!r} before it"
                ) from None
            raise

    return parse


def add_checkpoint(p: argparse.ArgumentParser) -> None:
    """``--checkpoint PATH`` or ``--model NAME`` (one of them): what a command runs."""
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--checkpoint", help="run folder, checkpoint folder, its model.safetensors, or a named model")
    g.add_argument(
        "--model", dest="checkpoint", metavar="NAME", help="a trained model that ships with gcnseg (gcnseg models)"
    )


def add_config(p: argparse.ArgumentParser, what: str = "the config") -> None:
    """``--config NAME|FILE``: a recipe that ships with gcnseg (``gcnseg configs``) or a YAML file."""
    p.add_argument(
        "--config", metavar="NAME|FILE", help=f"{what}: a recipe's name (gcnseg configs lists them) or a YAML file"
    )


def add_inference(p: argparse.ArgumentParser) -> None:
    """``--eager``, ``--precision``, ``--compile``: which inference path runs
    (:func:`gcnseg.optimize.inference_model`)."""
    p.add_argument("--eager", action="store_true", help="run the plain model: no optimised path, no compiling")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "int8"),
        default="auto",
        help="auto: bf16 where the CPU multiplies it natively and the backbone allows it, else fp32; int8: "
        "quantised with ONNX Runtime, "
        "calibrated on the model's training split (needs its data and 'gcnseg[onnx]')",
    )
    add_int8_agreement(p)
    p.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="torch.compile the optimised network (auto: when the job is long enough to repay compiling)",
    )


def inference_network(args: argparse.Namespace, model: Any, cfg: Any, images: int) -> tuple[Any, Any]:
    """The network and device that :func:`add_inference`'s and ``--device``'s flags ask for
    (eval, predict), for a job of ``images`` images (passes of one input size: twice with
    flip; each test scale is a size of its own). int8 runs ONNX Runtime on the CPU."""
    from ..optimize import inference_model
    from ..runtime import resolve_device

    device = resolve_device("cpu" if args.precision == "int8" and args.device == "auto" else args.device)
    model = model.to(device)  # before choosing the path: "auto" precision is bf16 on the CPU only
    network = inference_model(
        model,
        eager=args.eager,
        precision=args.precision,
        compile=args.compile,
        passes=images * (2 if cfg.eval.flip else 1),
        data=cfg.data,
        int8_agreement=args.int8_agreement / 100,
    )
    return network, device


def percent(text: str) -> float:
    """An ``argparse`` type: a percentage from 0 to 100."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected a percentage from 0 to 100, got {value:g}")
    return value


def add_int8_agreement(p: argparse.ArgumentParser) -> None:
    """``--int8-agreement PCT``: the guard of the int8 path (:mod:`gcnseg.int8`)."""
    p.add_argument(
        "--int8-agreement",
        type=percent,
        default=99.5,
        metavar="PCT",
        help="int8 keeps at least this %% argmax agreement with float32 on validation images: layers that "
        "cost it stay float32, and a network that cannot keep it runs float32",
    )


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help="auto (this process's GPU if there is one, else the CPU), cpu, cuda or cuda:N",
    )


def add_json(p: argparse.ArgumentParser, what: str = "the result") -> None:
    """``--json FILE``: ``what`` as JSON into FILE; ``--json -`` prints it (and nothing else) on stdout."""
    p.add_argument("--json", metavar="FILE", help=f"write {what} as JSON to FILE ('-': print it on stdout)")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_limit(p: argparse.ArgumentParser, what: str = "images") -> None:
    p.add_argument("--limit", type=positive_int, metavar="N", help=f"only the first N {what}")


def add_tile(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tile",
        type=listed(positive_int),
        nargs="+",
        metavar="SIZE",
        help="eval.tile: sliding-window tile, SIZE or H W",
    )


def add_overrides(p: argparse.ArgumentParser, example: str = "train.iterations=100") -> None:
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=f"config overrides, e.g. {example}")


def tile_value(tile: list[int] | None) -> int | list[int] | None:
    """``--tile`` as the value of ``eval.tile``: one size, ``[H, W]``, or None."""
    if not tile:
        return None
    if len(tile) > 2:
        from ..errors import GcnsegError

        raise GcnsegError(f"--tile takes one or two sizes (H W), got {len(tile)}")
    return tile[0] if len(tile) == 1 else list(tile)


def human(json_to: str | None) -> Any:
    """Where human-readable lines go: stderr when ``--json -`` owns stdout."""
    return sys.stderr if json_to == "-" else sys.stdout


def check_json(json_to: str | None, inputs: Iterable[Any] = ()) -> None:
    """A ``--json FILE`` that cannot be written, or that is one of the command's ``inputs``
    (or inside an input folder), is refused before the work."""
    if json_to and json_to != "-":
        from ..runtime import check_output

        check_output(json_to, "--json", inputs=inputs)


def write_json(json_to: str | None, data: Any) -> None:
    """``data`` as JSON: printed for ``-``, else written atomically to the file."""
    if not json_to:
        return
    text = json.dumps(data, indent=2, default=_jsonable)
    if json_to == "-":
        print(text)
        return
    from pathlib import Path

    from ..runtime import atomic_write_text

    Path(json_to).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json_to, text + "\n")
    print(f"written {json_to}")


def _jsonable(x: Any) -> Any:
    """Tensors and numpy scalars as plain values."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(type(x))
