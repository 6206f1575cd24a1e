"""The page of ``gcnseg serve``, laid out with Gradio: a model to choose, an image to drop
or pick (or a folder to step through), the prediction over it with an opacity slider,
the legend with each class's share, and the time it took.

Every request the page makes goes to the server that sent it: Gradio's fonts ship in its
wheel, telemetry is off (``GRADIO_ANALYTICS_ENABLED=False``, set before Gradio is
imported), there is no share link, and server-side rendering (a Node process) is off.
"""

from __future__ import annotations

import html
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GcnsegError
from .segmenter import (
    Loaded,
    Segmentation,
    Segmenter,
    blend,
    folder_path,
    legend_html,
    list_images,
    shares,
    summary,
)

CSS = """
.gcnseg-legend { border-collapse: collapse; }
.gcnseg-legend, .gcnseg-legend tr, .gcnseg-legend td, .gcnseg-legend th { border: none !important; }
.gcnseg-legend td, .gcnseg-legend th { padding: 2px 8px !important; text-align: left; }
.gcnseg-legend .swatch { display: inline-block; width: 1.2em; height: 1.2em; border: 1px solid #444; }
.gcnseg-legend .share { text-align: right; font-variant-numeric: tabular-nums; }
.gcnseg-legend .bar { width: 10em; }
.gcnseg-legend .bar span { display: inline-block; height: 0.8em; min-width: 1px; }
.gcnseg-legend .absent { opacity: 0.4; }
#status .error { color: #b00020; font-weight: 600; }
"""

UPLOAD_LIMIT = "100mb"  # larger uploads are refused by Gradio with a message


@dataclass(frozen=True)
class Shown:
    """The image the page shows now, decoded (kept per browser tab in a ``gr.State``: another
    model or option runs on it again without reading the file, which may be gone)."""

    name: str
    rgb: np.ndarray | None  # None: not read yet (a model failed to load first)
    path: str
    resized_from: tuple[int, int] | None = None
    seg: Segmentation | None = None


@dataclass(frozen=True)
class Listed:
    """The folder listed on the page and its images (the picker and the buttons step in
    it, whatever is typed in the folder box since); ``paths``: the real relative path of
    each name shown otherwise (not valid UTF-8, see :func:`~gcnseg.serve.segmenter.list_images`)."""

    folder: str
    names: list[str]
    paths: dict[str, str] = field(default_factory=dict)

    def path(self, name: str) -> str:
        return str(folder_path(self.folder, self.paths.get(name, name)))


def _ok(text: str) -> str:
    return f'<p class="ok">{html.escape(text)}</p>'


def _error(text: str) -> str:
    return f'<p class="error">{html.escape(text)}</p>'


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _gradio() -> Any:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before Gradio is imported
    import gradio as gr

    return gr


class Actions:
    """What the page's controls do, apart from the layout (:func:`build_page` wires them):
    each takes the values of its inputs and returns those of its outputs, and a failure is
    a message on the page, never an exception that Gradio would show as "error"."""

    def __init__(self, segmenter: Segmenter) -> None:
        self.segmenter = segmenter

    def _load(self, choice: str) -> tuple[Loaded | None, str]:
        """The model of ``choice``, or None and why (an error, whatever went wrong)."""
        try:
            return self.segmenter.load(choice), ""
        except GcnsegError as e:
            return None, str(e)
        except Exception as e:  # a defect, not the person's doing: say so, log it, keep serving
            traceback.print_exc(file=sys.stderr)
            return None, f"{choice}: cannot load the model ({type(e).__name__}: {e})"

    def about(self, choice: str) -> tuple[str, str]:
        """(about, legend) of the model chosen."""
        loaded, why = self._load(choice)
        if loaded is None:
            return _error(why), ""
        return _ok(loaded.about), legend_html(loaded.classes, loaded.palette)

    def show(self, image: Shown | None, choice: str, flip: bool, ms: bool, opacity: float) -> tuple:
        """(picture, status, legend, about, state) for one image, or the reason there is none."""
        loaded, why = self._load(choice)
        if loaded is None:  # the image stays (not its prediction), for the next model chosen
            kept = replace(image, seg=None) if image is not None else None
            return None, _error(why), "", _error(f"{choice}: not loaded"), kept
        key = legend_html(loaded.classes, loaded.palette)
        if image is None:
            return None, "", key, _ok(loaded.about), None
        try:
            if image.rgb is None:  # read once; the file may be gone by the next option changed
                rgb, resized_from = self.segmenter.read(image.path, image.name)
                image = replace(image, rgb=rgb, resized_from=resized_from)
            else:
                rgb, resized_from = image.rgb, image.resized_from
            seg = self.segmenter.segment(loaded, rgb, flip=flip, multi_scale=ms, resized_from=resized_from)
        except GcnsegError as e:
            return None, _error(str(e)), key, _ok(loaded.about), None
        except Exception as e:  # a defect, not the person's doing: say so, log it, keep serving
            traceback.print_exc(file=sys.stderr)
            return None, _error(f"{image.name}: failed ({type(e).__name__}: {e})"), key, _ok(loaded.about), None
        legend = legend_html(loaded.classes, loaded.palette, shares(seg.pred, len(loaded.classes)))
        status = _ok(f"{summary(image.name, seg)}, {loaded.choice}")
        return blend(seg, opacity), status, legend, _ok(loaded.about), replace(image, seg=seg)

    def uploaded(self, path: str | None, *options: Any) -> tuple:
        """An upload: shown, and the drop zone emptied, ready for the next file."""
        image = Shown(Path(path).name, None, path) if path else None
        return (*self.show(image, *options), None)

    def picked(self, name: str | None, listed: Listed | None, *options: Any) -> tuple:
        """An image chosen in the picker: shown (nothing changes for one not listed)."""
        if not name or listed is None or name not in listed.names:
            return (_gradio().update(),) * 5
        return self.show(Shown(name, None, listed.path(name)), *options)

    @staticmethod
    def reblend(state: Shown | None, opacity: float) -> Any:
        return _gradio().update() if state is None or state.seg is None else blend(state.seg, opacity)

    @staticmethod
    def list_folder(folder: str) -> tuple:
        """(picker, status, listed): the folder's images in the picker, the first one chosen."""
        gr = _gradio()
        try:
            listing = list_images(folder)
        except GcnsegError as e:
            return gr.update(choices=[], value=None), _error(str(e)), None
        except Exception as e:  # a defect: said on the page, logged, the page keeps serving
            traceback.print_exc(file=sys.stderr)
            return gr.update(choices=[], value=None), _error(f"{folder}: cannot list ({type(e).__name__}: {e})"), None
        listed = Listed(folder.strip(), listing.names, listing.paths)
        note = listing.note
        said = f"{_plural(len(listed.names), 'image')} in {listed.folder}" + (f" ({note})" if note else "")
        return gr.update(choices=listed.names, value=listed.names[0]), _ok(said), listed

    @staticmethod
    def step(by: int) -> Callable[[str | None, Listed | None], Any]:
        """The previous (``by=-1``) or next (``by=1``) image of the folder listed."""

        def go(current: str | None, listed: Listed | None) -> Any:
            gr = _gradio()
            if listed is None:
                return gr.update()
            i = listed.names.index(current) if current in listed.names else -by
            return gr.update(value=listed.names[(i + by) % len(listed.names)])

        return go


