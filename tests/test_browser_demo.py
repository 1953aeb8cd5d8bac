"""The instructor demo (`make demo`) in a real browser: Voilà serving demo/demo.ipynb, exactly as
`handwritten demo` starts it, and Debian's Chromium driven by Playwright. The page renders all seven widgets
with no error; a digit drawn on the canvas with the mouse gets an answer and feature maps, and another stroke
changes both; moving the shift explorer's slider changes its picture; the digit classifier answers, and
answers again for another digit. Screenshots (the page's top, the canvas, the shift explorer) are kept in
tests/artifacts/.

Without Chromium the test is skipped with a loud message; with CI set, a missing Chromium is a failure."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time

import pytest
from test_lab import BAR, ONE, chromium_page, draw_on_canvas, free_port, stop_group

from conftest import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOT = ARTIFACTS / "demo-voila.png"
SHIFT_SCREENSHOT = ARTIFACTS / "demo-voila-shift-explorer.png"
CANVAS_SCREENSHOT = ARTIFACTS / "demo-voila-canvas.png"
WIDGETS = ["digit-canvas", "digit-classifier", "kernel-playground", "filter-viewer", "filter-evolution",
           "feature-map-explorer", "shift-explorer"]
FIRST = ".handwritten-digit-canvas img[src]"  # the first widget on the page, drawn


@contextlib.contextmanager
def serve_demo(env: dict | None = None):
    """Start `handwritten demo` (Voilà) on a free port; yield (its URL, the time.perf_counter() at which
    it was launched, its process) once the port accepts connections; stop it and its kernels afterwards.
    Nothing requests the page before the caller does: each page load runs the notebook on a fresh kernel."""
    port = free_port()
    launched = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "handwritten.cli", "demo", "--port", str(port), "--no-browser"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True, env={**os.environ, **(env or {})})
    try:
        deadline = time.time() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None or time.time() > deadline:
                stop_group(server)
                raise AssertionError("Voilà did not start:\n" + server.stdout.read())
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/", launched, server
    finally:
        stop_group(server)


def first_render(page, url: str, timeout_s: float = 60) -> float:
    """Open the demo in ``page``; return the time.perf_counter() at which its first widget had drawn."""
    from playwright.sync_api import expect

    page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
    expect(page.locator(FIRST)).to_be_visible(timeout=timeout_s * 1000)
    return time.perf_counter()


def press(page, slider, key: str = "ArrowRight") -> None:
    handle = slider.locator(".noUi-handle")
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press(key)


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_demo_renders_and_answers_in_voila():
    from playwright.sync_api import expect

    with chromium_page("the Voilà demo was") as page, serve_demo() as (url, launched, _):
        rendered = first_render(page, url)
        print(f"demo: first widget drawn {rendered - launched:.1f} s after `handwritten demo` was launched")

        for name in WIDGETS:  # every widget is on the page, drawn
            expect(page.locator(f".handwritten-{name} img[src]")).to_be_visible(timeout=60_000)
        expect(page.locator("[data-mime-type='application/vnd.jupyter.error']")).to_have_count(0)
        expect(page.locator("body")).not_to_contain_text("Traceback")
        expect(page.locator("body")).not_to_contain_text("⚠")  # a widget's own problem report

        # a digit drawn with the mouse gets an answer and feature maps; a second stroke changes both
        pad = page.locator(".handwritten-digit-canvas")
        expect(pad).to_contain_text("Nothing drawn yet")
        draw_on_canvas(page, pad, ONE, r"your digit · prediction 1 \(\d+\.\d%\).* · 1 stroke")
        draw_on_canvas(page, pad, BAR, r"your digit · prediction 7 \(\d+\.\d%\).* · 2 strokes")
        ARTIFACTS.mkdir(exist_ok=True)
        pad.screenshot(path=str(CANVAS_SCREENSHOT))

        # the classifier answers for the first digit, and again for the next one
        classifier = page.locator(".handwritten-digit-classifier")
        answer = re.compile(r"image (\d+) · label (\d) · prediction (\d) \(\d+\.\d%\)")
        expect(classifier).to_contain_text(answer)
        assert classifier.inner_text().count("image 0 ·") >= 1
        press(page, classifier.locator(".widget-slider", has=page.locator("label", has_text="image")))
        expect(classifier).to_contain_text(re.compile(r"image 1 · label \d · prediction \d"), timeout=30_000)
        rotate = classifier.locator(".widget-slider", has=page.locator("label", has_text="rotate"))
        press(page, rotate)
        expect(rotate.locator(".widget-readout")).to_have_text("5", timeout=10_000)
        expect(classifier).to_contain_text("rotated 5°", timeout=30_000)

        # moving the shift slider changes the picture
        explorer = page.locator(".handwritten-shift-explorer")
        picture = explorer.locator("img")
        before = picture.get_attribute("src")
        slider = explorer.locator(".widget-slider", has=page.locator("label", has_text="shift (px)"))
        expect(slider.locator(".widget-readout")).to_have_text("3")
        press(page, slider)
        expect(slider.locator(".widget-readout")).to_have_text("4", timeout=10_000)
        expect(picture).not_to_have_attribute("src", before, timeout=30_000)
        expect(explorer).to_contain_text("moved 4 px", timeout=30_000)

        ARTIFACTS.mkdir(exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 1400})  # the explorer whole (Voilà scrolls a panel)
        explorer.scroll_into_view_if_needed()
        explorer.screenshot(path=str(SHIFT_SCREENSHOT))
        page.set_viewport_size({"width": 1280, "height": 1000})
        page.locator("h1").first.scroll_into_view_if_needed()  # Voilà scrolls a panel, not the page: the top
        page.screenshot(path=str(SCREENSHOT))
        print(f"screenshots of the demo: {SCREENSHOT} (the top: the canvas), {CANVAS_SCREENSHOT}, {SHIFT_SCREENSHOT}")
