"""Lesson 06 in a real browser: JupyterLab on localhost, Debian's Chromium driven by Playwright. Run every cell of
the instructor notebook once (one server, one page for the module); move the shift explorer's slider and check
that its picture changed and that no cell shows an error; draw digits on the canvas with the mouse and check that
the network's answer and the feature maps change. Screenshots of the explorer and the canvas are kept in
tests/artifacts/.

Without Chromium (a laptop that never ran `make browser`) the tests are skipped with a loud message; with CI set,
a missing Chromium is a failure."""

from __future__ import annotations

import re

import pytest
from test_lab import ONE, ZERO, chromium_page, draw_on_canvas, run_all_in_lab

from conftest import ROOT

LESSON = "06-inside-a-cnn"
ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOT = ARTIFACTS / "inside-cnn-shift-explorer.png"
CANVAS_SCREENSHOT = ARTIFACTS / "lab-canvas.png"


@pytest.fixture(scope="module")
def lesson(tmp_path_factory):
    """Lesson 06's instructor notebook in JupyterLab, every cell started."""
    with chromium_page("lesson 06's widgets were") as page, \
            run_all_in_lab(page, LESSON, tmp_path_factory.mktemp("lab")) as page:
        page.add_style_tag(content=".Toastify { display: none !important; }")  # JupyterLab's news toast
        yield page


@pytest.mark.browser
def test_shift_explorer_works_in_jupyterlab(lesson):
    from playwright.sync_api import expect

    page = lesson
    explorer = page.locator(".handwritten-shift-explorer")
    picture = explorer.locator("img")
    expect(picture).to_have_attribute("src", re.compile("."), timeout=240_000)
    before = picture.get_attribute("src")
    slider = explorer.locator(".widget-slider", has=page.locator("label", has_text="shift (px)"))
    expect(slider.locator(".widget-readout")).to_have_text("3")
    handle = slider.locator(".noUi-handle")
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press("ArrowRight")
    expect(slider.locator(".widget-readout")).to_have_text("4", timeout=10_000)
    expect(picture).not_to_have_attribute("src", before, timeout=120_000)
    expect(explorer).to_contain_text("shift", timeout=10_000)

    # every cell has run (no "[*]" prompt left) and none shows an error
    expect(page.locator(".jp-InputArea-prompt", has_text="*")).to_have_count(0, timeout=240_000)
    expect(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")).to_have_count(0)
    assert page.locator(".jp-InputArea-prompt", has_text=re.compile(r"\[\d+\]")).count() > 20

    ARTIFACTS.mkdir(exist_ok=True)
    explorer.screenshot(path=str(SCREENSHOT))
    print(f"screenshot of the shift explorer: {SCREENSHOT}")


@pytest.mark.browser
def test_drawing_on_the_canvas_gets_an_answer_and_feature_maps_in_jupyterlab(lesson):
    from playwright.sync_api import expect

    page = lesson
    pad = page.locator(".handwritten-digit-canvas")
    expect(pad.locator("img")).to_have_attribute("src", re.compile("."), timeout=240_000)
    expect(pad).to_contain_text("Nothing drawn yet")
    draw_on_canvas(page, pad, ONE, r"your digit · prediction 1 \(\d+\.\d%\).* · 1 stroke")
    one = pad.locator("img").get_attribute("src")
    pad.get_by_role("button", name="clear").click()
    expect(pad).to_contain_text("Nothing drawn yet", timeout=30_000)
    expect(pad.locator("img")).not_to_have_attribute("src", one, timeout=10_000)  # blank maps again
    draw_on_canvas(page, pad, ZERO, r"your digit · prediction 0 \(\d+\.\d%\).* · 1 stroke")
    expect(pad).not_to_contain_text("⚠")

    ARTIFACTS.mkdir(exist_ok=True)
    pad.screenshot(path=str(CANVAS_SCREENSHOT))
    print(f"screenshot of the canvas: {CANVAS_SCREENSHOT}")
