"""``gcnseg data check``: every bad file of a split at once, with counts; exit 1 / 0 / 2.
``gcnseg data samples``: a split's images and labels written as files."""

import numpy as np
import pytest
from fakes import make_camvid, make_folder, save
from PIL import Image

from gcnseg.commands import main


def test_clean_split_exits_0(tmp_path, capsys):
    make_camvid(tmp_path, {"train": ["a", "b"]})
    assert main(["data", "check", "--dataset", "camvid", "--root", str(tmp_path), "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "camvid/train: checked 2 items, 2 ok, 0 bad" in out and "sky" in out


def test_every_bad_file_reported_with_counts(tmp_path, capsys):
    make_folder(tmp_path, ["a", "b", "c", "d", "e", "f"], ["bg", "fg", "x"])
    (tmp_path / "masks" / "a.png").unlink()
    (tmp_path / "images" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    save(tmp_path / "masks" / "c.png", np.full((16, 16), 7, np.uint8))
    save(tmp_path / "masks" / "d.png", np.zeros((8, 16), np.uint8))
    save(tmp_path / "masks" / "e.png", np.full((16, 16), 300, np.uint16))  # 16-bit, out of range
    code = main(["data", "check", "--dataset", "folder", "--root", str(tmp_path), "--split", "all"])
    out = capsys.readouterr().out
    assert code == 1
    assert "folder/all: checked 6 items, 1 ok, 5 bad" in out
    for line in ["missing file: 1", "unreadable file: 1", "bad label values: 2", "size mismatch: 1"]:
        assert f"  {line}\n" in out
    for fragment in ["images/a.png: missing mask", "images/b.png: cannot read image", "masks/c.png: label values 7",
                     "masks/d.png: mask size 16x8 does not match", "masks/e.png: label values 300"]:  # fmt: skip
        assert fragment in out


def test_missing_root_is_one_line_error_exit_2(tmp_path, capsys):
    assert main(["data", "check", "--dataset", "cityscapes", "--root", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gcnseg: error: ") and "cityscapes-dataset.com" in err and "\n" not in err


def test_options_and_synthetic(capsys):
    argv = ["data", "check", "--dataset", "synthetic-shapes", "--split", "val", "--option", "size=24",
            "--option", "eval_length=3", "--option", "num_classes=3"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "synthetic-shapes/val: checked 3 items, 3 ok, 0 bad" in out and "object2" in out


def test_samples_writes_a_splits_images_and_labels_as_they_are(tmp_path, capsys):
    masks = make_camvid(tmp_path / "camvid", {"val": ["a", "b", "c"]})
    out = tmp_path / "out"
    root = str(tmp_path / "camvid")
    assert (
        main(
            [
                "data",
                "samples",
                "--dataset",
                "camvid",
                "--root",
                root,
                "--split",
                "val",
                "--limit",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a.png", "b.png"]
    for stem in ["a", "b"]:
        source = np.asarray(Image.open(tmp_path / "camvid" / "val" / f"{stem}.png").convert("RGB"))
        assert (np.asarray(Image.open(out / "images" / f"{stem}.png")) == source).all()
        label = Image.open(out / "labels" / f"{stem}.png")
        expected = np.where(masks[stem] == 11, 255, masks[stem])  # CamVid's void, id 11, is ignored
        assert label.mode == "P" and (np.asarray(label) == expected).all()
    assert f"2 images and their labels written to {out / 'images'}" in capsys.readouterr().out
    # the embedded synthetic data: 5 asked, its 3 val images written
    args = ["--dataset", "synthetic-shapes", "--option", "size=32", "--option", "eval_length=3", "--split", "val"]
    assert main(["data", "samples", *args, "--limit", "5", "--out", str(tmp_path / "syn")]) == 0
    assert len(list((tmp_path / "syn" / "images").iterdir())) == 3
    with pytest.raises(SystemExit) as e:
        main(["data", "samples", *args, "--limit", "0", "--out", str(tmp_path / "syn")])
    assert e.value.code == 2 and "expected a positive integer, got 0" in capsys.readouterr().err


def test_sample_names_from_two_places_get_a_suffix():
    from gcnseg.data.samples import unique

    taken: set[str] = set()
    assert [unique(s, taken) for s in ["a", "x", "a-3", "a", "a", "a"]] == ["a", "x", "a-3", "a-2", "a-4", "a-5"]
