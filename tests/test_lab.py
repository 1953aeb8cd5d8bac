"""`make lab` serves lessons/ in JupyterLab: the server answers, lesson 04 comes back through the
Jupyter contents API, and in a real browser (Debian's Chromium, driven by Playwright) the
notebook renders and its kernel starts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
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


@contextlib.contextmanager
def serve(command, cwd):
    """Start a Jupyter server (its command ends with the port), yield its URL, stop it."""
    port = free_port()
    server = subprocess.Popen(command(port), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                get(f"{base}/api/status")
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError("the Jupyter server did not start:\n" + server.stdout.read()) from None
                time.sleep(0.5)
        yield base
    finally:
        stop_group(server)


def stop_group(process: subprocess.Popen, grace: float = 20) -> None:
    """Stop a process and everything it started (the server, its kernels): SIGTERM, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.time() + grace
        while time.time() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                process.wait()
                return
            process.poll()  # reap the leader, or the group never looks empty
            time.sleep(0.2)


READY_THEN_RUN_ALL = """async () => {
    const app = window.jupyterapp;
    const panel = app.shell.currentWidget;
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("kernel not ready")), 60000));
    await Promise.race([Promise.all([panel.context.ready, panel.sessionContext.ready]), timeout]);
    app.commands.execute("notebook:run-all-cells");
}"""


def server_args(port: int) -> str:
    return f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --IdentityProvider.token={TOKEN}"


@contextlib.contextmanager
def run_all_in_lab(page, lesson: str, folder):
    """Serve a copy of ``lesson``'s instructor notebook from ``folder`` in JupyterLab, open it in
    ``page`` and start running every cell once its kernel is ready (without waiting for the run
    to finish: the caller's expectations wait, with timeouts)."""
    from playwright.sync_api import expect

    shutil.copy(ROOT / "solutions" / lesson / f"{lesson}.ipynb", folder / "lesson.ipynb")
    command = lambda port: [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={folder}",  # noqa: E731
                            "--LabApp.expose_app_in_browser=True", *server_args(port).split(),
                            *(["--allow-root"] if os.geteuid() == 0 else [])]
    with serve(command, ROOT) as url:
        page.goto(f"{url}/lab/tree/lesson.ipynb?token={TOKEN}")
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=60_000)
        page.wait_for_function("window.jupyterapp !== undefined")
        page.evaluate(READY_THEN_RUN_ALL)
        yield page


@pytest.fixture(scope="module")
def lab():
    with serve(lambda port: ["make", "--no-print-directory", "lab", f"LAB_ARGS={server_args(port)}"], ROOT) as url:
        yield url


@pytest.fixture
def chromium():
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but Chromium is missing: `make test` should have installed it")
        pytest.skip("Chromium is not installed (`make browser` installs it; CI always does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


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
def test_lesson_04_renders_and_its_kernel_starts_in_chromium(lab, chromium):
    from playwright.sync_api import expect

    page = chromium
    page.goto(f"{lab}/lab/tree/{LESSON}/{LESSON}.ipynb?token={TOKEN}")
    notebook = page.locator(".jp-NotebookPanel .jp-Notebook")
    expect(notebook.get_by_role("heading", name="04 · Convolutions and pooling, by hand")).to_be_visible(
        timeout=60_000)
    expect(notebook.locator(".jp-CodeCell").first).to_contain_text("env.setup()")
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=60_000)


@pytest.mark.browser
def test_kernel_playground_works_in_jupyterlab(chromium, tmp_path):
    """Run the instructor notebook in JupyterLab in Chromium; pick another kernel in the playground
    and see the picture change."""
    from playwright.sync_api import expect

    with run_all_in_lab(chromium, LESSON, tmp_path) as page:
        playground = page.locator(".handwritten-kernel-playground")
        picture = playground.locator("img")
        expect(picture).to_have_attribute("src", re.compile("."), timeout=120_000)
        before = picture.get_attribute("src")
        playground.locator("select").select_option("Sobel x")
        expect(picture).not_to_have_attribute("src", before, timeout=30_000)
        expect(playground).to_contain_text("output (26, 26)")
        playground.screenshot(path=str(tmp_path / "playground.png"))
