"""The table files of ``gcnseg ablate``: one YAML file per paper table.

The paper's Tables 1-5 ship inside the package (``gcnseg/ablate/tables/tableN.yaml``,
beside their base config ``voc.yaml``), so ``--table N`` works from an installed
wheel. A table file lists the networks of one paper table::

    table: 1                          # the paper's table number
    title: "..."                      # its caption
    base: voc.yaml                    # the paper's setting, relative to this file
    columns: [miou]                   # summary metrics (in %) and/or head_params
    set: {model.br: false}            # optional: dotted keys for every network
    networks:
      - {name: Baseline, paper: {miou: 69.0}, set: {model.head: conv1x1}}
      - {name: GCN k=3, paper: {miou: 70.1}, set: {model.head: gcn, model.k: 3}}

The configuration of a network is built in this order, later wins: the base
config (``--config`` replaces the table's ``base``), the table's ``set``, the
command line's ``KEY=VALUE`` overrides, ``--seed`` and ``--budget``, the
network's ``set``. An override may not touch a key that a network sets (that
key defines the table), nor the seed or budget keys when those options are given.

Each network trains into ``OUT/<slug>/`` (slug: the name in lower case, runs of
other characters replaced by ``-``); how runs are resumed and reported:
:mod:`gcnseg.ablate.runner`.
"""

from __future__ import annotations

import atexit
import functools
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import GcnsegError

METRICS = ("miou", "boundary_acc", "internal_acc", "pixel_acc", "mean_acc", "fwiou")
COLUMNS = METRICS + ("head_params",)
LABELS = {
    "miou": "mIoU",
    "boundary_acc": "boundary acc",
    "internal_acc": "internal acc",
    "pixel_acc": "pixel acc",
    "mean_acc": "mean acc",
    "fwiou": "fwIoU",
    "head_params": "res-5 head params",
}


@dataclass
class Network:
    """One row of a paper table."""

    name: str
    slug: str
    paper: dict[str, float]
    set: dict[str, Any]


@dataclass
class Table:
    """A paper table as read from its YAML file."""

    number: int
    title: str
    columns: list[str]
    networks: list[Network]
    source: Path
    base: Path | None = None
    set: dict[str, Any] = field(default_factory=dict)


def slugify(name: str) -> str:
    """``"GCN k=3"`` -> ``"gcn-k-3"``: the network's folder name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@functools.cache
def tables_dir() -> Path:
    """The folder of the shipped table files, as a real path (a table's ``base`` is
    relative to it). From a zipped package the YAML files are copied out once, into a
    temporary folder removed at exit."""
    folder = resources.files("gcnseg.ablate") / "tables"
    if isinstance(folder, Path):
        return folder
    tmp = Path(tempfile.mkdtemp(prefix="gcnseg-tables-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    for item in folder.iterdir():
        if item.name.endswith(".yaml"):
            (tmp / item.name).write_bytes(item.read_bytes())
    return tmp


def table_path(number: int) -> Path:
    """The shipped table file of paper table ``number``."""
    path = tables_dir() / f"table{number}.yaml"
    if not path.is_file():
        raise GcnsegError(f"{path}: no table file for --table {number} (give --table-file PATH)")
    return path


def _dotted(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise GcnsegError(f"{where}: expected a mapping of dotted config keys, got {value!r}")
    return dict(value)


def _network(item: Any, columns: list[str], where: str) -> Network:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise GcnsegError(f"{where}: expected {{name, paper, set}}, got {item!r}")
    if set(item) - {"name", "paper", "set"}:
        raise GcnsegError(f"{where}: unknown keys {sorted(set(item) - {'name', 'paper', 'set'})}")
    paper = item.get("paper") or {}
    if (
        not isinstance(paper, dict)
        or not set(paper) <= set(columns)
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in paper.values())
    ):
        raise GcnsegError(f"{where}: paper must map columns ({', '.join(columns)}) to numbers, got {paper!r}")
    return Network(
        item["name"],
        slugify(item["name"]),
        {k: float(v) for k, v in paper.items()},
        _dotted(item.get("set"), f"{where}.set"),
    )


def load_table(path: str | Path) -> Table:
    """Read and check a table file (format: module docstring); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise GcnsegError(f"{path}: table file not found")
    from ..config.loading import MAX_CONFIG_BYTES, parse_yaml, read_text_bounded

    data = parse_yaml(read_text_bounded(path, MAX_CONFIG_BYTES, "table"), str(path))  # bounded as configs are
    if not isinstance(data, dict):
        raise GcnsegError(f"{path}: expected a mapping with table, title, columns, networks")
    unknown = set(data) - {"table", "title", "base", "columns", "set", "networks"}
    if unknown:
        raise GcnsegError(f"{path}: unknown keys {sorted(unknown)}")
    columns = data.get("columns") or ["miou"]
    if not isinstance(columns, list) or not set(columns) <= set(COLUMNS):
        raise GcnsegError(f"{path}: columns must be a list of {', '.join(COLUMNS)}, got {columns!r}")
    raw = data.get("networks")
    if not isinstance(raw, list) or not raw:
        raise GcnsegError(f"{path}: networks must be a non-empty list")
    networks = [_network(item, columns, f"{path}: networks[{i}]") for i, item in enumerate(raw)]
    slugs = [n.slug for n in networks]
    if len(set(slugs)) != len(slugs) or "" in slugs:
        raise GcnsegError(f"{path}: network names must give distinct folder names, got {slugs}")
    number = data.get("table")
    if not isinstance(number, int) or isinstance(number, bool):
        raise GcnsegError(f"{path}: table must be the paper's table number, got {number!r}")
    base = data.get("base")
    return Table(
        number,
        str(data.get("title", f"Table {number}")),
        list(columns),
        networks,
        path,
        (path.parent / base) if base else None,
        _dotted(data.get("set"), f"{path}: set"),
    )
