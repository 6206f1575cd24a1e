"""The README's picture of the page of ``gcnseg serve``, taken in the headless Chromium of
the test suite (``make browser``)::

    .venv/bin/python scripts/screenshot_serve.py ../shared/camvid/val docs/serve.png
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser import chromium, free_port

from gcnseg.serve.page import build_page, launch
from gcnseg.serve.segmenter import Segmenter


def main(images: str, out: str, model: str = "camvid-gcn-lite0") -> None:
    port = free_port()
    page = build_page(Segmenter([model]), images)
    launch(page, "127.0.0.1", port, block=False)
    try:
        with chromium() as browser:
            tab = browser.new_page(viewport={"width": 1360, "height": 900})
            tab.goto(f"http://127.0.0.1:{port}/")
            tab.locator("#status .ok").get_by_text(" ms (").wait_for(timeout=60_000)
            tab.locator("#next").click()  # a second image, as a person stepping through the folder would
            tab.locator("#status .ok").get_by_text(" ms (").wait_for(timeout=60_000)
            tab.wait_for_timeout(500)
            tab.screenshot(path=out, full_page=True)
    finally:
        page.close()
    print(f"written {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
