"""Pictures and logs people expect: a colour key on predict's and training's pictures,
per-class IoU in metrics.jsonl / summary.json / TensorBoard (constants not drawn as
curves), the learning rate in curves.png, previews in TensorBoard, and train.log."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gcnseg.checkpoint import load_model
from gcnseg.commands import main
from gcnseg.config import apply_overrides, load_config
from gcnseg.data.voc import VOC_CLASSES, VOC_PALETTE
from gcnseg.plots import curves_figure
from gcnseg.train import train
from gcnseg.visualize import PAD, ROW, SWATCH, legend, panel, shown_classes, with_legend

TINY = [
    "model.backbone=resnet18",
    "model.k=3",
    "data.dataset=synthetic-shapes",
    "data.options={size: 32, num_classes: 3, length: 8, eval_length: 2, seed: 1}",
    "optim.name=sgd",
    "optim.lr=0.01",
    "train.batch_size=2",
    "train.log_every=1",
    "train.threads=1",
    "train.previews=1",
    "train.deterministic=true",
]
CLASSES = ["background", "object1", "object2"]


def has_swatch(picture: np.ndarray, color) -> bool:
    """A solid square of exactly ``color`` the size of a swatch's inside somewhere in ``picture``."""
    inside = SWATCH - 2
    same = np.all(picture == np.asarray(color, np.uint8), axis=-1)
    return bool(np.lib.stride_tricks.sliding_window_view(same, (inside, inside)).all(axis=(-1, -2)).any())


def test_side_picture_has_a_legend_with_each_class_colour(trained_run, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(src / "img.png")
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(trained_run), str(src), "--out", str(out)]) == 0
    side = np.asarray(Image.open(out / "side" / "img.png").convert("RGB"))
    top = 40 + 16  # the panel: a 16 px title strip over the 40 px pictures
    assert side.shape[0] > top + SWATCH and side.shape[1] == 3 * 56 + 2 * 4
    key = side[top:]
    _, _, meta = load_model(trained_run)
    palette = [tuple(c) for c in meta["palette"]]
    assert meta["classes"] == CLASSES
    # three classes are few: all listed, each with its exact colour; the first swatch where the layout puts it
    for color in palette:
        assert has_swatch(key, color), color
    y, x = (ROW - SWATCH) // 2 + 1 + SWATCH // 2, PAD + SWATCH // 2
    assert tuple(key[y, x]) == palette[0]
    assert np.all(key[: ROW - 1, PAD + SWATCH + 4 :] == 255, axis=-1).mean() < 1  # a name is written beside it


def test_legend_lists_the_classes_present_when_there_are_many():
    pred = np.zeros((8, 8), np.int64)
    pred[:4] = 15
    gt = np.full((8, 8), 255)
    gt[0, 0] = 20
    present = shown_classes([gt, pred], len(VOC_CLASSES))
    assert present == [0, 15, 20]  # ignored (255) and absent classes are not listed
    assert shown_classes([pred], 3) is None  # few classes: all
    key = np.asarray(legend(VOC_CLASSES, VOC_PALETTE, present, width=120))
    for c in range(len(VOC_CLASSES)):
        assert has_swatch(key, VOC_PALETTE[c]) == (c in present), VOC_CLASSES[c]
    assert np.asarray(legend(VOC_CLASSES, VOC_PALETTE, width=120)).shape[0] > key.shape[0]  # all 21 wrap onto more rows
    pic = panel([np.zeros((8, 200, 3), np.uint8)], ["x"])
    keyed = with_legend(pic, VOC_CLASSES, VOC_PALETTE, present)
    assert keyed.width == pic.width and keyed.height > pic.height
    assert np.array_equal(np.asarray(keyed)[: pic.height], np.asarray(pic))
    narrow = panel([np.zeros((8, 8, 3), np.uint8)], ["x"])  # a name wider than the picture widens the key
    keyed = with_legend(narrow, VOC_CLASSES, VOC_PALETTE, [15])
    assert keyed.width > narrow.width and has_swatch(np.asarray(keyed)[narrow.height :], VOC_PALETTE[15])
    assert np.array_equal(np.asarray(keyed)[: narrow.height, : narrow.width], np.asarray(narrow))


