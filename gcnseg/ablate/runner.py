"""Running an ablation: one config per network, trained, resumed or skipped, and the
report rewritten after each network.

Each network trains into ``OUT/<slug>/``. A network whose folder holds
``summary.json`` is done and skipped; one with a checkpoint but no summary
resumes; so running the same command again resumes an interrupted ablation. A
folder that holds a run of another configuration is an error, never silently
reused; a run of the same configuration made for another table is reused, so
Tables 1-5 given one OUT train each distinct network once (run the tables one
after the other: two ``ablate`` processes on one OUT could train the same
shared network at once). After every network ``OUT/tableN.md``, ``OUT/tableN.json`` and
``OUT/tableN.png`` are rewritten (pending networks show as ``-``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from ..checkpoint import foreign_entries
from ..config import Config, apply_overrides, flatten, load_config, with_input_normalisation
from ..errors import GcnsegError, Stopped
from ..runtime import hidden, is_main
from .report import network_row, write_report
from .tables import LABELS, Table

# keys that do not change what a run computes: a finished run may differ in them (``name``
# too, so tables that share a network, e.g. "GCN k=3" in Tables 1-3, share its run in one OUT)
NEUTRAL_KEYS = {
    "name",
    "train.device",
    "train.threads",
    "data.workers",
    "data.root",
    "train.previews",
    "train.log_every",
    "train.compile",  # the same step, compiled or not (up to float rounding)
}


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


def common_config(
    table: Table,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    seed: int | None = None,
    budget: str | None = None,
) -> Config:
    """What every network shares: base config, the table's ``set``, the overrides, seed and budget."""
    base = Path(config) if config is not None else table.base
    if base is None:
        raise GcnsegError(f"{table.source}: no base config; give --config FILE")
    cfg = apply_overrides(load_config(base), values=table.set, source=f"{table.source}: set")
    fixed = {"train.seed": seed} if seed is not None else {}
    fixed |= {f"train.{k}": v for k, v in parse_budget(budget).items()}
    return apply_overrides(cfg, overrides, fixed)


def network_configs(
    table: Table,
    out: Path,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    seed: int | None = None,
    budget: str | None = None,
) -> list[Config]:
    """The checked :class:`Config` of every network of ``table`` (order: :mod:`gcnseg.ablate.tables`)."""
    overrides = list(overrides or [])
    budget_keys = parse_budget(budget)
    reserved = {"out_dir", "name"} | {k for n in table.networks for k in n.set}
    reserved |= {"train.seed"} if seed is not None else set()
    reserved |= {f"train.{k}" for k in budget_keys}
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        clash = sorted(r for r in reserved if _overlaps(key, r))
        if clash:
            raise GcnsegError(
                f"override {item!r}: {', '.join(clash)} is set by the ablation itself "
                "(by the table's networks, --seed, --budget or --out)"
            )
    common = common_config(table, config, overrides, seed, budget)
    configs = []
    for net in table.networks:
        own = {**net.set, "name": f"table{table.number}-{net.slug}", "out_dir": str(Path(out) / net.slug)}
        cfg = apply_overrides(common, values=own, source=f"{table.source}: network {net.name!r}")
        configs.append(with_input_normalisation(cfg))  # as its run saves it (compared on a rerun)
    return configs


def _check_out(out: Path, table: Table) -> None:
    """``out`` is new, empty, or holds only what ablations write (run folders, of this
    table's networks or of another's that shares ``out``, and reports): never a folder of
    other files, mixed with its own."""
    if not out.is_dir():
        return

    slugs = {n.slug for n in table.networks}

    def ours(p: Path) -> bool:  # a network's run folder (of any table: they share one out), or a report
        if p.is_dir():
            return p.name in slugs or not foreign_entries(p)
        return re.fullmatch(r"table\d+\.(md|json|png)", p.name) is not None

    foreign = sorted(p.name for p in out.iterdir() if not hidden(p, out) and not ours(p))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise GcnsegError(
            f"{out}: holds files that no ablation wrote ({shown}); an ablation goes into a new or empty folder, "
            "or the --out of earlier ablations: choose another --out"
        )


