"""The compiled inference path (gcnseg/compiled.py) and the choice of path
(gcnseg.optimize.inference_model)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gcnseg.compiled
from gcnseg.checkpoint import load_model
from gcnseg.compiled import MAX_SHAPES, CompiledModel
from gcnseg.errors import GcnsegError
from gcnseg.optimize import InferenceModel, inference_model


@pytest.mark.timeout(900)
def test_compiled_network_agrees_with_eager_float32():
    """A real Inductor compile of the shipped CamVid model's optimised network, on drawn
    street scenes: the scores and labels of eager fp32."""
    import numpy as np
    from fakes import street_scene

    from gcnseg.predict import to_input

    torch.set_num_threads(1)
    model, cfg, _ = load_model("camvid-gcn-lite0")
    said: list[str] = []
    net = inference_model(model, precision="fp32", compile="on", notify=said.append)
    assert isinstance(net, CompiledModel)
    scene = street_scene(96, 128)
    with torch.inference_mode():
        for shift in (0, 40, 80):  # one size: one compile
            x = to_input(np.roll(scene, shift, axis=1), cfg.data.mean, cfg.data.std)
            ref, out = model(x), net(x)
            torch.testing.assert_close(out, ref, atol=2e-3, rtol=1e-3)
            assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.999
    assert not net.broken and net.shapes == {(1, 3, 96, 128)}
    assert said[0].startswith("compiling the network for 96x128 inputs") and said[1].startswith("compiled in")
    assert len(said) == 2


class _Counted:
    """A stand-in for torch.compile's result: counts calls, runs the model."""

    def __init__(self, model: nn.Module, fail: bool = False) -> None:
        self.model, self.fail, self.calls = model, fail, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail:
            raise RuntimeError("InductorError: no working C++ compiler\nmore")
        return self.model(x)


def _compiled(monkeypatch, model: nn.Module, compiler=None) -> tuple[CompiledModel, list[str]]:
    """``model`` in a :class:`CompiledModel` whose ``torch.compile`` is ``compiler`` (default: a
    counting stand-in that runs the model), and the list of what it said."""
    stand_in = compiler or (lambda m: _Counted(m))
    monkeypatch.setattr(gcnseg.compiled.torch, "compile", lambda m, dynamic: stand_in(m))
    said: list[str] = []
    return CompiledModel(model, notify=said.append), said


def test_at_most_max_shapes_are_compiled(monkeypatch):
    net, said = _compiled(monkeypatch, nn.Conv2d(3, 2, 1))
    sizes = [(8 + i, 8) for i in range(MAX_SHAPES + 2)]
    for h, w in sizes + sizes:  # each size twice
        assert net(torch.zeros(1, 3, h, w)).shape == (1, 2, h, w)
    assert net.shapes == {(1, 3, h, w) for h, w in sizes[:MAX_SHAPES]}
    assert net.compiled.calls == 2 * MAX_SHAPES  # the other sizes ran uncompiled
    assert sum(line.startswith("compiling") for line in said) == MAX_SHAPES


def test_a_failed_compile_runs_uncompiled_and_says_so_once(monkeypatch):
    conv = nn.Conv2d(3, 2, 1)
    net, said = _compiled(monkeypatch, conv, lambda m: _Counted(m, fail=True))
    x = torch.randn(1, 3, 5, 5)
    for _ in range(3):
        torch.testing.assert_close(net(x), conv(x))
    assert net.broken and net.compiled.calls == 1
    assert said[-1] == "compiling failed (RuntimeError: InductorError: no working C++ compiler); running uncompiled"


@pytest.fixture
def plain(trained_run):
    return load_model(trained_run)[0]