def test_legend_that_cannot_be_drawn_is_a_warning(capsys):
    pic = panel([np.zeros((8, 8, 3), np.uint8)], ["x"])
    assert with_legend(pic, ["a"], [("not", "a", "colour")]) is pic
    assert "could not draw the legend" in capsys.readouterr().err


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_per_class_iou_logs_previews_and_train_log(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    cfg = load_config(None, TINY + [f"out_dir={run}", "train.iterations=4", "train.val_every=2"])
    summary = train(cfg, show_progress=False)
    shown = capsys.readouterr().out

    val = [r for r in _records(run) if r["split"] == "val"]
    assert [r["step"] for r in val] == [2, 4]
    for r in val:
        assert list(r["per_class_iou"]) == CLASSES
        assert {"miou", "pixel_acc", "pixels", "boundary_width"} <= set(r)  # the keys it always had stay
    final = json.loads((run / "summary.json").read_text())["final"]
    assert list(final["per_class_iou"]) == CLASSES
    assert [final["per_class_iou"][c] for c in CLASSES] == final["iou"]
    assert val[-1]["per_class_iou"] == final["per_class_iou"]  # the end's validation is the final one
    assert summary["final"]["per_class_iou"] == final["per_class_iou"]

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    defined = {c for c in CLASSES if final["per_class_iou"][c] is not None}
    assert defined and {f"val/iou/{c}" for c in defined} <= scalars
    assert [e.step for e in events.Scalars(f"val/iou/{sorted(defined)[0]}")] == [2, 4]
    assert {"val/miou", "train/loss", "train/lr"} <= scalars
    assert not scalars & {"val/pixels", "val/boundary_width", "val/boundary_pixels", "val/internal_pixels"}
    previews = [t for t in events.Tags()["images"] if t.startswith("val/previews/")]
    assert len(previews) == 1
    image = events.Images(previews[0])[-1]
    on_disk = Image.open(next((run / "previews").glob("*.png")))
    assert image.step == 4 and (image.width, image.height) == on_disk.size
    assert on_disk.height > 32 + 16  # the preview has its legend under the panel

    log = (run / "train.log").read_text()
    assert "training on " in log and "training on " in shown  # the terminal's line, kept
    assert "step 2: val mIoU " in log and "step 2: val mIoU " in shown
    assert "step 1: loss " in log and " lr " in log and " img/s " in log
    assert "done: 4 steps" in log and f"run folder     {run}" in log
    assert log.index("training on ") < log.index("step 1: loss ") < log.index("done: 4 steps")

    fig = curves_figure(run / "metrics.jsonl")
    try:
        lr_axes = [ax for ax in fig.axes if ax.get_ylabel() == "lr"]
        assert len(lr_axes) == 1
        (line,) = [ln for ln in lr_axes[0].get_lines() if ln.get_label() == "lr"]
        train_records = [r for r in _records(run) if r["split"] == "train"]
        assert list(line.get_xdata()) == [r["step"] for r in train_records]
        assert list(line.get_ydata()) == pytest.approx([r["lr"] for r in train_records])
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    assert (run / "curves.png").is_file()


def test_curves_of_one_logged_step_show_a_point(tmp_path):
    """A one-point line draws nothing without a marker: a run that logged once still shows it."""
    log = tmp_path / "metrics.jsonl"
    log.write_text(json.dumps({"step": 1, "split": "train", "loss": 0.5, "lr": 0.01}) + "\n")
    fig = curves_figure(log)
    try:
        lines = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label() in ("training loss", "lr")]
        assert len(lines) == 2 and all(ln.get_marker() == "o" and len(ln.get_xdata()) == 1 for ln in lines)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_resumed_run_appends_to_train_log(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = load_config(
        None, TINY + [f"out_dir={run}", "train.iterations=2", "train.checkpoint_every=1", "train.previews=0"]
    )
    train(cfg, show_progress=False)
    first = (run / "train.log").read_text()
    assert "done: 2 steps" in first
    train(apply_overrides(cfg, ["train.iterations=3"]), resume=True, show_progress=False)
    log = (run / "train.log").read_text()
    assert log.startswith(first)  # appended, never truncated
    added = log[len(first) :]
    assert added.index("resumed at step 2") < added.index("training on ") < added.index("step 3: loss ")
    assert "done: 3 steps" in added and log.count("training on ") == 2
    assert [r["step"] for r in _records(run) if r["split"] == "train"] == [1, 2, 3]  # metrics.jsonl: each step once


def test_a_failed_run_says_why_in_train_log(tmp_path):
    run = tmp_path / "nan"
    over = ["train.iterations=20", "optim.lr=1e12", "optim.momentum=0.0", "optim.schedule=constant", "train.previews=0"]
    over += ["train.checkpoint_every=1"]  # a checkpoint before the loss blows up: the run is kept, and its log
    with pytest.raises(Exception, match=r"loss is (nan|inf)"):
        train(load_config(None, TINY + [f"out_dir={run}", *over]), show_progress=False)
    log = (run / "train.log").read_text()
    assert "training on " in log and "gcnseg: error: loss is " in log.splitlines()[-1]
