"""`make lab` serves lessons/ in JupyterLab: the server answers, lesson 04 comes back through the
Jupyter contents API, and in a real browser (Debian's Chromium, driven by Playwright) the
notebook renders and its kernel starts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import nbformat
import pytest

from conftest import LESSONS, ROOT

TOKEN = "handwritten-test-token"
LESSON = "04-convolutions-by-hand"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str):
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"}),
                                timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


@pytest.fixture(scope="module")
def lab():
    port = free_port()
    args = f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --IdentityProvider.token={TOKEN}"
    server = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                get(f"{base}/api/status")
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError("make lab did not start:\n" + server.stdout.read()) from None
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def test_serves_the_lessons_folder(lab):
    status, listing = get(f"{lab}/api/contents")
    assert status == 200
    assert sorted(item["name"] for item in listing["content"] if item["type"] == "directory") == LESSONS


def test_lesson_04_opens_through_the_contents_api(lab):
    status, model = get(f"{lab}/api/contents/{LESSON}/{LESSON}.ipynb?content=1")
    assert status == 200 and model["type"] == "notebook"
    committed = nbformat.read(ROOT / "lessons" / LESSON / f"{LESSON}.ipynb", as_version=4)
    assert [c["source"] for c in model["content"]["cells"]] == [c.source for c in committed.cells]


@pytest.mark.browser
def test_lesson_04_renders_and_its_kernel_starts_in_chromium(lab):
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but Chromium is missing: `make test` should have installed it")
        pytest.skip("Chromium is not installed (`make browser` installs it; CI always does)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{lab}/lab/tree/{LESSON}/{LESSON}.ipynb?token={TOKEN}")
            notebook = page.locator(".jp-NotebookPanel .jp-Notebook")
            expect(notebook.get_by_role("heading", name="04 · Convolutions and pooling, by hand")).to_be_visible(
                timeout=60_000)
            expect(notebook.locator(".jp-CodeCell").first).to_contain_text("env.setup()")
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=60_000)
        finally:
            browser.close()
