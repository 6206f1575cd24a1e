"""Reading, checking and overriding a :class:`~gcnseg.config.Config`: YAML through
``yaml.safe_load`` only, every value checked against the dataclass types (a bad one
is one line naming the source and the key), ``section.key=value`` overrides."""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from ..normalisation import input_normalisation
from .schema import RETIRED_KEYS, Config, ConfigError, check_config


class _CheckFailed(ConfigError):
    """A value of the right type out of its range (``Annotated`` checks)."""


def _check_value(value: Any, tp: Any, where: str, checks: bool = True) -> Any:
    """Check ``value`` against the type annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Annotated:  # a type and its checks
        base, *fns = typing.get_args(tp)
        value = _check_value(value, base, where, checks)
        for check in fns if checks else ():
            try:
                check(value)
            except ValueError as e:
                raise _CheckFailed(f"{where}: {e}") from None
        return value
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected one of {', '.join(map(str, choices))}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _check_value(value, arg, where, checks)
            except _CheckFailed:
                raise  # the value has this member's type but not its range: that is the message
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (arg,) = typing.get_args(tp)
        return [_check_value(v, arg, f"{where}[{i}]", checks) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported type {tp}")


def _type_name(tp: Any) -> str:
    """``int | list[int] | None`` -> ``int, list[int] or null``; a Literal's choices by name."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(tp)]
        return ", ".join(names[:-1]) + " or " + names[-1]
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if tp is type(None):
        return "null"
    return str(tp).replace("typing.", "") if typing.get_origin(tp) else tp.__name__


def _build(cls: Any, data: dict[str, Any], where: str, checks: bool = True) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
        tp = hints[key]
        sub = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, sub, checks)
        else:
            kwargs[key] = _check_value(value, tp, sub, checks)
    return cls(**kwargs)


# the recipes that ship in the package: gcnseg/configs/NAME.yaml, loaded by NAME
RECIPES = Path(__file__).resolve().parents[1] / "configs"


def recipes() -> dict[str, Path]:
    """``name -> file`` of every recipe that ships with gcnseg (``ablations/NAME`` for those
    in ``configs/ablations/``)."""
    return {p.relative_to(RECIPES).with_suffix("").as_posix(): p for p in sorted(RECIPES.rglob("*.yaml"))}


def recipe_summary(path: Path) -> str:
    """A recipe's first comment line: what it is, in one line."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """The YAML file that ``--config`` names: a file, or else a recipe's name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    known = recipes()
    name = str(name_or_path).removesuffix(".yaml")
    if name in known and not path.exists():
        return known[name]
    if path.exists():
        raise ConfigError(f"{path}: is not a file (--config takes a YAML file or a recipe's name)")
    raise ConfigError(
        f"{path}: no such config file, nor a recipe of gcnseg (recipes: {', '.join(known)}; gcnseg configs lists them)"
    )


def _absolute(path: str) -> str:
    """A dataset root as an absolute path (``~`` expanded), read against the current folder
    when the config is loaded, as typed: the run stores where the data was, not how it was
    reached."""
    return os.path.abspath(os.path.expanduser(path))


def _resolve_roots(cfg: Config) -> None:
    """``data.root`` and each ``data.options.<name>.root`` made absolute, in place."""
    d = cfg.data
    if d.root is not None:
        d.root = _absolute(d.root)
    for name, opts in d.options.items():
        if isinstance(opts, dict) and isinstance(opts.get("root"), str):
            d.options[name] = {**opts, "root": _absolute(opts["root"])}


# (key, when an override of it changes nothing in that config, why): checked for overrides
_NO_EFFECT: list[tuple[str, Any, str]] = [
    (
        "train.iterations",
        lambda c: c.train.epochs is not None,
        "train.epochs={c.train.epochs} sets the length; add train.epochs=null",
    ),
    ("optim.momentum", lambda c: c.optim.name != "sgd", "optim.name={c.optim.name} takes no momentum"),
    ("optim.power", lambda c: c.optim.schedule != "poly", "optim.schedule={c.optim.schedule} has no power"),
    ("model.m", lambda c: c.model.head != "stack", "model.m is the width of model.head=stack, not {c.model.head}"),
    ("eval.tile_overlap", lambda c: c.eval.tile is None, "there are no tiles (eval.tile=null)"),
    ("train.ohem_min_kept", lambda c: c.train.ohem_thresh is None, "OHEM is off (train.ohem_thresh=null)"),
]


def _check_effective(cfg: Config, changed: set[str], source: str) -> None:
    """An override that would change nothing is an error that says why, never dropped silently."""
    for key, idle, why in _NO_EFFECT:
        if key in changed and idle(cfg):
            raise ConfigError(f"{source}: {key} changes nothing here: {why.format(c=cfg)}")


def config_from_dict(data: dict[str, Any], source: str = "config", saved: bool = False) -> Config:
    """Build a checked :class:`Config` from plain data; errors name ``source`` and the key.

    ``saved``: the data was written by gcnseg (a run's sidecar): its :data:`RETIRED_KEYS`
    are dropped, and the ranges are not checked (a trained run stays readable when a
    later version narrows what a new run may set), only the types."""
    if saved and isinstance(data, dict):
        data = _drop_retired(data)
    try:
        cfg: Config = _build(Config, data or {}, "", checks=not saved)
        if not saved:
            check_config(cfg)
            _resolve_roots(cfg)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return cfg


