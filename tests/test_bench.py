"""gcnseg bench runs and reports every row (no timing is asserted: timings belong in benchmarks)."""

import json

from gcnseg.cli import main


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
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
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
