"""Shared test settings: small, deterministic, one thread per xdist worker; and the one
tiny trained run that the tests of evaluation, prediction, export and the optimised
path share (built once for all xdist workers, read-only: copy it to change it)."""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from fakes import once_per_session

os.environ.setdefault("MPLBACKEND", "Agg")
# no torch.compile unless a test asks for it (a compile takes minutes on the CI's cores), and
# quantised networks cached in a folder of the tests' own, not the user's ~/.cache
os.environ["GCNSEG_COMPILE"] = "off"
os.environ.setdefault("GCNSEG_CACHE", tempfile.mkdtemp(prefix="gcnseg-test-cache-"))
torch.set_num_threads(1)
# one core per xdist worker: train.threads=auto (every core the process may use) is then 1
# in the tests and their subprocesses, and two workers never share a core
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and hasattr(os, "sched_setaffinity"):
    _cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {_cores[int(_worker[2:]) % len(_cores)]})


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _float32_auto(monkeypatch):
    """train.amp=auto trains in float32 in the tests, as on a CPU without native bf16 (most
    users'), so that results do not depend on the machine; tests of bf16 set it back."""
    import gcnseg.runtime

    monkeypatch.setattr(gcnseg.runtime, "native_bf16", lambda: False)


def _train_once(run: Path) -> Path:
    from fakes import TRAINED_RUN

    from gcnseg.config import load_config
    from gcnseg.train import train

    if not (run / "summary.json").is_file():
        shutil.rmtree(run, ignore_errors=True)  # a worker killed half-way
        train(load_config(None, TRAINED_RUN + [f"out_dir={run}"]), show_progress=False)
    return run


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """The run folder of ``fakes.TRAINED_RUN``, read-only: checked unchanged at the end."""
    run = once_per_session(tmp_path_factory, "trained-run", _train_once)
    before = _digest(run)
    yield run
    assert _digest(run) == before, f"a test wrote into the shared trained run {run}: copy it (trained_run_copy)"


@pytest.fixture
def trained_run_copy(trained_run, tmp_path) -> Path:
    """A private copy of the trained run, to resume, overwrite or corrupt."""
    return Path(shutil.copytree(trained_run, tmp_path / "trained-run"))
