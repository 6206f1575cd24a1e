"""The built wheel: the paper's table files ship inside the package, so ``gcnseg ablate
--table N`` works from an install that has no repository beside it."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fakes import once_per_session

REPO = Path(__file__).resolve().parents[1]
TABLES = [f"gcnseg/ablate/tables/table{n}.yaml" for n in range(1, 6)] + ["gcnseg/ablate/tables/voc.yaml"]
LOAD = (
    "import gcnseg; from gcnseg.ablate import load_table, table_path; t = load_table(table_path(1)); "
    "print(gcnseg.__file__); print(t.base, t.base.is_file()); print(t.number, len(t.networks))"
)


def _python(args: list[str], pythonpath: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python ARGS`` run in ``cwd`` with ``pythonpath`` as the only PYTHONPATH entry."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """A wheel built once per session (for all xdist workers) from a copy of the repository's
    packaging inputs (its top-level files and gcnseg/): building in the repository itself
    would write build/ and gcnseg.egg-info there, and a stale build/lib can slip modules
    deleted since into the wheel."""
    return once_per_session(tmp_path_factory, "wheel", _build_wheel) / "gcnseg.whl"


def _build_wheel(folder: Path) -> Path:
    if (folder / "gcnseg.whl").is_file():
        return folder
    src = folder / "src"
    src.mkdir(parents=True, exist_ok=True)
    for item in REPO.iterdir():
        if item.is_file():
            shutil.copy2(item, src / item.name)
    shutil.copytree(REPO / "gcnseg", src / "gcnseg", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = folder / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"pip wheel failed (setuptools>=70.1 comes with the [test] extra):\n{r.stdout}{r.stderr}"
    (whl,) = out.glob("gcnseg-*.whl")
    shutil.copy2(whl, folder / "gcnseg.whl.tmp")
    os.replace(folder / "gcnseg.whl.tmp", folder / "gcnseg.whl")
    return folder


def test_wheel_holds_the_tables_and_the_named_models(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(TABLES) <= names
    assert not any(n.startswith("configs/") for n in names)
    from gcnseg.config import recipes

    assert {f"gcnseg/configs/{name}.yaml" for name in recipes()} <= names  # --config NAME from an install
    from gcnseg.zoo import ZOO

    for name in ZOO:
        assert {f"gcnseg/zoo/{name}/{f}" for f in ("model.safetensors", "model.json", "README.md")} <= names


def test_ablate_runs_from_the_unzipped_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    r = _python(["-m", "gcnseg", "ablate", "--table", "1", "--help"], site, cwd)
    assert "--table-file" in r.stdout
    r = _python(["-m", "gcnseg", "configs", "camvid_lite0"], site, cwd)  # a recipe by name, from the install
    assert r.stdout == (site / "gcnseg" / "configs" / "camvid_lite0.yaml").read_text()
    gcnseg_file, base, counts = _python(["-c", LOAD], site, cwd).stdout.splitlines()
    assert Path(gcnseg_file) == site / "gcnseg" / "__init__.py"  # not the repository's source tree
    assert base == f"{site / 'gcnseg' / 'ablate' / 'tables' / 'voc.yaml'} True"
    assert counts == "1 8"


def test_ablate_tables_from_the_zipped_wheel(wheel, tmp_path):
    """Imported from the .whl itself (zipimport): the tables are copied out to real files."""
    gcnseg_file, base, counts = _python(["-c", LOAD], wheel, tmp_path).stdout.splitlines()
    assert Path(gcnseg_file) == wheel / "gcnseg" / "__init__.py"
    assert base.endswith(f"{os.sep}voc.yaml True") and not base.startswith(str(wheel))
    assert counts == "1 8"
