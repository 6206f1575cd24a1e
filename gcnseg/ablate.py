"""``gcnseg ablate``: the ablation tables of Section 4.1 (Tables 1-5), trained and
measured under one budget and one seed, beside the paper's numbers.

A table file (``configs/ablations/tableN.yaml``) lists the networks of one
paper table::

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
other characters replaced by ``-``). A network whose folder holds
``summary.json`` is done and skipped; one with a checkpoint but no summary
resumes; so running the same command again resumes an interrupted ablation. A
folder that holds a run of another configuration is an error, never silently
reused; a run of the same configuration made for another table is reused, so
Tables 1-5 given one OUT train each distinct network once (run the tables one
after the other: two ``ablate`` processes on one OUT could train the same
shared network at once). After every network ``OUT/tableN.md``, ``OUT/tableN.json`` and
``OUT/tableN.png`` are rewritten (pending networks show as ``-``).

Measured values are the final validation of each run (``summary.json``
``final``, not the best step). Head parameters are counted like the paper's
Tables 2 and 4, for the res-5 head (``model.heads[3]``), and for all four heads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from .config import Config, config_from_dict, flatten, load_config, merge, parse_overrides, unflatten
from .errors import GcnsegError

TABLE_DIR = Path(__file__).resolve().parents[1] / "configs" / "ablations"
METRICS = ("miou", "boundary_acc", "internal_acc", "pixel_acc", "mean_acc", "fwiou")
COLUMNS = METRICS + ("head_params",)
LABELS = {"miou": "mIoU", "boundary_acc": "boundary acc", "internal_acc": "internal acc", "pixel_acc": "pixel acc",
          "mean_acc": "mean acc", "fwiou": "fwIoU", "head_params": "res-5 head params"}
# keys that do not change what a run computes: a finished run may differ in them (``name``
# too, so tables that share a network, e.g. "GCN k=3" in Tables 1-3, share its run in one OUT)
NEUTRAL_KEYS = {"name", "train.device", "train.threads", "data.workers", "data.root", "train.previews", "train.log_every"}


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


def table_path(number: int) -> Path:
    """The repository's table file for paper table ``number``."""
    path = TABLE_DIR / f"table{number}.yaml"
    if not path.is_file():
        raise GcnsegError(f"{path}: no table file for --table {number} (give --table-file PATH)")
    return path


