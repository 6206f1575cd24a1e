"""``gcnseg serve``: what the page computes (shares, blends, the legend, the messages for
bad files), the command's refusals, and the page itself in a real headless Chromium: it
loads, an uploaded image comes back as the prediction over it with the legend, a bad
upload gets a readable message while the server keeps serving, and no request leaves
the machine."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from browser import chromium, free_port, guard_page, guard_process
from fakes import street_scene
from PIL import Image

from gcnseg.checkpoint import read_meta, resolve_checkpoint
from gcnseg.commands import main
from gcnseg.errors import GcnsegError
from gcnseg.serve.segmenter import (
    Segmentation,
    Segmenter,
    blend,
    describe,
    folder_images,
    legend_html,
    shares,
    summary,
)

NAME = "camvid-gcn-lite0"


def _seg(image: np.ndarray, pred: np.ndarray) -> Segmentation:
    return Segmentation(image, pred, 0.0123, 1, [(255, 0, 0), (0, 0, 255)], 255)


def test_shares_count_each_class_and_none_for_ignored_pixels():
    pred = np.array([[0, 0], [1, 255]])
    assert shares(pred, 3).tolist() == [0.5, 0.25, 0.0]


def test_blend_goes_from_the_image_to_the_colours_and_keeps_ignored_pixels():
    image = np.full((1, 3, 3), 100, np.uint8)
    seg = _seg(image, np.array([[0, 1, 255]]))
    assert (blend(seg, 0.0) == image).all()
    assert blend(seg, 1.0)[0].tolist() == [[255, 0, 0], [0, 0, 255], [100, 100, 100]]
    assert blend(seg, 0.5)[0, 0].tolist() == [178, 50, 50]  # (100 + 255) / 2 = 177.5 rounds to 178
    assert (blend(seg, 7) == blend(seg, 1)).all()  # clipped to [0, 1]


def test_the_legend_lists_classes_by_share_escaped_and_dims_absent_ones():
    html = legend_html(["road", "<b>car</b>", "sky"], [(1, 2, 3), (4, 5, 6), (7, 8, 9)], np.array([0.25, 0.75, 0.0]))
    assert re.findall(r'data-class="([^"]+)"', html) == ["&lt;b&gt;car&lt;/b&gt;", "road", "sky"]
    assert "75.0%" in html and "25.0%" in html and "rgb(4,5,6)" in html
    assert re.findall(r"width: ([\d.]+)%", html) == ["100.0", "33.3", "0.0"]  # bars scaled to the largest share
    assert html.count('class="absent"') == 1 and '<tr data-class="sky" class="absent">' in html
    assert "share" not in legend_html(["road"], [(1, 2, 3)])  # before any prediction: the key only
    few = legend_html(["road", "car"], [(1, 2, 3), (4, 5, 6)], np.array([0.9996, 0.0004]))
    assert "&lt;0.1%" in few and "absent" not in few  # a few pixels: there, if under 0.1%


def test_the_summary_says_size_time_and_passes():
    seg = _seg(np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3), np.int64))
    assert summary("a.png", seg) == "a.png: 3x2, 12 ms (1 pass)"
    seg6 = Segmentation(seg.image, seg.pred, 1.5, 6, seg.palette, 255, resized_from=(3000, 2000))
    assert summary("a.png", seg6) == "a.png: 3x2 (shrunk from 3000x2000), 1500 ms (6 passes)"


@pytest.fixture(scope="module")
def segmenter(trained_run) -> Segmenter:
    return Segmenter([str(trained_run), NAME], device="cpu")


def test_a_bad_file_is_named_as_the_person_knows_it(segmenter, tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    png = io.BytesIO()
    Image.fromarray(street_scene(48, 64)).save(png, format="PNG")
    (tmp_path / "cut.png").write_bytes(png.getvalue()[:300])
    with pytest.raises(GcnsegError) as e:
        segmenter.read(tmp_path / "notes.png", "holiday.png")
    assert str(e.value).startswith("holiday.png: cannot read image") and str(tmp_path) not in str(e.value)
    with pytest.raises(GcnsegError, match=r"^cut.png: cannot read image \(corrupt or truncated"):
        segmenter.read(tmp_path / "cut.png")


def test_large_images_are_shrunk_to_the_limit(tmp_path):
    segmenter = Segmenter([NAME], max_side=64)
    Image.fromarray(street_scene(100, 160)).save(tmp_path / "big.png")
    rgb, resized_from = segmenter.read(tmp_path / "big.png")
    assert rgb.shape == (40, 64, 3) and resized_from == (160, 100)
    Image.fromarray(street_scene(30, 40)).save(tmp_path / "small.png")
    assert segmenter.read(tmp_path / "small.png")[1] is None


def test_models_load_once_and_segment_with_the_options(segmenter, trained_run):
    loaded = segmenter.load(str(trained_run))
    assert segmenter.load(f" {trained_run} ") is loaded  # kept, and spaces typed around it dropped
    miou = read_meta(resolve_checkpoint(trained_run))["metrics"]["miou"]
    assert (
        loaded.about
        == f"{trained_run}: resnet18 + GCN (k=7) + BR, 3 classes (synthetic-shapes), val mIoU {100 * miou:.2f}"
    )
    assert describe("x", loaded.cfg, {"num_classes": 3}) == "x: resnet18 + GCN (k=7) + BR, 3 classes (synthetic-shapes)"
    rgb = street_scene(40, 56)
    plain = segmenter.segment(loaded, rgb)
    assert plain.pred.shape == (40, 56) and plain.passes == 1 and plain.pred.max() < 3
    assert segmenter.segment(loaded, rgb, flip=True).passes == 2
    assert segmenter.segment(loaded, rgb, flip=True, multi_scale=True).passes == 12
    with pytest.raises(GcnsegError, match="choose a model"):
        segmenter.load("  ")
    with pytest.raises(GcnsegError, match="no such run folder"):
        segmenter.load("runs/nowhere")
    with pytest.raises(GcnsegError, match="no model to serve"):
        Segmenter([])


def test_a_named_model_is_hashed_when_loaded_not_on_every_image(segmenter, monkeypatch):
    import gcnseg.checkpoint

    loaded = segmenter.load(NAME)  # its digest checked by load_model, once
    monkeypatch.setattr(gcnseg.checkpoint, "resolve_checkpoint", lambda *a, **k: pytest.fail("resolved again"))
    assert segmenter.load(NAME) is loaded


def test_describe_names_the_network_and_its_score(segmenter):
    about = segmenter.load(NAME).about
    assert about == f"{NAME}: timm/tf_efficientnet_lite0 + GCN (k=15/15/11/7) + BR, 11 classes (camvid), val mIoU 65.76"


def test_a_folder_lists_its_images_recursively_and_refuses_nonsense(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    for p in ["z.png", "a.jpg", "b/c.png", "notes.txt", ".x.png", ".hidden/d.png"]:
        (tmp_path / p).write_bytes(b"x")
    assert folder_images(f"  {tmp_path} ") == (["a.jpg", "b/c.png", "z.png"], "")
    assert folder_images(tmp_path, limit=2) == (["a.jpg", "z.png"], "the first 2 found")  # the top folder first
    assert folder_images(tmp_path, seconds=0) == (["a.jpg", "z.png"], "those found in 0 s of looking")
    with pytest.raises(GcnsegError, match="no such folder"):
        folder_images(tmp_path / "nowhere")
    with pytest.raises(GcnsegError, match=r"^no folder given: type one and press Enter$"):
        folder_images("  ")
    with pytest.raises(GcnsegError, match="File name too long"):
        folder_images("b" * 5000)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GcnsegError, match="no image in it"):
        folder_images(tmp_path / "empty")


def test_a_photo_is_turned_as_its_exif_says(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to view
    Image.fromarray(street_scene(40, 64)).save(tmp_path / "phone.jpg", exif=exif)
    rgb, _ = Segmenter([NAME]).read(tmp_path / "phone.jpg")
    assert rgb.shape == (64, 40, 3)


def test_one_image_at_a_time_whatever_the_threads(segmenter, trained_run):
    loaded = segmenter.load(str(trained_run))
    running, most = [0], [0]
    lock = threading.Lock()

    def model(x):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        out = loaded.model(x)
        with lock:
            running[0] -= 1
        return out

    slow = dataclasses.replace(loaded, model=model)
    threads = [threading.Thread(target=segmenter.segment, args=(slow, street_scene(36, 48))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1


def test_stopping_waits_for_the_image_being_segmented(segmenter, capsys):
    from gcnseg.serve.server import _close

    class Page:
        closed = False

        def close(self):
            print("Closing server running on port: 1")  # as Gradio says, to stdout
            self.closed = True

    segmenter.busy.acquire()
    done = threading.Timer(0.3, segmenter.busy.release)
    done.start()
    page = Page()
    start = time.monotonic()
    _close(page, segmenter)
    assert page.closed and time.monotonic() - start >= 0.25 and not segmenter.busy.locked()
    out, err = capsys.readouterr()
    assert out == "" and "finishing the image being segmented" in err


def test_a_second_ctrl_c_while_stopping_stops_at_once(segmenter):
    from gcnseg.serve.server import _AtOnce, _close

    class Page:
        def close(self):
            raise KeyboardInterrupt  # the second Ctrl-C, while the server closes

    with pytest.raises(_AtOnce):
        _close(Page(), segmenter)


def test_a_model_path_too_long_is_a_message(segmenter):
    with pytest.raises(GcnsegError, match=r"^a+: File name too long$"):
        segmenter.load("a" * 5000)


def test_the_command_refuses_bad_models_folders_and_ports_in_one_line(tmp_path, capsys):
    handler = signal.getsignal(signal.SIGTERM)
    assert main(["serve", "--model", "camvid-gcn-lite9"]) == 2
    assert "camvid-gcn-lite9: no such run folder, checkpoint or named model" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is handler  # a refusal leaves the caller's handler
    assert main(["serve", "--images", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err
    for args, message in [
        (["--port", "70000"], "--port: expected a port from 1 to 65535, got 70000"),
        (["--port", "0"], "--port: expected a positive integer, got 0"),
        (["--host", " "], "--host: expected a host name or address, got nothing"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(["serve", *args])
        assert e.value.code == 2 and message in capsys.readouterr().err
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gcnseg: error: 127.0.0.1:{port}: cannot listen there") and "\n" not in err
    assert err.endswith("choose another --port or --host")


def test_without_gradio_the_command_says_what_to_install(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["serve"]) == 2
    assert "gcnseg serve needs Gradio: pip install 'gcnseg[serve]'" in capsys.readouterr().err


@pytest.fixture
def page_url(segmenter, tmp_path, monkeypatch):
    """The page on the trained run (and the named model), served from a thread of this
    process with every connection of the process off this machine refused and recorded;
    a folder of three small images to browse."""
    from gcnseg.serve.page import build_page, launch

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(street_scene(48, 64 + 8 * i)).save(folder / f"street-{i}.png")
    outside = guard_process(monkeypatch)
    port = free_port()
    page = build_page(segmenter, str(folder))
    launch(page, "127.0.0.1", port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/", outside, folder
    finally:
        page.close()


def _picture(browser_page) -> np.ndarray:
    """The pixels of the picture on the page, as the browser fetched them."""
    src = browser_page.locator("#overlay img").get_attribute("src")
    body = browser_page.request.get(src).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def _wait_for_picture(browser_page, expected: np.ndarray, timeout: float = 30) -> None:
    """Until the picture on the page is ``expected``, pixel for pixel (or fail, after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = _picture(browser_page)
        if shown.shape == expected.shape and (shown == expected).all():
            return
        assert time.monotonic() < deadline, f"the page shows another picture ({shown.shape}, not {expected.shape})"
        browser_page.wait_for_timeout(200)


def test_the_page_in_a_real_browser(page_url, segmenter, trained_run, tmp_path):
    from playwright.sync_api import expect

    url, server_outside, _ = page_url
    run = str(trained_run)
    Image.fromarray(street_scene(40, 56)).save(tmp_path / "street.png")
    (tmp_path / "notes.txt").write_text("a text file")
    (tmp_path / "notes.png").write_text("a text file with the name of a picture")
    png = io.BytesIO()
    Image.fromarray(street_scene(40, 56)).save(png, format="PNG")
    (tmp_path / "cut.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    loaded = segmenter.load(run)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        browser_outside = guard_page(page)
        page.goto(url)
        status, legend = page.locator("#status"), page.locator("#legend")
        # the page opens on the first model, and the folder's first image is shown
        expect(page.locator("#about")).to_contain_text(f"{run}: resnet18 + GCN (k=7) + BR, 3 classes", timeout=30_000)
        expect(status).to_contain_text("street-0.png: 64x48,", timeout=30_000)
        expect(status).to_contain_text("(1 pass)")
        page.locator("#next").click()
        expect(status).to_contain_text("street-1.png: 72x48,", timeout=30_000)
        # the buttons step in the folder listed, whatever has been typed in the box since
        page.locator("#folder textarea, #folder input").first.fill(str(tmp_path / "elsewhere"))
        page.locator("#next").click()
        expect(status).to_contain_text("street-2.png: 80x48,", timeout=30_000)
        page.locator("#folder textarea, #folder input").first.press("Enter")
        expect(status.locator(".error")).to_contain_text("elsewhere: no such folder", timeout=30_000)
        # an uploaded image: the prediction over it, pixel for pixel the model's, and the legend
        page.locator("#upload input[type=file]").set_input_files(tmp_path / "street.png")
        expect(status).to_contain_text("street.png: 56x40,", timeout=30_000)
        expected = segmenter.segment(loaded, np.asarray(Image.open(tmp_path / "street.png")))
        _wait_for_picture(page, blend(expected, 0.5))
        share = shares(expected.pred, 3)
        rows = legend.locator("tr[data-class]")
        expect(rows).to_have_count(3)
        top = int(np.argmax(share))
        expect(rows.first).to_have_attribute("data-class", loaded.classes[top])
        expect(rows.first).to_contain_text(f"{100 * share[top]:.1f}%")
        # opacity 1: the colours alone
        page.locator("#opacity input[type=range]").fill("1")
        expect(page.locator("#opacity input[type=number]")).to_have_value("1")
        _wait_for_picture(page, blend(expected, 1.0))
        # flip: two passes
        page.locator("#flip input[type=checkbox]").check()
        expect(status).to_contain_text("street.png: 56x40,", timeout=30_000)
        expect(status).to_contain_text("(2 passes)", timeout=30_000)
        # bad uploads: a readable message each, and the server keeps serving
        page.locator("#upload input[type=file]").set_input_files(tmp_path / "notes.png")
        expect(status.locator(".error")).to_have_text(
            re.compile(r"^notes.png: cannot read image \(corrupt or truncated"), timeout=30_000
        )
        page.locator("#upload input[type=file]").set_input_files(tmp_path / "cut.png")
        expect(status.locator(".error")).to_have_text(
            re.compile(r"^cut.png: cannot read image \(corrupt or truncated"), timeout=30_000
        )
        page.locator("#upload input[type=file]").set_input_files(tmp_path / "notes.txt")
        expect(page.get_by_text("Invalid file type: notes.txt. Only image allowed.")).to_be_visible(timeout=30_000)
        page.locator("#upload input[type=file]").set_input_files(tmp_path / "street.png")
        expect(status.locator(".ok")).to_contain_text("street.png: 56x40,", timeout=30_000)
        # a model that is not there: said, and the page goes on with the next one
        page.locator("#model input").fill("runs/nowhere")
        page.locator("#model input").press("Enter")
        expect(status.locator(".error")).to_contain_text("runs/nowhere: no such run folder", timeout=30_000)
        # another model, typed in: the same image again, the legend of its classes
        page.locator("#model input").fill(NAME)
        page.locator("#model input").press("Enter")
        expect(page.locator("#about")).to_contain_text(f"{NAME}: timm/tf_efficientnet_lite0", timeout=30_000)
        expect(status.locator(".ok")).to_have_text(
            re.compile(rf"^street.png: 56x40, \d+ ms \(2 passes\), {NAME}$"), timeout=30_000
        )
        expect(legend.locator("tr[data-class]")).to_have_count(11, timeout=30_000)
        page.close()
    assert browser_outside == [] and server_outside == []


# the command in a process of its own, every connection it tries off the machine refused
# and written to a file at exit: from the import of Gradio to the server's close
GUARDED = (
    "import atexit, json, sys; sys.path.insert(0, sys.argv[1]); import browser; outside = browser.guard_process(); "
    "report = sys.argv[2]; atexit.register(lambda: open(report, 'w').write(json.dumps(outside))); "
    "from gcnseg.commands import main; sys.exit(main(sys.argv[3:]))"
)


def test_the_command_serves_the_page_until_sigterm_and_sends_nothing_out(trained_run, tmp_path):
    port = free_port()
    report = tmp_path / "outside.json"
    here = str(Path(__file__).parent)
    command = [sys.executable, "-c", GUARDED, here, str(report), "serve", "--checkpoint", str(trained_run),
               "--port", str(port)]  # fmt: skip
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path)}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == f"gcnseg serve: open http://127.0.0.1:{port}/ in a browser (Ctrl-C to stop)\n"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=60) as response:
                config = json.loads(response.read())
            assert config["title"] == "gcnseg" and config["analytics_enabled"] is False
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0 and err.strip().endswith("gcnseg serve: stopped"), err
    assert json.loads(report.read_text()) == []


def test_a_sidecar_without_colours_gets_the_voc_colour_map(trained_run_copy):
    from gcnseg.data.base import color_map

    ckpt = resolve_checkpoint(trained_run_copy)
    meta = json.loads((ckpt / "model.json").read_text())
    del meta["palette"]
    (ckpt / "model.json").write_text(json.dumps(meta))
    assert Segmenter([str(trained_run_copy)]).load(str(trained_run_copy)).palette == color_map(3)
