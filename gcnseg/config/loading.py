"""Reading, checking and overriding a :class:`~gcnseg.config.Config`: YAML through a
bounded ``yaml.SafeLoader`` only (:class:`_BoundedLoader`: size, nesting, aliases and
integer length bounded, so that no file or override can hang or exhaust the reader),
every value checked against the dataclass types and ranges (a bad one is one line
naming the source and the key), ``section.key=value`` overrides."""

from __future__ import annotations

import dataclasses
import os
import re
import reprlib
import stat
import types
import typing
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from ..normalisation import input_normalisation
from .schema import READER_KEYS, RETIRED_KEYS, Config, ConfigError, check_config

# bounds of what a config file (and each override's value) may ask of the YAML reader: a
# config is a few KB, a handful of sections deep, and a file past these is refused in one
# line before it is parsed (pure-Python PyYAML reads ~100 KB a second on a busy core)
MAX_CONFIG_BYTES = 256 * 1024
MAX_YAML_DEPTH = 32  # nested collections: sections -> keys -> lists -> ...
MAX_YAML_NODES = 200_000  # nodes of the document with every alias expanded ("billion laughs")
MAX_INT_CHARS = 100  # an integer literal (2**63 has 19 digits; Python refuses str->int past 4300)


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` within bounds, so that no file of :data:`MAX_CONFIG_BYTES` can
    hang or exhaust the reader: collections nested at most :data:`MAX_YAML_DEPTH` deep
    (deeper ones raised ``RecursionError``), integers of at most :data:`MAX_INT_CHARS`
    characters (longer ones ``ValueError``), and at most :data:`MAX_YAML_NODES` nodes once
    every alias is expanded. Anchors and aliases stay allowed (a config may share a value
    and ``yaml.safe_dump`` may write them), but a document is measured, before anything
    is built from it, as if each alias were a copy of what it names (:func:`_measure`):
    a "billion laughs" of 1 KB (nine levels of nine aliases) is refused at once, and so
    are aliases that nest a value too deep and an alias inside what it names (a cycle)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _measure(node, {})
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """A mapping that gives a key twice is refused (plain YAML keeps the last silently)."""
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"the key {key.value!r} is given twice", key.start_mark
                        )
                    seen.add(key.value)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: Any) -> int:
        if len(node.value) > MAX_INT_CHARS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value)} characters (at most {MAX_INT_CHARS})", node.start_mark
            )
        return int(super().construct_yaml_int(node))


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def _measure(node: Any, seen: dict[int, tuple[int, int] | None], depth: int = 1) -> tuple[int, int]:
    """``(nodes, height)`` of the YAML node graph under ``node`` (at ``depth``) with every
    alias expanded: each shared node is measured once (``seen``: id -> its measure, None
    while it is being measured), and the bounds are checked on the way down, so that an
    alias cannot nest a value deeper than :data:`MAX_YAML_DEPTH` either."""
    key = id(node)
    if key in seen and seen[key] is None:
        raise yaml.composer.ComposerError(None, None, "an alias inside the value it names", node.start_mark)
    known = seen.get(key)
    if depth + (known[1] if known else 0) > MAX_YAML_DEPTH:
        raise yaml.composer.ComposerError(
            None, None, f"nested deeper than {MAX_YAML_DEPTH} levels (its aliases expanded)", node.start_mark
        )
    if known:
        return known
    seen[key] = None
    size, height = 1, 0
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        n, h = _measure(child, seen, depth + 1)
        size, height = size + n, max(height, h + 1)
        if size > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"more than {MAX_YAML_NODES} values once its aliases are expanded", node.start_mark
            )
    seen[key] = (size, height)
    return size, height


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document ``text`` read safely and within bounds (:class:`_BoundedLoader`);
    a bad or oversized one is a :class:`ConfigError` naming ``source``."""
    try:
        return _load_yaml(text)
    except _NotYaml as e:
        raise ConfigError(f"{source}: not valid YAML ({e})") from None


class _NotYaml(Exception):
    """Why a text is not a YAML document gcnseg reads (one line)."""


def _load_yaml(text: str) -> Any:
    if len(text) > MAX_CONFIG_BYTES:
        raise _NotYaml(f"{len(text)} characters, more than a config holds (at most {MAX_CONFIG_BYTES})")
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except yaml.YAMLError as e:
        raise _NotYaml(_yaml_problem(e)) from None


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML error in one line: what, and where (line and column)."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = f"{e.context}, {e.problem}" if e.context else e.problem
        return " ".join(f"{what}{where}".split())
    return " ".join(str(e).split())


def read_text_bounded(path: str | os.PathLike[str], limit: int, what: str = "file") -> str:
    """The UTF-8 text of the regular file ``path``, of at most ``limit`` bytes, read without
    waiting on a FIFO or device and without reading more than ``limit + 1`` bytes of
    anything; else a :class:`ConfigError` naming the file (an ``OSError`` where it cannot
    be opened)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"{path}: not a regular file (a {what} is read from a file)")
    with os.fdopen(fd, "rb") as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise ConfigError(f"{path}: larger than a {what} can be (at most {limit} bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); save the {what} as UTF-8"
        ) from None


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 8
_short.maxlevel = 3


def _r(value: Any) -> str:
    """``repr(value)``, cut short: an error message stays one readable line whatever the value."""
    try:
        return _short.repr(value)
    except ValueError:  # an integer too long to print
        return f"<{type(value).__name__}>"


class _Unparsed(str):
    """An override's value that is not valid YAML, kept as the text it is (a string key
    takes it as typed), with why it is not YAML (for the keys that need a YAML value)."""

    problem: str


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
        raise ConfigError(f"{where}: expected one of {', '.join(map(str, choices))}, got {_r(value)}")
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _check_value(value, arg, where, checks)
            except _CheckFailed:
                raise  # the value has this member's type but not its range: that is the message
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_r(value)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {_r(value)}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_r(value)}")
        (arg,) = typing.get_args(tp)
        return [_check_value(v, arg, f"{where}[{i}]", checks) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_r(value)}")
        return dict(value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {_r(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {_r(value)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {_r(value)}")
    if tp is str:
        if isinstance(value, str) and "\0" not in value:
            return str(value)  # a plain str (an _Unparsed override's text too)
        if isinstance(value, str):
            raise _CheckFailed(f"{where}: a NUL character in {_r(value)}")
        quote = " (YAML reads 'KEY: VALUE' as a mapping: quote the text, or drop the space after ':')"
        raise ConfigError(f"{where}: expected a string, got {_r(value)}{quote if isinstance(value, dict) else ''}")
    raise ConfigError(f"{where}: unsupported type {tp}")


def _type_name(tp: Any) -> str:
    """``int | list[int] | None`` -> ``int, list[int] or null``; a Literal's choices by name."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(tp)]
        return ", ".join(names[:-1]) + " or " + names[-1]
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if typing.get_origin(tp) is Annotated:  # its checks say the range when a value is out of it
        return _type_name(typing.get_args(tp)[0])
    if tp is type(None):
        return "null"
    if typing.get_origin(tp) is list:
        return f"list[{_type_name(typing.get_args(tp)[0])}]"
    return str(tp).replace("typing.", "") if typing.get_origin(tp) else tp.__name__


def _build(cls: Any, data: Any, where: str, checks: bool | Callable[[str], bool] = True) -> Any:
    """An instance of the dataclass ``cls`` from ``data``, every value checked by type, and
    by range where ``checks`` says so (a bool, or a function of the dotted key)."""
    at = f"{where}: " if where else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{at}expected a mapping, got {_r(data)}")
    hints = typing.get_type_hints(cls, include_extras=True)
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{at}unknown key {_r(key)} (known: {', '.join(known)})")
        tp = hints[key]
        sub = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, {} if value is None else value, sub, checks)
            continue
        try:
            kwargs[key] = _check_value(value, tp, sub, checks(sub) if callable(checks) else checks)
        except ConfigError:
            if isinstance(value, _Unparsed):  # the type's message would show the text, not why
                raise ConfigError(f"{sub}: {_r(str(value))} is not valid YAML ({value.problem})") from None
            raise
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
    if name in known:  # a folder of that name here (a dataset called camvid) does not hide the recipe
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
    are dropped, and only the ranges of :data:`READER_KEYS` are checked (what rebuilding
    and running the network reads, where a value out of range would crash or hang); the
    rest only by type (a trained run stays readable when a later version narrows what a
    new run may set)."""
    if saved and isinstance(data, dict):
        data = _drop_retired(data)
    try:
        cfg: Config = _build(Config, {} if data is None else data, "", checks=_reader_key if saved else True)
        check_config(cfg, saved=saved)
        if not saved:
            _resolve_roots(cfg)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return cfg


def _reader_key(dotted: str) -> bool:
    """Whether ``dotted`` is (under) one of :data:`READER_KEYS`."""
    return any(dotted == k or dotted.startswith(k + ".") for k in READER_KEYS)


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
            raise ConfigError(f"override {_r(item)}: expected section.key=value")
        key, raw = item.split("=", 1)
        value: Any = None
        if raw != "":
            try:
                value = _load_yaml(raw)
            except _NotYaml as e:  # kept as the text: a string key takes it as typed
                value = _Unparsed(raw)
                value.problem = str(e)
        _set_dotted(data, key.strip(), value)
    return data


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict update: ``extra`` wins, nested mappings are merged (an empty one
    replaces: ``data.options={}`` clears the options)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and v and isinstance(out.get(k), dict) else v
    return out


_SECTIONS = {f.name for f in fields(Config)}
_OVERRIDE = re.compile(r"(?:(?:name|out_dir)|(?:[a-z_]+)(?:\.[A-Za-z0-9_-]+)+)=.*", re.DOTALL)


def is_override(item: str) -> bool:
    """Whether a command-line item is a ``section.key=value`` override (or ``name=`` /
    ``out_dir=``) rather than a file: a path that exists is a file."""
    if not _OVERRIDE.fullmatch(item):
        return False
    try:
        if Path(item).exists():
            return False
    except OSError:  # a name longer than a path can be: not a file
        pass
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


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The section ``name`` of ``data`` where it is a mapping, else empty (what it is instead
    is for :func:`config_from_dict` to refuse, naming the key)."""
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def _check_sections(data: dict[str, Any], source: str) -> None:
    """Each section of a file's ``data`` is a mapping (or empty) before overrides merge into it."""
    for name in _SECTIONS - {"name", "out_dir"}:
        value = data.get(name)
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{source}: {name}: expected a mapping (a section), got {_r(value)}")


def _follow_the_backbone(before: dict[str, Any], after: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``after`` with its normalisation back to None (the backbone's own) where the changes
    give another backbone or weights, leave ``data.mean`` / ``data.std`` alone, and those
    were the old backbone's own: a run's config.yaml with another backbone normalises
    for that backbone."""
    m0, m1, d0 = _section(before, "model"), _section(after, "model"), _section(before, "data")
    changed = (m0.get("backbone"), m0.get("weights")) != (m1.get("backbone"), m1.get("weights"))
    touched = {"mean", "std"} & set(_section(changes, "data"))
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
        loaded = parse_yaml(read_text_bounded(path, MAX_CONFIG_BYTES, "config"), source)
        if loaded is None:  # an empty file (or only comments) is a mistake: it would train the defaults
            raise ConfigError(f"{path}: empty; expected a mapping of sections (model:, data:, train:, ...)")
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {_r(loaded)}")
        data = _drop_retired(loaded)
        _check_sections(data, source)
    changed: set[str] = set()
    if overrides:
        changes = _parse_overrides(overrides)
        changed = set(flatten(changes))
        data = _follow_the_backbone(data, _merge(data, changes), changes)
        source = f"{source} + overrides" if path is not None else "overrides"
    cfg = config_from_dict(data, source)
    _check_effective(cfg, changed, source)
    return cfg
