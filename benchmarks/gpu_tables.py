"""Tables 1 and 5 whole at CamVid's full resolution on a lent GPU, in one call (issue 24).

    python benchmarks/gpu_tables.py CAMVID OUT [--seeds 0 1 2] [--parallel 6] [--budget-s 480]

Every network of Table 1 (the 1x1 baseline, GCN k = 3..15) and Table 5 (GCN k=15 + BR) on
the ImageNet EfficientNet-Lite0 with the shipped recipe's whole schedule
(benchmarks/camvid_full_res_table.yaml's setting: 360x480, 40 epochs), for each seed, on
CUDA with bf16 autocast. The runs go ``--parallel`` at a time on the one GPU (each is a
``gcnseg ablate`` of one network; the CPU cores are shared among their data loaders),
the four networks of the CPU table first, so that a short budget still pairs them over
the seeds. At ``--budget-s`` the runs still training are stopped (SIGTERM: they save and
stop) and left out of the results.

CAMVID is best the JPEG copy of ``benchmarks/camvid_jpeg.py`` (the device tool carries at
most 64 MiB; docs/ablations.md measures that the copy scores like the PNGs). Each finished
run's config, metrics, summary and float32 ``gcnseg eval`` go to
``OUT/camvid_full_res_gpu/seedS-SLUG/`` (the layout of benchmarks/camvid_full_res_report.py,
whose table is rewritten to ``OUT/report.md`` after each run, as are the logs: a call
killed at the device's limit keeps what finished); the run folders themselves stay
outside OUT (``--runs``). The script exits non-zero where there is no CUDA device or any
run or its scoring failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from camvid_full_res_report import read, report  # noqa: E402

from gcnseg.ablate.tables import slugify  # noqa: E402
from gcnseg.commands.args import positive_int  # noqa: E402
from gcnseg.runtime import atomic_write_text  # noqa: E402

TABLE = HERE / "camvid_full_res_table.yaml"
FIRST = ("Baseline", "GCN k=15", "GCN k=15 + BR", "GCN k=5")  # the CPU table's networks
KEPT = ("config.yaml", "metrics.jsonl", "summary.json")


def networks() -> list[dict]:
    """Table 1's and Table 5's networks, the CPU table's four first."""
    table = yaml.safe_load(TABLE.read_text())
    nets = list(table["networks"])
    names = {n["name"] for n in nets}
    for k in (3, 7, 9, 11, 13):
        if f"GCN k={k}" not in names:
            nets.append({"name": f"GCN k={k}", "set": {"model.head": "gcn", "model.k": k, "model.br": False}})
    return sorted(nets, key=lambda n: FIRST.index(n["name"]) if n["name"] in FIRST else len(FIRST))


def one_network_table(net: dict, path: Path) -> Path:
    """A table file of ``net`` alone, with the CPU table's title, columns and base."""
    table = yaml.safe_load(TABLE.read_text())
    table["base"] = str((TABLE.parent / table["base"]).resolve())
    table["networks"] = [net]
    path.write_text(yaml.safe_dump(table, sort_keys=False))
    return path