def _dotted(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise GcnsegError(f"{where}: expected a mapping of dotted config keys, got {value!r}")
    return dict(value)


def load_table(path: str | Path) -> Table:
    """Read and check a table file (format: module docstring); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise GcnsegError(f"{path}: table file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise GcnsegError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
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
    networks: list[Network] = []
    for i, item in enumerate(raw):
        where = f"{path}: networks[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise GcnsegError(f"{where}: expected {{name, paper, set}}, got {item!r}")
        if set(item) - {"name", "paper", "set"}:
            raise GcnsegError(f"{where}: unknown keys {sorted(set(item) - {'name', 'paper', 'set'})}")
        paper = item.get("paper") or {}
        if not isinstance(paper, dict) or not set(paper) <= set(columns) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in paper.values()
        ):
            raise GcnsegError(f"{where}: paper must map columns ({', '.join(columns)}) to numbers, got {paper!r}")
        networks.append(Network(item["name"], slugify(item["name"]), {k: float(v) for k, v in paper.items()},
                                _dotted(item.get("set"), f"{where}.set")))
    slugs = [n.slug for n in networks]
    if len(set(slugs)) != len(slugs) or "" in slugs:
        raise GcnsegError(f"{path}: network names must give distinct folder names, got {slugs}")
    number = data.get("table")
    if not isinstance(number, int) or isinstance(number, bool):
        raise GcnsegError(f"{path}: table must be the paper's table number, got {number!r}")
    base = data.get("base")
    return Table(number, str(data.get("title", f"Table {number}")), list(columns), networks, path,
                 (path.parent / base) if base else None, _dotted(data.get("set"), f"{path}: set"))


def parse_budget(text: str | None) -> dict[str, Any]:
    """``"300"``/``"300it"`` -> a fixed iteration count; ``"90s"``/``"20m"``/``"1.5h"`` ->
    ``train.max_minutes`` (the schedule keeps the config's length, training stops at the time)."""
    if text is None:
        return {}
    t = text.strip().lower()
    m = re.fullmatch(r"(\d+)\s*(it|iters?|iterations?)?", t)
    if m:
        if int(m.group(1)) < 1:
            raise GcnsegError(f"--budget {text}: needs at least 1 iteration")
        return {"iterations": int(m.group(1)), "epochs": None, "max_minutes": None}
    m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*(s|sec|m|min|h)", t)
    if m and float(m.group(1)) > 0:
        minutes = float(m.group(1)) * {"s": 1 / 60, "sec": 1 / 60, "m": 1, "min": 1, "h": 60}[m.group(2)]
        return {"max_minutes": minutes}
    raise GcnsegError(f"--budget {text}: expected iterations (300, 300it) or time per network (90s, 20m, 1.5h)")


def budget_label(budget: str | None, cfg: Config) -> str:
    """Words for the report: what ``--budget`` meant for the runs."""
    t = cfg.train
    schedule = f"{t.epochs} epochs" if t.epochs is not None else f"{t.iterations} iterations"
    if t.max_minutes is not None:
        return f"{budget} of training per network (stopped at the time, or at the schedule's end: {schedule})"
    return f"{schedule} per network" + ("" if budget else " (the config's schedule)")


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def common_config(table: Table, config: str | Path | None = None, overrides: list[str] | None = None,
                  seed: int | None = None, budget: str | None = None) -> dict[str, Any]:
    """What every network shares: base config, the table's ``set``, the overrides, seed and budget."""
    base = Path(config) if config is not None else table.base
    if base is None:
        raise GcnsegError(f"{table.source}: no base config; give --config FILE")
    common = merge(load_config(base).to_dict(), unflatten(table.set))
    common = merge(common, parse_overrides(list(overrides or [])))
    if seed is not None:
        common = merge(common, {"train": {"seed": seed}})
    return merge(common, {"train": parse_budget(budget)})


def network_configs(table: Table, out: Path, config: str | Path | None = None, overrides: list[str] | None = None,
                    seed: int | None = None, budget: str | None = None) -> list[Config]:
    """The checked :class:`Config` of every network of ``table`` (order: module docstring)."""
    overrides = list(overrides or [])
    budget_keys = parse_budget(budget)
    reserved = {"out_dir", "name"} | {k for n in table.networks for k in n.set}
    reserved |= {"train.seed"} if seed is not None else set()
    reserved |= {f"train.{k}" for k in budget_keys}
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        clash = sorted(r for r in reserved if _overlaps(key, r))
        if clash:
            raise GcnsegError(f"override {item!r}: {', '.join(clash)} is set by the ablation itself "
                              "(by the table's networks, --seed, --budget or --out)")
    common = common_config(table, config, overrides, seed, budget)
    configs = []
    for net in table.networks:
        data = merge(common, unflatten(net.set))
        data = merge(data, {"name": f"table{table.number}-{net.slug}", "out_dir": str(Path(out) / net.slug)})
        configs.append(config_from_dict(data, f"{table.source}: network {net.name!r}"))
    return configs


def head_params(cfg: Config, num_classes: int) -> tuple[int, int]:
    """Parameters of the res-5 score head (as in Tables 2 and 4) and of all four heads."""
    from .models import ENCODERS, build_head, per_stage_k

    if cfg.model.backbone not in ENCODERS:
        raise GcnsegError(f"model.backbone={cfg.model.backbone!r}: unknown (known: {', '.join(ENCODERS)})")
    channels = ENCODERS[cfg.model.backbone][1]
    with torch.device("meta"):  # shapes only: no memory, no initialisation (Table 4 heads hold 10^8 weights)
        counts = [sum(p.numel() for p in build_head(cfg.model.head, c, num_classes, k, cfg.model.m).parameters())
                  for c, k in zip(channels, per_stage_k(cfg.model.k))]
    return counts[3], sum(counts)


def _check_same_run(run_dir: Path, cfg: Config) -> None:
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    old = flatten(load_config(saved, saved=True).to_dict())
    new = flatten(cfg.to_dict())
    diff = sorted(k for k in set(old) | set(new) if k not in NEUTRAL_KEYS and old.get(k) != new.get(k))
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:4])
        raise GcnsegError(f"{run_dir}: holds a run of another configuration ({shown}{', ...' if len(diff) > 4 else ''}); "
                          "use another --out or delete that folder")


def run_network(cfg: Config, show_progress: bool = True) -> tuple[str, dict[str, Any]]:
    """Train one network unless done: ``("done" | "resumed" | "trained", summary)``."""
    from .train import train

    run_dir = Path(cfg.out_dir)
    _check_same_run(run_dir, cfg)
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        return "done", json.loads(summary_path.read_text())
    resume = (run_dir / "last.json").is_file()
    train(cfg, resume=resume, show_progress=show_progress)
    return ("resumed" if resume else "trained"), json.loads(summary_path.read_text())


