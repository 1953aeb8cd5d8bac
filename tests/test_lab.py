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
import urllib.error
import urllib.request
import warnings

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


@contextlib.contextmanager
def chromium_page(what: str, width: int = 1280, height: int = 1000):
    """A Playwright page in Debian's Chromium. Without Chromium the test is skipped with a loud message
    saying that ``what`` went untested; with CI set, a missing Chromium is a failure."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but Chromium is missing: `make test` should have installed it")
        message = (f"NO BROWSER: Chromium is not installed, so {what} NOT tested in a browser. "
                   "Install it with `make browser` (Debian's chromium package) and run the tests again.")
        warnings.warn(message, stacklevel=1)
        print(f"\n{'!' * 100}\n{message}\n{'!' * 100}", file=sys.stderr)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


# Digits to draw on the course's 224-pixel canvas (widgets.DigitCanvas), in its pixels: a vertical stroke down the
# middle (the pretrained network reads a 1), a ring (a 0), and a bar to the left of the stroke's top (with it, a 7)
ONE = [[(112, 40), (112, 110), (112, 190)]]
ZERO = [[(112, 30), (165, 60), (175, 112), (165, 165), (112, 195), (60, 165), (50, 112), (60, 60), (112, 30)]]
BAR = [[(40, 40), (112, 40)]]


def draw_strokes(page, canvas, strokes) -> None:
    """Draw ``strokes`` (lists of (x, y) points in the canvas's own pixels) on the ``canvas`` element with the
    mouse, as a hand would: press, move through the points, release. (``hover`` first: it scrolls the canvas
    into view and fails if something else on the page would take the mouse.)"""
    for stroke in strokes:
        (x, y), *rest = stroke
        canvas.hover(position={"x": x, "y": y})
        box = canvas.bounding_box()
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        page.mouse.up()


def draw_on_canvas(page, pad, strokes, answer: str) -> None:
    """Draw ``strokes`` on the digit canvas ``pad`` (the widget's locator); wait until its status line says
    ``answer`` (a regular expression) and its picture is a new one (it arrives after the status line)."""
    from playwright.sync_api import expect

    picture = pad.locator("img")
    before = picture.get_attribute("src")
    draw_strokes(page, pad.locator("canvas"), strokes)
    expect(pad).to_contain_text(re.compile(answer), timeout=30_000)
    expect(picture).not_to_have_attribute("src", before, timeout=10_000)


@pytest.fixture
def chromium():
    with chromium_page("JupyterLab was") as page:
        yield page


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


# ---------------------------------------------------------------- the student's Binder, in Chromium

STUDENT_LESSON = "01-pixels-and-tensors"
LAB_SCREENSHOT = ROOT / "tests" / "artifacts" / "lab-lesson-01-student.png"

RUN_EVERY_CELL = """async () => {
    // A student's Shift+Enter, cell after cell: an exercise that raises does not stop the cells after it
    // (run-all would abort the rest of the queue at the first error).
    const app = window.jupyterapp;
    const panel = app.shell.currentWidget;
    await Promise.all([panel.context.ready, panel.sessionContext.ready]);
    const notebook = panel.content;
    for (let i = 0; i < notebook.widgets.length; i++) {
        notebook.activeCellIndex = i;
        await app.commands.execute("notebook:run-cell");
    }
    return notebook.model.toJSON();
}"""

INSTRUCTOR_COMMANDS = ["nbgrader:open-formgrader", "nbgrader:open-formgrader-local", "nbgrader:open-create-assignment",
                       "nbgrader:open-assignment-list", "nbgrader:open-course-list"]


def binder_student_config(folder) -> dict:
    """Run postBuild's student-UI step (the one Binder runs) into ``folder``; return the environment
    variables under which a Jupyter server reads that configuration."""
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(folder),
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(ROOT / "binder" / "postBuild"), "--student-ui"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"JUPYTER_CONFIG_DIR": str(folder)}


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_lesson_01_as_a_binder_student_sees_it(chromium, tmp_path, monkeypatch):
    """lessons/ served by JupyterLab configured as binder/postBuild configures Binder; lesson 01 opened and
    every cell run. The only errors are NotImplementedError, in exercise cells and their self-checks;
    nbgrader's Validate button is there, its instructor panels and their server side are not."""
    from playwright.sync_api import expect

    for name, value in binder_student_config(tmp_path / "jupyter-config").items():
        monkeypatch.setenv(name, value)  # the server below inherits it
    shutil.copytree(ROOT / "lessons", tmp_path / "lessons")  # run in a copy: autosave must not touch lessons/
    page = chromium
    page.set_viewport_size({"width": 1400, "height": 1000})
    command = lambda port: [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={tmp_path / 'lessons'}",  # noqa: E731
                            "--LabApp.expose_app_in_browser=True", *server_args(port).split(),
                            *(["--allow-root"] if os.geteuid() == 0 else [])]
    with serve(command, ROOT) as url:
        with pytest.raises(urllib.error.HTTPError) as missing:  # the formgrader is off on the server too
            get(f"{url}/formgrader")
        assert missing.value.code == 404
        page.goto(f"{url}/lab/tree/{STUDENT_LESSON}/{STUDENT_LESSON}.ipynb?token={TOKEN}")
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=60_000)
        page.wait_for_function("window.jupyterapp !== undefined")

        expect(page.locator(".jp-NotebookPanel-toolbar .validate-button")).to_be_visible(timeout=30_000)
        registered = page.evaluate("names => names.filter(n => window.jupyterapp.commands.hasCommand(n))",
                                   INSTRUCTOR_COMMANDS)
        assert registered == [], f"instructor commands available to students: {registered}"
        assert page.locator("#nbgrader-create_assignemnt").count() == 0  # nbgrader's id, sic
        expect(page.get_by_role("tab", name=re.compile("Create Assignment"))).to_have_count(0)
        expect(page.locator("#jp-menu-panel .lm-MenuBar-itemLabel", has_text="Nbgrader")).to_have_count(0)
        expect(page.locator("#jp-menu-panel .lm-MenuBar-itemLabel", has_text="Kernel")).to_have_count(1)

        nb = nbformat.from_dict(page.evaluate(RUN_EVERY_CELL))
        errors = [(i, cell, output) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
                  for output in cell.outputs if output.output_type == "error"]
        assert errors, "lesson 01 ran without a single unfinished exercise"
        for i, cell, output in errors:  # each raised by an unfinished exercise's stub, where it runs or is used
            assert output.ename == "NotImplementedError", (i, output.ename, output.evalue, cell.source[:200])
            traceback = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(output.traceback))  # without its colours
            assert "raise NotImplementedError()" in traceback, (i, cell.source[:200], traceback)
        failing = {i for i, _, _ in errors}
        self_checks = {i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade")
                       and c.cell_type == "code" and "check." in c.source}
        assert self_checks and self_checks <= failing, "a self-check passed on an unfinished exercise"
        ran = [c for c in nb.cells if c.cell_type == "code" and c.execution_count]
        assert len(ran) == sum(c.cell_type == "code" for c in nb.cells), "every code cell ran"
        first = "".join(o.get("text", "") for o in nb.cells[1].outputs if o.output_type == "stream")
        assert "environment OK" in first and "MNIST:" in first and "torch threads: 1" in first

        page.add_style_tag(content=".Toastify { display: none !important; }")  # JupyterLab's news toast
        page.evaluate("""() => {  // back to the top: the first cell's report and the Validate button
            const notebook = window.jupyterapp.shell.currentWidget.content;
            notebook.activeCellIndex = 1;
            return notebook.scrollToItem(1, "end");
        }""")
        LAB_SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(LAB_SCREENSHOT))
        print(f"screenshot of lesson 01 in the student's JupyterLab: {LAB_SCREENSHOT}")