def test_auto_compiles_long_jobs_and_long_lived_processes(plain, monkeypatch):
    monkeypatch.delenv("GCNSEG_COMPILE")
    assert isinstance(inference_model(plain, passes=10), InferenceModel)  # too short to repay it
    assert isinstance(inference_model(plain, passes=gcnseg.compiled.COMPILE_MIN_PASSES), CompiledModel)
    assert isinstance(inference_model(plain, passes=None), CompiledModel)  # serve
    assert isinstance(inference_model(plain, compile="on", passes=1), CompiledModel)
    assert isinstance(inference_model(plain, compile="off", passes=None), InferenceModel)
    assert inference_model(plain, eager=True) is plain
    with pytest.raises(GcnsegError, match="--eager runs the network as it is"):
        inference_model(plain, eager=True, compile="on")
    with pytest.raises(GcnsegError, match="--eager runs the network as it is"):
        inference_model(plain, eager=True, precision="int8")


def test_gcnseg_compile_decides_auto(plain, monkeypatch):
    monkeypatch.setenv("GCNSEG_COMPILE", "off")
    assert isinstance(inference_model(plain, passes=None), InferenceModel)
    assert isinstance(inference_model(plain, compile="on"), CompiledModel)  # a flag wins
    monkeypatch.setenv("GCNSEG_COMPILE", "ON")
    assert isinstance(inference_model(plain, passes=1), CompiledModel)
    monkeypatch.setenv("GCNSEG_COMPILE", "sometimes")
    with pytest.raises(GcnsegError, match="GCNSEG_COMPILE=sometimes: expected auto, on, off"):
        inference_model(plain)


def test_no_compiler_runs_uncompiled(plain, monkeypatch):
    monkeypatch.setattr(gcnseg.compiled.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    said: list[str] = []
    net = inference_model(plain, compile="on", notify=said.append)
    assert isinstance(net, InferenceModel)
    assert said == ["no compiler for torch.compile on this machine (a C++ compiler on the CPU); running uncompiled"]


def test_train_compile_auto_compiles_long_schedules_on_cuda_only():
    from gcnseg.runtime import COMPILE_MIN_STEPS, resolve_compile

    cpu, cuda, long = torch.device("cpu"), torch.device("cuda", 0), COMPILE_MIN_STEPS
    assert [resolve_compile(v, cpu, long) for v in ("auto", True, False)] == [False, True, False]
    assert [resolve_compile(v, cuda, long) for v in ("auto", True, False)] == [True, True, False]
    assert [resolve_compile(v, cuda, 10) for v in ("auto", True, False)] == [False, True, False]


def test_train_compile_on_trains_through_the_compiled_step(tmp_path, monkeypatch):
    """train.compile=true: every training forward goes through torch.compile's module (a
    stand-in here: a real compile of forward and backward takes minutes), the checkpoint
    holds the bare network's weights, and the run records it."""
    import json

    from test_train import tiny

    from gcnseg.train import train

    made: list[_Counted] = []

    def fake_compile(module: nn.Module, **kwargs: object) -> nn.Module:
        counted = _Counted(module)
        made.append(counted)
        wrapper = nn.Module()
        wrapper._orig_mod = module  # as torch.compile's OptimizedModule keeps it
        wrapper.forward = counted  # type: ignore[method-assign]
        return wrapper

    monkeypatch.setattr(torch, "compile", fake_compile)
    summary = train(tiny(tmp_path / "run", "train.iterations=3", "train.compile=true"), show_progress=False)
    assert len(made) == 1 and made[0].calls == 3
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["runtime"]["compile"] is True
    load_model(tmp_path / "run")  # weights saved without the wrapper's prefix
    assert summary["runtime"]["compile"] is True
    assert "the step compiled" in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.timeout(900)
def test_compiled_training_step_equals_eager():
    """A real compile of GCNSeg's forward and backward (Deconv2x's replicate padding on
    channels-last maps included, which Inductor's own replicate-pad backward rejects):
    the same loss and gradients as eager."""
    import copy

    from gcnseg.models import GCNSeg
    from gcnseg.train.loss import segmentation_loss

    torch.manual_seed(0)
    eager = GCNSeg(3, "resnet18", k=3).train()
    compiled_net = copy.deepcopy(eager)
    step = torch.compile(compiled_net)
    x, y = torch.randn(2, 3, 36, 52), torch.randint(0, 3, (2, 36, 52))  # odd crops in the decoder
    losses = []
    for fn in (eager, step):
        loss = segmentation_loss(fn(x), y, 255)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[1], losses[0], atol=1e-4, rtol=1e-4)
    for (name, a), b in zip(eager.named_parameters(), compiled_net.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-3, rtol=1e-3, msg=name)


