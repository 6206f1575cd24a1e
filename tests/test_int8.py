"""int8 inference (gcnseg/int8.py): the float32 layers chosen, the agreement kept, the
cache, and the path's errors."""

from __future__ import annotations

import json

import pytest
import torch
from fakes import street_camvid

from gcnseg.checkpoint import load_model
from gcnseg.commands import main
from gcnseg.errors import GcnsegError
from gcnseg.int8 import Int8Model, calibration_sets, float_ladder, stage_groups
from gcnseg.optimize import inference_model

NAMES = [
    "/m/backbone/body/conv_stem/Conv",
    "/m/backbone/body/blocks.0/blocks.0.0/conv_dw/Conv",
    "/m/backbone/body/blocks.0/blocks.0.0/conv_pw/Conv",
    "/m/backbone/body/bn1/act/Clip",
    "/m/backbone/body/blocks.1/blocks.1.0/conv_pw/Conv",
    "/m/backbone/layer1/layer1.0/conv1/Conv",
    "/m/heads.0/left/left.0/Conv",
    "/m/up.0/deconv/ConvTranspose",
    "/m/up.0/Concat",
    "/m/Add_1",
    "/m/fuse_br.0/conv1/Conv",
    "/m/head_br.0/conv1/Conv",
]


def test_stage_groups_follow_the_encoder_from_its_input():
    assert (
        stage_groups(NAMES)
        == [
            ["/m/backbone/body/conv_stem/Conv", "/m/backbone/body/bn1/act/Clip"],  # the stem, one group
            NAMES[1:3],
            [NAMES[4]],
            [NAMES[5]],
        ]
    )


def test_float_ladder_keeps_the_decoder_then_adds_stages():
    ladder = float_ladder(NAMES)
    decoder = ["/m/up.0/deconv/ConvTranspose", "/m/up.0/Concat", "/m/Add_1", "/m/fuse_br.0/conv1/Conv"]
    stem = [NAMES[0], NAMES[3]]
    assert ladder[0] == [] and ladder[1] == decoder
    assert ladder[2] == decoder + stem
    assert ladder[3] == decoder + stem + NAMES[1:3]
    assert ladder[-1] == decoder + stem + NAMES[1:3] + [NAMES[4], NAMES[5]]
    assert not {"/m/heads.0/left/left.0/Conv", "/m/head_br.0/conv1/Conv"} & set(ladder[-1])  # the heads stay int8


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """camvid-gcn-lite0 with its data root set to drawn street scenes, and their images."""
    from gcnseg.config import apply_overrides

    torch.set_num_threads(1)
    root = street_camvid(tmp_path_factory.mktemp("street"))
    model, cfg, _ = load_model("camvid-gcn-lite0")
    cfg = apply_overrides(cfg, [f"data.root={root}"])
    return model, cfg, calibration_sets(cfg.data)


def test_int8_runs_what_it_measured(shipped, tmp_path, monkeypatch):
    """Quantised where the target is met: the agreement it recorded is the one its
    outputs have with float32 on the check images."""
    import gcnseg.int8

    monkeypatch.setattr(gcnseg.int8, "AGREEMENT_TARGET", 0.9)
    model, _, (cal, check) = shipped
    before = {k: v.clone() for k, v in model.state_dict().items()}
    said: list[str] = []
    q = Int8Model(model, cal, check, notify=said.append, cache=tmp_path)
    q(check[0])  # quantises (exporting traces the network)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # BatchNorm untouched
    assert not model.training
    same = total = 0
    for x in check:
        with torch.inference_mode():
            ref = model(x).argmax(1)
        out = q(x)
        assert out.shape == (1, 11, 96, 128) and out.dtype == torch.float32
        same += int((out.argmax(1) == ref).sum())
        total += ref.numel()
    record = q.records[(96, 128)]  # quantised, not the float32 fallback
    assert record["agreement"] == pytest.approx(same / total, abs=1e-9)
    assert record["agreement"] >= 0.9
    assert record["calibration_images"] == 6 and record["check_images"] == 3
    assert said[0].startswith("quantising for 96x128 inputs, calibrated on 6 training images")
    from gcnseg.bench.timing import describe_path

    kept = record["float32_convolutions"]
    assert describe_path(q) == f"int8 onnxruntime ({kept}/{record['convolutions']} convs float32)"
    assert "agreement" in said[1]