def _row(net: Network, cfg: Config, summary: dict[str, Any] | None, num_classes: int | None) -> dict[str, Any]:
    row: dict[str, Any] = {"name": net.name, "slug": net.slug, "run_dir": cfg.out_dir, "set": net.set,
                           "paper": net.paper, "status": "pending", "measured": {}}
    if summary is not None:
        final = summary["final"]
        row.update(status="done", steps=summary["steps"], train_seconds=summary["train_seconds"],
                   measured={k: 100 * final[k] for k in METRICS if isinstance(final.get(k), (int, float))})
    if num_classes is not None:
        res5, heads = head_params(cfg, num_classes)
        row["head_params"] = {"res5": res5, "all": heads}
        row["measured"]["head_params"] = res5
    return row


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def _cell(value: float | None, column: str, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column == "head_params":
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def format_markdown(table: Table, rows: list[dict[str, Any]], context: dict[str, Any]) -> str:
    """The report: paper and measured values side by side, head parameters, time, and the setting."""
    header = ["Network"]
    for c in table.columns:
        header += [f"{LABELS[c]} (paper)", f"{LABELS[c]} (measured)"] if c != "head_params" else [f"{LABELS[c]} (paper)"]
    header += ["res-5 head params", "all heads params", "steps", "train time"]
    lines = [
        f"# Table {table.number}: {table.title}",
        "",
        "Paper: Peng et al., *Large Kernel Matters*, CVPR 2017, Section 4.1 (ResNet-152, VOC 2012 val). "
        "Measured: `gcnseg ablate`, final validation of each run, in %; "
        "head parameters counted for this setting's classes and backbone (the paper: 21 classes, ResNet-152).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" + "---:|" * (len(header) - 1),
    ]
    for r in rows:
        cells = [r["name"]]
        for c in table.columns:
            cells.append(_cell(r["paper"].get(c), c, digits=1))
            if c != "head_params":
                cells.append(_cell(r["measured"].get(c), c))
        hp = r.get("head_params", {})
        cells += [_cell(hp.get("res5"), "head_params"), _cell(hp.get("all"), "head_params"),
                  str(r.get("steps", "-")), _duration(r["train_seconds"]) if "train_seconds" in r else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Setting",
        "",
        f"- command: `{context['command']}`",
        f"- table file: `{context['table_file']}`",
        f"- base config: `{context['config']}`",
        f"- seed: {context['seed']}",
        f"- budget: {context['budget']}",
        f"- overrides for every network: {', '.join(f'`{o}`' for o in context['overrides']) or 'none'}",
        "- networks:",
    ]
    lines += [f"  - {r['name']} (`{r['run_dir']}`): " + ", ".join(f"`{k}={v}`" for k, v in r["set"].items()) for r in rows]
    lines += ["", "Configuration shared by the networks (each network's settings above replace its keys):", "", "```yaml",
              context["common_yaml"].rstrip(), "```", ""]
    return "\n".join(lines)


def plot_table(table: Table, rows: list[dict[str, Any]], out_png: Path) -> Path:
    """One panel per column: the paper's values (left axis) and the measured ones (right
    axis, its own scale: another dataset or budget shifts the level, the trend is what compares);
    head parameters share one log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols = table.columns
    width = max(4.5, 0.7 * len(rows) + 2)
    fig, axes = plt.subplots(1, len(cols), figsize=(width * len(cols), 4.2), squeeze=False)
    x = np.arange(len(rows))
    nan = float("nan")
    for ax, c in zip(axes[0], cols):
        paper = np.array([r["paper"].get(c, nan) for r in rows], dtype=float)
        measured = np.array([r["measured"].get(c, nan) for r in rows], dtype=float)
        ax.set_xticks(x, [r["name"] for r in rows], rotation=30, ha="right")
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_title(LABELS[c])
        ax.grid(alpha=0.3)
        if c == "head_params":
            ax.plot(x - 0.1, paper, "D", color="#7f7f7f", label="paper")
            ax.plot(x + 0.1, measured, "o", color="#1f77b4", label="measured")
            ax.set_yscale("log")
            ax.set_ylabel("parameters of the res-5 head")
            ax.legend(fontsize=8)
            continue
        ax.plot(x - 0.1, paper, "D", color="#7f7f7f", label="paper")
        ax.set_ylabel("paper (%)", color="#7f7f7f")
        if np.isnan(paper).all():
            ax.set_yticks([])
        right = ax.twinx()
        right.plot(x + 0.1, measured, "o", color="#1f77b4", markersize=8, label="measured")
        right.set_ylabel("measured (%)", color="#1f77b4")
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="best")
    fig.suptitle(f"Table {table.number}: {table.title}")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def write_report(out: Path, table: Table, rows: list[dict[str, Any]], context: dict[str, Any]) -> dict[str, Path]:
    """Write ``tableN.md``, ``tableN.json`` and ``tableN.png`` into ``out``."""
    from .runtime import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"table{table.number}"
    doc = {"table": table.number, "title": table.title, "columns": table.columns, "units": "percent; head params: count",
           **{k: v for k, v in context.items() if k != "common_yaml"}, "networks": rows}
    atomic_write_text(stem.with_suffix(".json"), json.dumps(doc, indent=2))
    atomic_write_text(stem.with_suffix(".md"), format_markdown(table, rows, context))
    plot_table(table, rows, stem.with_suffix(".png"))
    return {"md": stem.with_suffix(".md"), "json": stem.with_suffix(".json"), "png": stem.with_suffix(".png")}


def ablate(table: Table, out: str | Path, config: str | Path | None = None, overrides: list[str] | None = None,
           seed: int | None = None, budget: str | None = None, show_progress: bool = True,
           command: str | None = None) -> dict[str, Any]:
    """Train (or resume, or skip) every network of ``table``; returns the report's JSON content."""
    out = Path(out)
    configs = network_configs(table, out, config, overrides, seed, budget)
    context = {
        "command": command or "gcnseg ablate (from Python)",
        "table_file": str(table.source),
        "config": str(config or table.base),
        "seed": configs[0].train.seed,
        "budget": budget_label(budget, configs[0]),
        "overrides": list(overrides or []),
        "common_yaml": yaml.safe_dump({k: v for k, v in common_config(table, config, overrides, seed, budget).items()
                                       if k not in ("name", "out_dir")}, sort_keys=False),
    }
    summaries: list[dict[str, Any] | None] = [None] * len(configs)
    is_main = int(os.environ.get("RANK", 0)) == 0
    num_classes: int | None = None

    def rows() -> list[dict[str, Any]]:
        return [_row(n, c, s, num_classes) for n, c, s in zip(table.networks, configs, summaries)]

    for i, (net, cfg) in enumerate(zip(table.networks, configs)):
        print(f"[{i + 1}/{len(configs)}] {net.name} -> {cfg.out_dir}", flush=True)
        status, summaries[i] = run_network(cfg, show_progress)
        if num_classes is None:
            from .checkpoint import read_meta, resolve_checkpoint

            num_classes = int(read_meta(resolve_checkpoint(cfg.out_dir, "last"))["num_classes"])
        final = summaries[i]["final"]
        print(f"[{i + 1}/{len(configs)}] {net.name}: {status}, " + ", ".join(
            f"{LABELS[c]} {100 * final[c]:.2f}" + (f" (paper {net.paper[c]:.1f})" if c in net.paper else "")
            for c in table.columns if c != "head_params" and isinstance(final.get(c), (int, float))), flush=True)
        if is_main:  # under torchrun, one process writes the report
            paths = write_report(out, table, rows(), context)
    if not is_main:
        return {}
    print(f"table: {paths['md']}\nchart: {paths['png']}\ndata:  {paths['json']}")
    return json.loads(paths["json"].read_text())


# ----------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--table", type=int, choices=range(1, 6), metavar="N",
                       help="paper table 1-5 (configs/ablations/tableN.yaml)")
    which.add_argument("--table-file", metavar="PATH", help="a table file of one's own (format: gcnseg/ablate.py)")
    p.add_argument("--config", metavar="FILE", help="base config (dataset, backbone, schedule) replacing the table's base")
    p.add_argument("--budget", help="per network: iterations (300, 300it) or wall-clock time (90s, 20m, 1.5h)")
    p.add_argument("--seed", type=int, help="train.seed of every network (default: the config's)")
    p.add_argument("--out", required=True, metavar="DIR", help="one run folder per network, and the table")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for every network")


def command_line(args: argparse.Namespace) -> str:
    """The command as one would type it again (written into the report)."""
    parts = ["gcnseg", "ablate"]
    parts += ["--table", str(args.table)] if args.table is not None else ["--table-file", args.table_file]
    for flag, value in (("--config", args.config), ("--budget", args.budget), ("--seed", args.seed), ("--out", args.out)):
        if value is not None:
            parts += [flag, str(value)]
    return shlex.join(parts + list(args.overrides))


def run(args: argparse.Namespace) -> int:
    table = load_table(args.table_file if args.table_file else table_path(args.table))
    ablate(table, args.out, args.config, args.overrides, args.seed, args.budget,
           show_progress=not args.no_progress, command=command_line(args))
    return 0
