"""``gcnseg score``: label PNGs matched by stem, numbers checked by hand, every bad case named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gcnseg.commands import main


def _png(path: Path, labels, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(labels)
    if mode == "P":
        img = Image.fromarray(arr.astype(np.uint8), mode="P")
        img.putpalette([v for i in range(256) for v in (i * 7 % 256, i * 13 % 256, i * 29 % 256)])
    elif mode == "I;16":
        img = Image.fromarray(arr.astype(np.uint16))
        assert img.mode == "I;16"
    else:
        img = Image.fromarray(arr.astype(np.uint8), mode=mode)
    img.save(path)
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    # a: the hand example of test_metrics (ignore pixel predicted 2); b: all right, in a subfolder
    _png(pred / "a.png", [[0, 1, 1], [1, 0, 2]])
    _png(gt / "a.png", [[0, 0, 1], [1, 2, 255]], mode="P")  # palette indices are the labels
    _png(pred / "b.png", [[2, 2]])
    _png(gt / "city" / "b.png", [[2, 2]])
    return pred, gt


def test_scores_by_hand_text_and_json(dirs, capsys):
    pred, gt = dirs
    (gt / "._a.png").write_bytes(b"\x00\x05\x16\x07 a Mac's AppleDouble file")  # hidden: neither read nor matched
    _png(gt / ".git" / "a.png", [[9]])
    # summed matrix (rows gt): [1 1 0] [0 2 0] [1 0 2]
    # IoU: 1/(2+2-1) = 1/3, 2/(2+3-2) = 2/3, 2/(3+2-2) = 2/3 -> mIoU 5/9; pixel acc 5/7
    assert main(["score", str(pred), str(gt), "--num-classes", "3", "--json", "-"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 2 and out["pixels"] == 7
    assert out["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert out["iou"] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert out["miou"] == pytest.approx(5 / 9)
    assert out["pixel_acc"] == pytest.approx(5 / 7)
    assert out["mean_acc"] == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)
    assert out["boundary_pixels"] + out["internal_pixels"] == 7

    assert main(["score", str(pred), str(gt), "--num-classes", "3"]) == 0
    text = capsys.readouterr().out
    assert "2 images, 7 scored pixels" in text
    assert "55.56" in text and "71.43" in text and "33.33" in text and "66.67" in text
    assert "boundary acc (width 7)" in text


def test_absent_class_and_no_boundary(dirs, capsys):
    pred, gt = dirs
    assert main(["score", str(pred), str(gt), "--num-classes", "4", "--json", "-", "--no-boundary"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["iou"][3] is None and out["miou"] == pytest.approx(5 / 9)
    assert "boundary_acc" not in out


def test_sixteen_bit_masks(tmp_path, capsys):
    pred, gt = tmp_path / "p", tmp_path / "g"
    _png(pred / "x.png", [[0, 299, 299, 5]], mode="I;16")
    _png(gt / "x.png", [[0, 299, 65535, 299]], mode="I;16")
    assert main(["score", str(pred), str(gt), "--num-classes", "300", "--ignore-index", "65535", "--json", "-"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pixels"] == 3
    assert out["iou"][0] == 1.0 and out["iou"][299] == pytest.approx(1 / 2) and out["iou"][5] == 0.0


def _fails(argv: list[str], capsys) -> list[str]:
    assert main(argv) == 1
    cap = capsys.readouterr()
    assert cap.out == ""  # nothing scored
    lines = cap.err.strip().splitlines()
    assert lines[0].startswith("gcnseg score: ") and "nothing scored" in lines[0]
    return lines[1:]


def test_missing_and_extra_files_are_all_named(dirs, capsys):
    pred, gt = dirs
    _png(gt / "c.png", [[0]])
    _png(gt / "d.png", [[0]])
    _png(pred / "stray.png", [[0]])
    lines = _fails(["score", str(pred), str(gt), "--num-classes", "3"], capsys)
    assert len(lines) == 3
    assert lines[0].startswith(str(gt / "c.png")) and "no prediction" in lines[0]
    assert lines[1].startswith(str(gt / "d.png")) and "no prediction" in lines[1]
    assert lines[2].startswith(str(pred / "stray.png")) and "no ground truth" in lines[2]


def test_size_mismatch_bad_values_and_bad_files_are_named(dirs, capsys):
    pred, gt = dirs
    _png(pred / "big.png", np.zeros((4, 5)))
    _png(gt / "big.png", np.zeros((4, 6)))
    _png(pred / "badpred.png", [[0, 3, 9]])
    _png(gt / "badpred.png", [[0, 1, 2]])
    _png(pred / "badgt.png", [[0, 1, 2]])
    _png(gt / "badgt.png", [[0, 7, 255]])
    _png(pred / "rgb.png", np.zeros((2, 2, 3)), mode="RGB")
    _png(gt / "rgb.png", [[0, 0], [0, 0]])
    (pred / "broken.png").write_bytes(b"not a png at all")
    _png(gt / "broken.png", [[0]])
    _png(gt / "sub" / "a.png", [[0]])  # a second gt named "a"
    lines = _fails(["score", str(pred), str(gt), "--num-classes", "3"], capsys)
    text = "\n".join(lines)
    assert len(lines) == 6, text
    assert f"{pred / 'big.png'}: size 5x4 differs from ground truth 6x4" in text
    assert f"{pred / 'badpred.png'}: predicted values out of range [0, 3): [3, 9]" in text
    assert f"{gt / 'badgt.png'}: label values out of range [0, 3) and not --ignore-index 255: [7]" in text
    assert f"{pred / 'rgb.png'}: not a single-channel label image (mode RGB)" in text
    assert f"{pred / 'broken.png'}: unreadable" in text
    assert f"{gt / 'sub' / 'a.png'}: same name as {gt / 'a.png'}" in text


def test_usage_errors_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["score", str(tmp_path / "nope"), str(tmp_path / "empty"), "--num-classes", "3"]) == 2
    assert "gcnseg: error: PRED_DIR" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "empty"), str(tmp_path / "empty"), "--num-classes", "3"]) == 2
    assert "no PNG files under GT_DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --num-classes is required
        main(["score", str(tmp_path), str(tmp_path)])