def test_a_compile_that_disagrees_runs_uncompiled(monkeypatch):
    """A compiled graph whose labels differ from the uncompiled network's (a compiler bug, a
    cache built for another instruction set) is dropped at its first input."""

    class Wrong(_Counted):
        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return -self.model(x)  # every argmax moves

    conv = nn.Conv2d(3, 4, 1)
    net, said = _compiled(monkeypatch, conv, Wrong)
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        for _ in range(2):
            torch.testing.assert_close(net(x), conv(x))
    assert net.broken and net.compiled.calls == 1
    assert said[-1].startswith("the compiled network's labels agreed with the uncompiled one's on only")
    assert said[-1].endswith("of the pixels; running uncompiled")


def test_serve_compiles_for_the_folders_first_image_before_the_page(trained_run, tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    from gcnseg.serve.segmenter import Segmenter
    from gcnseg.serve.server import _warm_up

    monkeypatch.setattr(gcnseg.compiled.torch, "compile", lambda m, dynamic: _Counted(m))
    segmenter = Segmenter([str(trained_run)], device="cpu", path={"compile": "on"})
    loaded = segmenter.load(str(trained_run))
    assert isinstance(loaded.model, CompiledModel)
    Image.fromarray(np.full((40, 56, 3), 90, np.uint8)).save(tmp_path / "first.png")
    _warm_up(segmenter, loaded, tmp_path / "first.png")
    assert loaded.model.shapes == {(1, 3, 40, 56)}
    assert f"compiling {trained_run} for 40x56 images before the page opens" in capsys.readouterr().out
    _warm_up(segmenter, loaded, tmp_path / "missing.png")  # an unreadable first image: the page will say so


def test_views_and_layouts_of_one_shape_share_one_checked_graph(monkeypatch):
    conv = nn.Conv2d(3, 2, 1)
    net, said = _compiled(monkeypatch, conv)
    big = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        for x in (big[:, :, :16, :16], big[:, :, :16, :16].contiguous(), torch.randn(1, 3, 16, 16)):
            torch.testing.assert_close(net(x), conv(x))
    assert net.shapes == {(1, 3, 16, 16)} and net.compiled.calls == 3
    assert sum(line.startswith("compiling") for line in said) == 1


def test_the_environment_decides_auto_only(plain, monkeypatch):
    monkeypatch.setenv("GCNSEG_COMPILE", "on")
    assert inference_model(plain, eager=True) is plain  # --eager never compiles, whatever the environment
    monkeypatch.setenv("GCNSEG_COMPILE", "bogus")
    assert inference_model(plain, eager=True) is plain
    with pytest.raises(GcnsegError, match="GCNSEG_COMPILE=bogus"):
        inference_model(plain)


def test_multi_scale_eval_counts_passes_per_input_size(trained_run, monkeypatch):
    """--ms runs six sizes: compiling auto weighs the passes of one size, not of all six."""
    import gcnseg.optimize
    from gcnseg.commands import main

    seen: dict[str, object] = {}

    def spy(model, **kwargs):
        seen.update(kwargs)
        return model

    monkeypatch.setattr(gcnseg.optimize, "inference_model", spy)
    assert main(["eval", "--checkpoint", str(trained_run), "--ms", "--flip", "--no-progress", "--limit", "2"]) == 0
    assert seen["passes"] == 2 * 2  # two images, flipped: per size
