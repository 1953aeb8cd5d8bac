"""Lesson 06 in a real browser: JupyterLab on localhost, Debian's Chromium driven by Playwright. Run
every cell of the instructor notebook, move the shift explorer's slider, and check that its picture
changed and that no cell shows an error. A screenshot of the explorer is kept in tests/artifacts/.

Without Chromium (a laptop that never ran `make browser`) the test is skipped with a loud message;
with CI set, a missing Chromium is a failure."""

from __future__ import annotations

import re

import pytest
from test_lab import chromium_page, run_all_in_lab

from conftest import ROOT

LESSON = "06-inside-a-cnn"
ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOT = ARTIFACTS / "inside-cnn-shift-explorer.png"


@pytest.fixture
def page():
    with chromium_page("lesson 06's widgets were") as page:
        yield page


@pytest.mark.browser
def test_shift_explorer_works_in_jupyterlab(page, tmp_path):
    from playwright.sync_api import expect

    with run_all_in_lab(page, LESSON, tmp_path):
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

        page.add_style_tag(content=".Toastify { display: none !important; }")  # JupyterLab's news toast
        ARTIFACTS.mkdir(exist_ok=True)
        explorer.screenshot(path=str(SCREENSHOT))
        print(f"screenshot of the shift explorer: {SCREENSHOT}")