def _check_same_run(run_dir: Path, cfg: Config) -> None:
    """Refuse a run folder that holds a run of another configuration (``NEUTRAL_KEYS`` aside)."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    old = flatten(load_config(saved).to_dict())
    new = flatten(cfg.to_dict())
    diff = sorted(k for k in set(old) | set(new) if k not in NEUTRAL_KEYS and old.get(k) != new.get(k))
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:4])
        raise GcnsegError(
            f"{run_dir}: holds a run of another configuration ({shown}{', ...' if len(diff) > 4 else ''}); "
            "use another --out or delete that folder"
        )


def run_network(cfg: Config, show_progress: bool = True) -> tuple[str, dict[str, Any]]:
    """Train one network unless done: ``("done" | "resumed" | "trained", summary)``."""
    from ..train import train  # looked up at call time: tests replace gcnseg.train.train

    run_dir = Path(cfg.out_dir)
    _check_same_run(run_dir, cfg)
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        return "done", json.loads(summary_path.read_text())
    resume = (run_dir / "last.json").is_file()
    train(cfg, resume=resume, show_progress=show_progress)
    return ("resumed" if resume else "trained"), json.loads(summary_path.read_text())


def _context(
    table: Table,
    configs: list[Config],
    config: str | Path | None,
    overrides: list[str] | None,
    seed: int | None,
    budget: str | None,
    command: str | None,
) -> dict[str, Any]:
    """The setting written into the report: command, files, seed, budget, shared config."""
    shared = common_config(table, config, overrides, seed, budget)
    return {
        "command": command or "gcnseg ablate (from Python)",
        "table_file": str(table.source),
        "config": str(config or table.base),
        "seed": configs[0].train.seed,
        "budget": budget_label(budget, configs[0]),
        "overrides": list(overrides or []),
        "common_yaml": yaml.safe_dump(
            {k: v for k, v in shared.to_dict().items() if k not in ("name", "out_dir")}, sort_keys=False
        ),
    }


def ablate(
    table: Table,
    out: str | Path,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    seed: int | None = None,
    budget: str | None = None,
    show_progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Train (or resume, or skip) every network of ``table``; returns the report's JSON content."""
    out = Path(out)
    _check_out(out, table)
    configs = network_configs(table, out, config, overrides, seed, budget)
    context = _context(table, configs, config, overrides, seed, budget, command)
    summaries: list[dict[str, Any] | None] = [None] * len(configs)
    main = is_main()
    num_classes: int | None = None

    def rows() -> list[dict[str, Any]]:
        return [network_row(n, c, s, num_classes) for n, c, s in zip(table.networks, configs, summaries)]

    for i, (net, cfg) in enumerate(zip(table.networks, configs)):
        print(f"[{i + 1}/{len(configs)}] {net.name} -> {cfg.out_dir}", flush=True)
        try:
            status, summary = run_network(cfg, show_progress)
        except Stopped as e:  # the table goes on where it stopped: finished networks are skipped, this one resumes
            e.go_on = command or "the same ablate() call"
            raise
        summaries[i] = summary
        if num_classes is None:
            from ..checkpoint import read_meta, resolve_checkpoint

            num_classes = int(read_meta(resolve_checkpoint(cfg.out_dir, "last"))["num_classes"])
        final = summary["final"]
        print(
            f"[{i + 1}/{len(configs)}] {net.name}: {status}, "
            + ", ".join(
                f"{LABELS[c]} {100 * final[c]:.2f}" + (f" (paper {net.paper[c]:.1f})" if c in net.paper else "")
                for c in table.columns
                if c != "head_params" and isinstance(final.get(c), (int, float))
            ),
            flush=True,
        )
        if main:  # under torchrun, one process writes the report
            paths = write_report(out, table, rows(), context)
    if not main:
        return {}
    print(f"table: {paths['md']}\nchart: {paths['png']}\ndata:  {paths['json']}")
    return json.loads(paths["json"].read_text())