def gcnseg(*args: str) -> list[str]:
    return [sys.executable, "-m", "gcnseg", *args]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("camvid", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--parallel", type=positive_int, default=6, help="runs at a time on the GPU")
    p.add_argument("--budget-s", type=float, default=480, help="stop what still trains after this long")
    p.add_argument("--runs", type=Path, default=Path("/tmp/gpu_tables_runs"), help="the run folders")
    p.add_argument("--device", default="cuda", help="cuda (cpu: a dry run of the plumbing, with --set)")
    p.add_argument("--set", nargs="*", default=[], help="extra overrides for every run (dry runs)")
    args = p.parse_args(argv)
    args.seeds = list(dict.fromkeys(args.seeds))  # a seed given twice: one run folder each
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_tables: no CUDA device", file=sys.stderr)
        return 1
    start = time.monotonic()
    results = args.out / "camvid_full_res_gpu"
    results.mkdir(parents=True, exist_ok=True)
    args.runs.mkdir(parents=True, exist_ok=True)
    log = (args.out / "gpu_tables.log").open("a")
    workers = max(1, ((os.cpu_count() or 2) - args.parallel) // args.parallel)
    jobs = [(net, seed) for net in networks() for seed in args.seeds]
    jobs.sort(key=lambda j: (j[0]["name"] not in FIRST, args.seeds.index(j[1])))  # the four, seed by seed, first
    running: dict[subprocess.Popen, tuple[str, int, Path]] = {}
    failed = 0

    def write_outputs() -> None:
        atomic_write_text(args.out / "report.md", report(read(results)) + "\n")
        (args.out / "logs").mkdir(exist_ok=True)
        for run_log in args.runs.glob("seed*.log"):
            shutil.copyfile(run_log, args.out / "logs" / run_log.name)

    def collect(proc: subprocess.Popen, slug: str, seed: int, out: Path) -> None:
        nonlocal failed
        run = out / slug
        if proc.returncode != 0 or not (run / "summary.json").is_file():
            failed += 1
            print(f"seed {seed} {slug}: failed (exit {proc.returncode}), see {out}.log", file=log, flush=True)
            return
        dest = results / f"seed{seed}-{slug}"
        dest.mkdir(exist_ok=True)
        for name in KEPT:
            shutil.copyfile(run / name, dest / name)
        left = max(30.0, args.budget_s + 60 - (time.monotonic() - start))  # a hung eval: never the whole call
        with open(f"{out}.log", "a") as run_log:
            try:
                code = subprocess.run(
                    gcnseg("eval", "--checkpoint", str(run / "last.json"), "--eager", "--no-progress",
                           "--device", args.device, "--json", str(dest / "eval.json")),
                    stdout=run_log, stderr=subprocess.STDOUT, timeout=left,
                ).returncode  # fmt: skip
            except subprocess.TimeoutExpired:
                code = -1
        failed += code != 0
        print(f"seed {seed} {slug}: done at {time.monotonic() - start:.0f} s (eval exit {code})", file=log, flush=True)
        write_outputs()

    stopped: list[tuple[str, int, Path]] = []
    while jobs or running:
        while jobs and len(running) < args.parallel and time.monotonic() - start < args.budget_s:
            net, seed = jobs.pop(0)
            slug = slugify(net["name"])
            out = args.runs / f"seed{seed}-{slug}"
            table = one_network_table(net, args.runs / f"seed{seed}-{slug}.yaml")
            cmd = gcnseg(
                "ablate", "--table-file", str(table), "--seed", str(seed), "--out", str(out), "--no-progress",
                f"data.root={args.camvid}", f"data.workers={workers}", f"train.device={args.device}",
                "train.amp=bf16", "train.threads=1", "train.max_minutes=null", *args.set,
            )  # fmt: skip
            with open(f"{out}.log", "a") as run_log:
                running[subprocess.Popen(cmd, stdout=run_log, stderr=subprocess.STDOUT)] = (slug, seed, out)
            print(f"seed {seed} {slug}: started at {time.monotonic() - start:.0f} s", file=log, flush=True)
        for proc in [q for q in running if q.poll() is not None]:
            collect(proc, *running.pop(proc))
        if time.monotonic() - start >= args.budget_s:
            stopped = list(running.values())
            for proc, (slug, seed, _) in running.items():
                proc.send_signal(signal.SIGTERM)
                print(f"seed {seed} {slug}: stopped by the budget", file=log, flush=True)
            for proc in running:
                proc.wait()
            break
        time.sleep(2)
    write_outputs()
    scored = len(list(results.glob("seed*-*/eval.json")))
    line = f"{scored} runs scored, {failed} failed, {len(stopped)} stopped by the budget, {len(jobs)} not started"
    print(line, file=log, flush=True)
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