def build_page(segmenter: Segmenter, images: str | None = None) -> Any:  # -> gr.Blocks
    """The page, not yet started (``launch`` starts it)."""
    gr = _gradio()
    act = Actions(segmenter)

    with gr.Blocks(title="gcnseg", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        state = gr.State(None)
        listed = gr.State(None)
        gr.Markdown(
            "## gcnseg: Global Convolutional Network\n"
            "Semantic segmentation by GCN + Boundary Refinement (Peng et al., *Large Kernel Matters*, "
            "CVPR 2017). Drop an image, or browse a folder."
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                model = gr.Dropdown(
                    segmenter.choices,
                    value=segmenter.choices[0],
                    allow_custom_value=True,
                    label="Model: a named model, or type a run folder",
                    elem_id="model",
                )
                model_about = gr.HTML(elem_id="about")
                upload = gr.File(
                    label="Image: drop it here or click to pick",
                    file_types=["image"],
                    type="filepath",
                    elem_id="upload",
                )
                with gr.Accordion("Browse a folder of images", open=bool(images)):
                    folder = gr.Textbox(
                        value=images or "", label="Folder (Enter to list it)", elem_id="folder", max_lines=1
                    )
                    pick = gr.Dropdown([], label="Image", elem_id="pick", interactive=True)
                    with gr.Row():
                        prev_button = gr.Button("◀ previous", elem_id="prev", size="sm")
                        next_button = gr.Button("next ▶", elem_id="next", size="sm")
                flip = gr.Checkbox(label="flip: average with the mirrored image (2 passes)", elem_id="flip")
                ms = gr.Checkbox(label="multi-scale: 0.5 to 1.75, as Table 7's -MS (6 passes)", elem_id="ms")
                opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Opacity of the prediction", elem_id="opacity")
            with gr.Column(scale=2):
                picture = gr.Image(
                    label="Prediction over the image",
                    type="numpy",
                    format="png",
                    interactive=False,
                    elem_id="overlay",
                    buttons=["download", "fullscreen"],
                )
                status = gr.HTML(elem_id="status")
                legend = gr.HTML(elem_id="legend")

        options = [model, flip, ms, opacity]
        shown = [picture, status, legend, model_about, state]
        one: dict[str, Any] = {"concurrency_id": "segment", "concurrency_limit": 1}  # all that segment: one queue
        upload.upload(act.uploaded, [upload, *options], [*shown, upload], **one)
        pick.change(act.picked, [pick, listed, *options], shown, **one)
        for control in (model, flip, ms):  # the same image again, with another model or option
            control.change(act.show, [state, *options], shown, **one)
        opacity.change(act.reblend, [state, opacity], picture, trigger_mode="always_last")
        folder.submit(act.list_folder, folder, [pick, status, listed])
        prev_button.click(act.step(-1), [pick, listed], pick)
        next_button.click(act.step(1), [pick, listed], pick)
        page.load(act.about, model, [model_about, legend])
        if images:
            page.load(act.list_folder, folder, [pick, status, listed])
    return page


def launch(page: Any, host: str, port: int, block: bool = True) -> None:
    """Serve ``page`` at ``http://HOST:PORT`` (until Ctrl-C when ``block``); one model run at a time."""
    page.queue(default_concurrency_limit=1).launch(
        server_name=host,
        server_port=port,
        share=False,
        ssr_mode=False,
        inbrowser=False,
        footer_links=[],
        max_file_size=UPLOAD_LIMIT,
        prevent_thread_lock=not block,
        css=CSS,
        quiet=True,
    )