def test_int8_below_target_runs_float32(shipped, tmp_path, monkeypatch):
    import gcnseg.int8

    monkeypatch.setattr(gcnseg.int8, "AGREEMENT_TARGET", 1.01)  # out of reach
    monkeypatch.setattr(gcnseg.int8, "MAX_FLOAT_STAGES", 0)  # two tries (none, the decoder) are enough to refuse
    model, _, (cal, check) = shipped
    said: list[str] = []
    q = Int8Model(model, cal, check, notify=said.append, cache=tmp_path)
    with torch.inference_mode():
        ref = model(check[0])
    assert torch.equal(q(check[0]), ref)
    assert q.records == {}
    from gcnseg.bench.timing import describe_path

    assert describe_path(q) == "eager fp32 (int8 refused: agreement)"
    assert said[-1].endswith("(needs 101.0%); this network runs float32 for 96x128 inputs")
    said.clear()  # the refusal is remembered: the next process runs float32 at once
    again = Int8Model(model, cal, check, notify=said.append, cache=tmp_path)
    assert torch.equal(again(check[0]), ref)
    assert len(said) == 1 and said[0].endswith("this network runs float32 for 96x128 inputs")


def test_int8_cache_is_reused_and_a_damaged_entry_rebuilt(shipped, tmp_path, monkeypatch):
    import gcnseg.int8

    monkeypatch.setattr(gcnseg.int8, "AGREEMENT_TARGET", 0.9)
    model, _, (cal, check) = shipped
    x = check[0]
    first = Int8Model(model, cal, check, notify=lambda line: None, cache=tmp_path)(x)
    said: list[str] = []
    again = Int8Model(model, cal, check, notify=said.append, cache=tmp_path)
    assert torch.equal(again(x), first)
    assert len(said) == 1 and said[0].startswith("int8 for 96x128 inputs: 0 of 87 convolutions float32")  # cached
    (onnx_file,) = tmp_path.glob("*-96x128.onnx")
    onnx_file.write_bytes(onnx_file.read_bytes()[:100])  # a torn write, a bad disk
    rebuilt = Int8Model(model, cal, check, notify=said.append, cache=tmp_path)
    assert rebuilt(x).shape == first.shape
    assert any("quantising" in line for line in said)
    assert json.loads(onnx_file.with_suffix(".json").read_text())["sha256"] != ""


def test_calibration_comes_from_train_and_the_check_from_val(shipped):
    _, cfg, (cal, check) = shipped
    from gcnseg.data import build_dataset

    train = build_dataset(cfg.data, "train", train=False)
    assert [torch.equal(c[0], train[i][0]) for i, c in enumerate(cal)] == [True] * 6
    assert len(check) == 3


def test_int8_needs_the_data_to_calibrate(trained_run):
    model, cfg, _ = load_model(trained_run)
    from gcnseg.config import apply_overrides

    cfg = apply_overrides(cfg, ["data.root=null", "data.dataset=folder"])
    with pytest.raises(GcnsegError, match="calibrates on the model's training split"):
        inference_model(model, precision="int8", data=cfg.data)
    with pytest.raises(GcnsegError, match="precision 'int4'"):
        inference_model(model, precision="int4")


def test_eval_int8_reports_miou_near_float(shipped, tmp_path, capsys):
    _, cfg, _ = shipped
    fp32, int8 = tmp_path / "fp32.json", tmp_path / "int8.json"
    base = ["eval", "--model", "camvid-gcn-lite0", "--root", str(cfg.data.root), "--no-progress"]
    assert main([*base, "--precision", "fp32", "--json", str(fp32)]) == 0
    assert main([*base, "--precision", "int8", "--json", str(int8)]) == 0
    said = capsys.readouterr().err
    assert "quantising for 96x128 inputs" in said and "agreement" in said
    a, b = json.loads(fp32.read_text()), json.loads(int8.read_text())
    assert abs(a["miou"] - b["miou"]) <= 0.5


