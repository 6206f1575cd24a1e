"""gcnseg bench runs and reports every row (no timing is asserted: timings belong in benchmarks)."""

import json

import pytest
import torch

from gcnseg.commands import main


def test_bench_smoke_reports_all_rows(tmp_path, capsys):
    """A smoke test: every row is measured and reported (the ratios are tested below)."""
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "--size",
                "64",
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--threads",
                "1",
                "--skip",
                "memory",
                "lite",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    from gcnseg.runtime import cpu_features, instruction_set

    assert result["instruction_set"] == instruction_set()  # every figure names the CPU it ran on
    assert set(result["cpu_flags"]) == {f for f, has in cpu_features().items() if has}
    names = [r["name"] for r in result["inference"]["rows"]]
    assert names[:6] == [
        "resnet50 features (reference)",
        "GCNSeg-R50 eager",
        "GCNSeg-R50 optimised fp32",
        "GCNSeg-R50 optimised (default)",
        "torchvision FCN-ResNet50",
        "torchvision DeepLabV3-ResNet50",
    ]
    assert all(r["ms"] > 0 for r in result["inference"]["rows"])
    assert result["inference"]["optimised_argmax_agreement"]["fp32"] >= 0.999
    from gcnseg.optimize import native_bf16

    assert [r["name"] for r in result["train"]["rows"]] == [
        "backbone forward+backward+SGD (reference)",
        "GCNSeg-R50 training step",
    ] + (["GCNSeg-R50 training step, bf16 autocast (train.amp=bf16)"] if native_bf16() else [])
    mpx = result["metrics"]["mpx_per_s"]
    assert set(mpx) == {"confusion matrix", "confusion matrix + boundary band"} and all(v > 0 for v in mpx.values())
    text = capsys.readouterr().out
    assert "GCNSeg-R50 optimised" in text and "Mpx/s" in text


def test_gpu_rows_do_not_inherit_the_cpus_bf16_choice(monkeypatch):
    """The optimised model of a GPU row is built on that device: on a host CPU with native
    bf16, building it on the CPU and moving it afterwards ran the "fp32" GPU row in bf16."""
    import torch

    import gcnseg.bench as bench
    import gcnseg.optimize as opt

    monkeypatch.setattr(opt, "native_bf16", lambda: True)
    models = bench.inference_models(3, device="meta")  # any device that is not the CPU
    assert models["GCNSeg-R50 optimised (default)"].backbone_dtype == torch.float32


def test_ratios_are_medians_of_same_round_ratios():
    from gcnseg.bench import ratio_rows

    # rounds: the machine slows down in round 3 for both; per-round ratios 2, 1, 3 -> 2
    rows = ratio_rows({"ref": [1.0, 2.0, 3.0], "a": [2.0, 2.0, 9.0]}, "ref")
    assert rows == [{"name": "ref", "ms": 2000.0, "ratio": 1.0}, {"name": "a", "ms": 2000.0, "ratio": 2.0}]


def test_lite_rows_at_a_small_size():
    """The light-encoder rows (timed at CamVid's size by `gcnseg bench`; here a small one)."""
    from gcnseg.bench.lite import bench_lite
    from gcnseg.optimize import native_bf16

    r = bench_lite(1, 0, size=(64, 96))
    assert [row["name"] for row in r["inference"]] == [
        "EfficientNet-Lite0 features (reference)", "GCNSeg-lite0 eager", "GCNSeg-lite0 optimised (default)",
        "ResNet-18 features", "GCNSeg-R18 eager", "ResNet-50 features", "GCNSeg-R50 eager"]  # fmt: skip
    assert all(row["ms"] > 0 and row["images_per_s"] > 0 for row in r["inference"] + r["train"])
    assert [row["name"] for row in r["train"]][:3] == [
        "EfficientNet-Lite0 features fwd+bwd (reference)",
        "GCNSeg-lite0 training step",
        "GCNSeg-R18 training step",
    ]
    assert len(r["train"]) == (5 if native_bf16() else 3)
    assert set(r["shares"]) == {"encoder", "heads", "boundary refinement", "decoder (deconvolution)",
                                "other (additions, layout)"}  # fmt: skip
    assert sum(r["shares"].values()) == pytest.approx(1.0, abs=0.02) and r["shares"]["encoder"] > 0


def test_every_row_names_its_path():
    """Each row says which path it ran: eager, optimised and its precision, compiled, int8."""
    from torch import nn

    from gcnseg.bench.timing import describe_path
    from gcnseg.compiled import CompiledModel
    from gcnseg.optimize import InferenceModel

    conv = nn.Conv2d(3, 2, 1)
    assert describe_path(conv) == "eager fp32"
    assert describe_path(conv, amp="bf16") == "eager bf16 autocast"
    assert describe_path(InferenceModel(conv)) == "optimised fp32"
    assert describe_path(InferenceModel(conv, backbone_dtype=torch.bfloat16)) == "optimised bf16 backbone"
    assert describe_path(CompiledModel(InferenceModel(conv), notify=print)) == "compiled optimised fp32"


def test_paths_rows_name_their_path_and_agreement(tmp_path, monkeypatch, capsys):
    """`gcnseg bench --paths CAMVID` on drawn street scenes (a CamVid layout, 96x128), with
    torch.compile standing in (a real compile takes minutes; test_compiled.py does one):
    every path a row, named, timed against eager fp32, with its agreement on val."""
    import json

    from fakes import street_camvid

    import gcnseg.bench.paths
    import gcnseg.int8
    from gcnseg.commands import main

    monkeypatch.setattr(torch, "compile", lambda module, **kw: module)
    monkeypatch.setattr(gcnseg.bench.paths, "TRAIN_CROPS", (2, 64, 96))
    monkeypatch.setattr(gcnseg.int8, "MAX_FLOAT_STAGES", 1)  # the guarded row: at most three tries here
    monkeypatch.setenv("GCNSEG_CACHE", str(tmp_path / "cache"))
    root = street_camvid(tmp_path / "street")
    out = tmp_path / "bench.json"
    skip = ["inference", "train", "lite", "metrics", "memory", "gpu"]
    args = ["bench", "--threads", "1", "--repeats", "1", "--warmup", "0", "--skip", *skip]
    assert main([*args, "--paths", str(root), "--json", str(out)]) == 0
    rows = {r["name"]: r for r in json.loads(out.read_text())["paths"]["inference"]}
    assert list(rows)[:2] == ["eager fp32 (reference)", "optimised fp32"]
    assert rows["eager fp32 (reference)"]["ratio"] == 1.0 and rows["eager fp32 (reference)"]["argmax_agreement"] == 1.0
    assert rows["optimised fp32"]["path"] == "optimised fp32" and rows["optimised fp32"]["argmax_agreement"] >= 0.999
    compiled = next(r for n, r in rows.items() if n.startswith("compiled"))
    assert compiled["path"].startswith("compiled optimised")
    every = rows["int8 every convolution (ONNX Runtime, no guard)"]
    assert every["path"] == "int8 onnxruntime (0/87 convs float32)" and every["int8"]["convolutions"] == 87
    assert 0.5 < every["argmax_agreement"] <= 1.0
    assert all(r["instruction_set"] and r["ms"] > 0 and r["first_call_s"] >= 0 for r in rows.values())
    train = json.loads(out.read_text())["paths"]["train"]
    assert [r["path"] for r in train] == ["eager fp32", "eager fp32", "compiled fp32"]
    printed = capsys.readouterr().out
    assert "inference paths, camvid-gcn-lite0 1x3x96x128" in printed
    assert "training step, 2 crops of 64x96, fp32" in printed and "goal: at most 1.2x" in printed