def _drop_retired(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without :data:`RETIRED_KEYS` (copied along their paths; the rest untouched)."""
    out = dict(data)
    for dotted in RETIRED_KEYS:
        *path, last = dotted.split(".")
        node = out
        for p in path:
            if not isinstance(node.get(p), dict):
                break
            node[p] = dict(node[p])
            node = node[p]
        else:
            node.pop(last, None)
    return out


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {p} is not a section")
    node[parts[-1]] = value


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"seed": 1}}`` -> ``{"train.seed": 1}`` (empty mappings stay values)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _unflatten(dotted: dict[str, Any]) -> dict[str, Any]:
    """``{"train.seed": 1}`` -> ``{"train": {"seed": 1}}``."""
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        _set_dotted(out, key, value)
    return out


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.iterations=100", "model.k=[7,7,7,7]"]`` -> nested dict; values are YAML."""
    data: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        _set_dotted(data, key.strip(), value)
    return data


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict update: ``extra`` wins, nested mappings are merged."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


_SECTIONS = {f.name for f in fields(Config)}
_OVERRIDE = re.compile(r"(?:(?:name|out_dir)|(?:[a-z_]+)(?:\.[A-Za-z0-9_-]+)+)=.*", re.DOTALL)


def is_override(item: str) -> bool:
    """Whether a command-line item is a ``section.key=value`` override (or ``name=`` /
    ``out_dir=``) rather than a file: a path that exists is a file."""
    if not _OVERRIDE.fullmatch(item) or Path(item).exists():
        return False
    key = item.split("=", 1)[0]
    return key in ("name", "out_dir") or key.split(".", 1)[0] in _SECTIONS


def split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """``(overrides, others)``: the items that :func:`is_override` and the rest (e.g. input files)."""
    return [i for i in items if is_override(i)], [i for i in items if not is_override(i)]


def with_input_normalisation(cfg: Config) -> Config:
    """``cfg`` with ``data.mean`` / ``data.std`` set where they are None: the backbone's own
    input normalisation (:func:`gcnseg.normalisation.input_normalisation`). Training
    writes the result into the run, so every reader of the run uses the same values."""
    if cfg.data.mean is not None and cfg.data.std is not None:
        return cfg
    mean, std = input_normalisation(cfg.model.backbone, cfg.model.weights)
    return apply_overrides(cfg, values={"data.mean": cfg.data.mean or mean, "data.std": cfg.data.std or std})


def _follow_the_backbone(before: dict[str, Any], after: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``after`` with its normalisation back to None (the backbone's own) where the changes
    give another backbone or weights, leave ``data.mean`` / ``data.std`` alone, and those
    were the old backbone's own: a run's config.yaml with another backbone normalises
    for that backbone."""
    m0, m1, d0 = before.get("model") or {}, after.get("model") or {}, before.get("data") or {}
    changed = (m0.get("backbone"), m0.get("weights")) != (m1.get("backbone"), m1.get("weights"))
    touched = {"mean", "std"} & set(changes.get("data") or {})
    if not changed or touched or d0.get("mean") is None:
        return after
    own = input_normalisation(m0.get("backbone") or "resnet50", m0.get("weights"))
    if (d0.get("mean"), d0.get("std")) != own:
        return after  # set by hand for that backbone: kept
    return _merge(after, {"data": {"mean": None, "std": None}})


def given(flags: dict[str, Any]) -> dict[str, Any]:
    """The command-line flags that were given: ``None`` means "not on the command line"."""
    return {k: v for k, v in flags.items() if v is not None}


def apply_overrides(
    cfg: Config, overrides: list[str] | None = None, values: dict[str, Any] | None = None, source: str = "overrides"
) -> Config:
    """A new checked :class:`Config`: ``cfg`` with ``section.key=value`` overrides, then
    ``values`` (dotted key -> value, as they are) applied. The one way to change a config:
    every command applies its overrides and the flags that are shorthands for them
    (:func:`given`) with it, and ``gcnseg ablate`` the settings of its tables."""
    extra = _parse_overrides(list(overrides or []))
    if not extra and not values:
        return cfg
    changes = _merge(extra, _unflatten(dict(values or {})))
    before = cfg.to_dict()
    out = config_from_dict(_follow_the_backbone(before, _merge(before, changes), changes), source)
    _check_effective(out, set(flatten(changes)), source)
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (optional; a file, or the name of a recipe that ships with gcnseg)
    and apply ``key=value`` overrides. A file's :data:`RETIRED_KEYS` (a run folder's
    ``config.yaml`` written before) are dropped. A relative ``data.root`` is read against
    the current folder and kept absolute."""
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = config_path(path)
        source = str(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = _drop_retired(data)
    changed: set[str] = set()
    if overrides:
        changes = _parse_overrides(overrides)
        changed = set(flatten(changes))
        data = _follow_the_backbone(data, _merge(data, changes), changes)
        source = f"{source} + overrides" if path is not None else "overrides"
    cfg = config_from_dict(data, source)
    _check_effective(cfg, changed, source)
    return cfg
