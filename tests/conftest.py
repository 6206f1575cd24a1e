"""Shared test settings: small, deterministic, one thread per xdist worker; and the one
tiny trained run that the tests of evaluation, prediction, export and the optimised
path share (built once for all xdist workers, read-only: copy it to change it)."""

import os
import shutil
from pathlib import Path

import pytest
import torch
from filelock import FileLock

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _train_once(run: Path) -> Path:
    from fakes import TRAINED_RUN

    from gcnseg.config import load_config
    from gcnseg.train import train

    if not (run / "summary.json").is_file():
        shutil.rmtree(run, ignore_errors=True)  # a worker killed half-way
        train(load_config(None, TRAINED_RUN + [f"out_dir={run}"]), show_progress=False)
    return run


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """The run folder of ``fakes.TRAINED_RUN`` (do not write into it)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process
        return _train_once(tmp_path_factory.getbasetemp() / "trained-run")
    shared = tmp_path_factory.getbasetemp().parent  # the same for every worker of this session
    with FileLock(str(shared / "trained-run.lock")):
        return _train_once(shared / "trained-run")


@pytest.fixture
def trained_run_copy(trained_run, tmp_path) -> Path:
    """A private copy of the trained run, to resume, overwrite or corrupt."""
    return Path(shutil.copytree(trained_run, tmp_path / "trained-run"))
