"""A new user's first hour, as the README tells it: from an empty folder outside the clone
(HOME elsewhere), their own images with a void value other than 255, the README's
"Fine-tune on your own data" commands run verbatim by recipe name (init, a short train,
eval, predict, export), the run's precision as this CPU does it natively, the run labelled
in Python with one call (equal to predict's labels), and the exported ONNX file run with
onnxruntime from its metadata alone."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import save, street_scene
from PIL import Image

from gcnseg.runtime import native_bf16 as real_native_bf16  # bound before conftest's stand-in

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Fine-tune a pretrained encoder on your own data"


def readme_blocks() -> tuple[list[list[str]], str]:
    """The section's shell commands (comments dropped) and its Python block, as written."""
    text = README.read_text()
    section = text[text.index(SECTION) : text.index("\n## ", text.index(SECTION) + 1)]
    bash = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    python = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert bash and python, "the section's bash and python blocks"
    commands = [shlex.split(line, comments=True) for line in bash.group(1).splitlines() if line.strip()]
    return commands, python.group(1)


def make_my_data(root: Path, n: int = 8) -> None:
    """``images/``, ``masks/`` (classes 0-2, and 11 for void as CamVid's files have it) and
    ``classes.txt``: street-like pictures whose labels follow their colours."""
    root.mkdir(parents=True)
    (root / "classes.txt").write_text("road\nbuilding\nsky\n")
    for i in range(1, n + 1):
        rgb = street_scene(96, 128)
        rng = np.random.default_rng(i)
        rgb = np.clip(rgb.astype(int) + rng.integers(-12, 13, rgb.shape), 0, 255).astype(np.uint8)
        mask = np.zeros((96, 128), np.uint8)
        mask[:30] = 2  # sky on top
        mask[30:64] = 1  # buildings
        mask[64:] = 0  # road
        mask[60:68, 20 + 4 * i : 40 + 4 * i] = 11  # void
        save(root / "images" / f"{i:04d}.png", rgb)
        save(root / "masks" / f"{i:04d}.png", mask)


@pytest.mark.slow
def test_a_new_user_fine_tunes_on_their_own_data(tmp_path, monkeypatch):
    commands, python = readme_blocks()
    assert [c[:2] for c in commands] == [
        ["gcnseg", "init"],
        ["gcnseg", "train"],
        ["gcnseg", "eval"],
        ["gcnseg", "predict"],
        ["gcnseg", "export"],
    ]
    work, home = tmp_path / "work", tmp_path / "home"
    home.mkdir()
    make_my_data(work / "my_data")
    env = {**os.environ, "HOME": str(home), "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)
    for args in commands:
        r = subprocess.run(
            [sys.executable, "-m", "gcnseg", *args[1:]], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, f"{shlex.join(args)}\n{r.stdout}\n{r.stderr}"
        if args[1] == "eval":
            assert "mIoU" in r.stdout
    written = {p.relative_to(home).parts[:2] for p in home.rglob("*") if p.is_file()}
    assert written <= {(".cache", "matplotlib"), (".config", "matplotlib")}  # gcnseg keeps nothing in HOME

    config = (work / "my_data.yaml").read_text()
    assert f"root: {work / 'my_data'}" in config and "void: [11]" in config
    summary = json.loads((work / "runs" / "my_data" / "summary.json").read_text())
    native = real_native_bf16()  # what this CPU does natively
    assert summary["runtime"]["amp"] == ("bf16" if native else "fp32") and summary["runtime"]["amp_asked"] == "auto"
    assert "training on cpu" in (work / "runs" / "my_data" / "train.log").read_text()

    predicted = np.asarray(Image.open(work / "predictions" / "labels" / "0001.png"))
    assert len(list((work / "predictions" / "labels").glob("*.png"))) == 4  # --limit 4

    monkeypatch.chdir(work)
    scope: dict = {}
    exec(python, scope)  # the README's Python block, as written
    labels = scope["labels"]
    assert labels.shape == (96, 128) and np.array_equal(labels, predicted)
    picture = Image.open("my_data/images/0001.png")
    assert np.array_equal(scope["model"].segment(picture), predicted)  # a PIL image, the same call

    import onnx
    import onnxruntime as ort

    session = ort.InferenceSession(str(work / "my_data.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map  # all that is known: the file itself
    assert json.loads(meta["classes"]) == ["road", "building", "sky"]
    assert {p.key for p in onnx.load(str(work / "my_data.onnx")).metadata_props} >= {"classes", "palette", "mean"}
    (name,) = [i.name for i in session.get_inputs()]
    (onnx_labels,) = session.run(None, {name: np.asarray(picture.convert("RGB"))[None]})
    assert onnx_labels.shape == (1, 96, 128)
    assert (onnx_labels[0] == predicted).mean() >= 0.99  # the file runs the float32 graph; predict, bf16 where native