def test_export_int8_writes_one_described_file(shipped, tmp_path, capsys):
    import onnx
    import onnxruntime as ort

    model, cfg, (_, check) = shipped
    out = tmp_path / "street-int8.onnx"
    args = ["export", "--model", "camvid-gcn-lite0", "--precision", "int8", "--size", "96", "128"]
    assert main([*args, "--root", str(cfg.data.root), "--int8-agreement", "90", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "input  image: float32 1 x 3 x 96 x 128" in printed and "(any N, H, W)" not in printed
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    record = json.loads(props["int8"])
    assert record["size"] == [96, 128] and record["agreement"] >= 0.9 and record["target"] == 0.9
    assert "float32 1 x 3 x 96 x 128" in props["input"] and "1 x 11 x 96 x 128" in props["output"]
    assert json.loads(props["classes"])[0] == "sky"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        ref = model(check[0]).argmax(1).numpy()
    labels = session.run(None, {"image": check[0].numpy()})[0].argmax(1)
    assert (labels == ref).mean() >= 0.9


def test_export_int8_below_the_bar_writes_nothing(shipped, tmp_path, capsys, monkeypatch):
    import gcnseg.int8

    monkeypatch.setattr(gcnseg.int8, "MAX_FLOAT_STAGES", 0)  # two tries (none, the decoder) are enough to refuse
    _, cfg, _ = shipped
    out = tmp_path / "never.onnx"
    args = ["export", "--model", "camvid-gcn-lite0", "--precision", "int8", "--size", "96", "128"]
    assert main([*args, "--root", str(cfg.data.root), "--int8-agreement", "100", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argmax agreement with float32 on validation images (needs 100.0%)" in err
    assert err.endswith(f"{out} not written (--int8-agreement sets the bar)")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert main([*args, "--out", str(out)]) == 2  # no data to calibrate on
    assert "give --root DIR" in capsys.readouterr().err
    assert main(["export", "--model", "camvid-gcn-lite0", "--precision", "int8", "--out", str(out)]) == 2
    assert "give --size H W" in capsys.readouterr().err


def test_int8_leaves_the_callers_model_as_it_was(shipped, tmp_path, monkeypatch):
    import gcnseg.int8

    monkeypatch.setattr(gcnseg.int8, "AGREEMENT_TARGET", 0.0)
    model, _, (cal, check) = shipped
    model.train()
    try:
        Int8Model(model, cal, check, notify=lambda line: None, cache=tmp_path)(check[0])
        assert model.training  # not put in eval mode (nor moved or cast) behind the caller's back
    finally:
        model.eval()


def test_int8_sizes_are_capped_and_a_bad_sidecar_is_rebuilt(shipped, tmp_path, monkeypatch):
    import gcnseg.int8

    monkeypatch.setattr(gcnseg.int8, "AGREEMENT_TARGET", 0.0)
    monkeypatch.setattr(gcnseg.int8, "MAX_SIZES", 1)
    model, _, (cal, check) = shipped
    said: list[str] = []
    q = Int8Model(model, cal, check, notify=said.append, cache=tmp_path)
    q(check[0])
    small = torch.randn(1, 3, 32, 48)
    with torch.inference_mode():
        torch.testing.assert_close(q(small), model(small))  # a second size: float32, said
    assert said[-1] == "32x48 inputs run float32 (int8 is made for at most 1 sizes)"
    (sidecar,) = tmp_path.glob("*-96x128.json")
    record = json.loads(sidecar.read_text())
    del record["convolutions"]  # valid JSON, the digest still right: an edited or older entry
    sidecar.write_text(json.dumps(record))
    said.clear()
    Int8Model(model, cal, check, notify=said.append, cache=tmp_path)(check[0])
    assert said[0].startswith("quantising for 96x128 inputs")


def test_an_unwritable_cache_is_said_before_quantising(shipped, tmp_path):
    model, _, (cal, check) = shipped
    (tmp_path / "afile").write_text("")
    with pytest.raises(GcnsegError, match=r"afile/int8: the int8 cache \(GCNSEG_CACHE\) cannot be written"):
        Int8Model(model, cal, check, cache=tmp_path / "afile" / "int8")


def test_export_size_and_root_are_for_int8(tmp_path, capsys):
    assert (
        main(["export", "--model", "camvid-gcn-lite0", "--size", "96", "128", "--out", str(tmp_path / "m.onnx")]) == 2
    )
    assert "--size and --root are for --precision int8" in capsys.readouterr().err
