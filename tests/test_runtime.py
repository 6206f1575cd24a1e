"""gcnseg.runtime, the one home of device, distributed and atomic-write helpers; and
the package's import graph (no cycles, function-local imports included)."""

import ast
from pathlib import Path

import pytest
import torch

from gcnseg.errors import GcnsegError
from gcnseg.runtime import any_process, atomic_path, atomic_write_text, rank_world, resolve_device
from gcnseg.runtime import native_bf16 as real_native_bf16  # bound before conftest's stand-in

PACKAGE = Path(__file__).resolve().parents[1] / "gcnseg"


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(GcnsegError, match=r"train\.device=cuda:1: CUDA is not available"):
        resolve_device("cuda:1", "train.device")
    with pytest.raises(GcnsegError, match="--device=tpu9: expected auto, cpu, cuda or cuda:N"):
        resolve_device("tpu9")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("auto") == torch.device("cuda", 3)  # this process's GPU under torchrun


def test_native_bf16_needs_the_cpus_own_flag(monkeypatch):
    """oneDNN says bf16 on every AVX-512 CPU (an Ice Lake emulates it, slower than float32):
    native only with the CPU's AVX512-BF16 or AMX-BF16 flag; without flags to read (not x86
    Linux), oneDNN's word; never where oneDNN says no (ONEDNN_MAX_CPU_ISA=AVX2)."""
    import gcnseg.runtime as rt

    monkeypatch.setattr(rt, "_onednn_bf16", lambda: True)
    cases = [({"avx2", "avx512f", "avx512_vnni"}, False), ({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True)]
    for flags, native in cases + [(None, True)]:
        monkeypatch.setattr(rt, "_cpu_flags", lambda flags=flags: flags)
        assert real_native_bf16() is native, flags
    monkeypatch.setattr(rt, "_onednn_bf16", lambda: False)
    assert real_native_bf16() is False
    monkeypatch.setattr(rt, "native_bf16", real_native_bf16)
    monkeypatch.setattr(rt, "_cpu_flags", lambda: {"avx2", "avx512f"})
    monkeypatch.setattr(rt, "_onednn_bf16", lambda: True)
    assert rt.resolve_amp("auto", torch.device("cpu")) is None  # float32 where bf16 would be emulated
    assert rt.instruction_set() in ("AVX-512", "AVX2")  # not AVX512-BF16


def test_single_process_reductions():
    assert rank_world() == (0, 1)
    assert any_process(True, torch.device("cpu")) is True and any_process(False, torch.device("cpu")) is False


def test_atomic_path_all_or_nothing(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_text(target, "old")

    def killed_while_writing() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        killed_while_writing()
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.bin.")
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def _imports(path: Path, module: str) -> set[str]:
    """The gcnseg modules that ``module`` imports anywhere (functions too; not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found |= {target} | {f"{target}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def _with_packages(target: str, importer: str) -> set[str]:
    """``target`` and the packages above it that importing it runs first (their ``__init__``),
    but for those that hold ``importer`` (already being imported when it runs)."""
    parts = target.split(".")
    above = {".".join(parts[:i]) for i in range(2, len(parts))}
    return {target} | {p for p in above if not importer.startswith(p + ".")}


def test_no_import_cycle_inside_the_package():
    modules = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    graph = {
        m: {u for t in _imports(p, m) if t in modules for u in _with_packages(t, m) if u != m}
        for m, p in modules.items()
    }
    assert graph["gcnseg.evaluate"] and "gcnseg.runtime" in graph["gcnseg.evaluate"]  # the parser sees imports
    assert "gcnseg.ablate" in graph["gcnseg.ablate.report"] or "gcnseg.models" in graph["gcnseg.train.state"]
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            assert state.get(n) != 1, "import cycle: " + " -> ".join(path[path.index(n) :] + [n])
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_helpers_are_defined_once():
    """Device resolution, the cross-process reductions and atomic writes live in runtime.py only."""
    home = (
        "def resolve_device",
        "def init_distributed",
        "def any_process",
        "def all_reduce_sum_",
        "def atomic_write",
        "mkstemp(",
    )
    gone = ("def _any_process", "def _all_reduce_", "def _tmp_beside")
    where = {
        n: sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if n in p.read_text()) for n in home + gone
    }
    assert where == {**{n: ["runtime.py"] for n in home}, **{n: [] for n in gone}}
