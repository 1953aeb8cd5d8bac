"""`handwritten class` (`make class`): a JupyterHub for a class, and one loop through it in a real browser.

The instructor releases lesson 04 with the formgrader's button (in JupyterLab's frame); two students log in (two
browser contexts), fetch it and submit it from their Assignments panel (one the instructor's answers, one with a
flipped kernel); the instructor collects with the formgrader's button; `handwritten grade` grades the collected
submissions; the formgrader's button returns the feedback; each student fetches it from their Assignments panel
and sees their own, and can read neither the other's submission nor their feedback (through the hub, and as their
Unix user through the exchange and the homes). Needs root (real Unix accounts), Debian's Chromium and
configurable-http-proxy (`make class` installs it into .tools/chp). Screenshots go to tests/artifacts/class/.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_lab import CHROMIUM_FLAGS, free_port

from conftest import ROOT

LESSON = "04-convolutions-by-hand"
COURSE_ID = "handwritten"
PREFIX = "hwtest-"
PASSWORD = "handwritten-class-test"
INSTRUCTOR, GRADER = f"{PREFIX}instructor", f"{PREFIX}grader"
STUDENTS = [f"{PREFIX}student1", f"{PREFIX}student2"]
ARTIFACTS = ROOT / "tests" / "artifacts" / "class"
CHP = ROOT / ".tools" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"


def _chp() -> str | None:
    return os.environ.get("HANDWRITTEN_CHP") or shutil.which("configurable-http-proxy") or (
        str(CHP) if CHP.exists() else None)


class Hub:
    def __init__(self, url: str, folder: Path, ready_s: float):
        self.url, self.folder, self.ready_s = url, folder, ready_s
        self.course = folder / "course"
        self.exchange = folder / "exchange" / COURSE_ID
        env_python = folder / "env" / "bin" / "python"
        self.python = str(env_python if env_python.exists() else Path(sys.executable))

    def as_user(self, user: str, *command: str, check: bool = True, cwd: Path | None = None):
        result = subprocess.run(["runuser", "-u", user, "--", *command], cwd=cwd or self.course,
                                capture_output=True, text=True)
        if check and result.returncode:
            raise AssertionError(f"{user}: {' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def nbgrader(self, *args: str):
        """An nbgrader command as the grader, in the course folder (what the formgrader's buttons run)."""
        return self.as_user(GRADER, self.python, "-m", "nbgrader", *args)


def untested(why: str):
    """Skip, saying why; with CI set (where `make test` installs what the class needs, as root), fail."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, yet the class loop cannot run: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def hub():
    if os.geteuid() != 0 or not shutil.which("runuser") or not shutil.which("useradd"):
        untested("handwritten class creates Unix accounts: run the test as root")
    if not _chp():
        untested("configurable-http-proxy not installed: `make class` installs it (npm)")
    remove_accounts()  # a crashed run's: every run starts from empty homes
    folder = Path(tempfile.mkdtemp(prefix="handwritten-class-", dir="/tmp"))
    folder.chmod(0o755)  # every account's server reads its Jupyter config from here
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "handwritten.cli", "class", "--dir", str(folder), "--prefix", PREFIX,
         "--password", PASSWORD, "--port", str(port), "--formgrader-port", str(free_port())],
        cwd=ROOT, env=dict(os.environ, HANDWRITTEN_CHP=_chp()), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    output = []
    try:
        for line in process.stdout:
            output.append(line)
            if "is up at" in line:
                break
        else:
            raise AssertionError("handwritten class did not start:\n" + "".join(output)
                                 + _tail(folder / "hub" / "jupyterhub.log"))
        ready = time.monotonic() - started
        print(f"\nhandwritten class: a usable hub after {ready:.1f} s")
        yield Hub(f"http://127.0.0.1:{port}/", folder, ready)
    finally:
        stopping = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)  # what Ctrl-C does
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
        print(f"handwritten class: stopped {time.monotonic() - stopping:.1f} s after Ctrl-C")
        left = _processes_of([INSTRUCTOR, GRADER, *STUDENTS])
        shutil.rmtree(folder, ignore_errors=True)
        assert not left, f"still running after Ctrl-C: {left}"
        remove_accounts()


def remove_accounts() -> None:
    """The test's own accounts (prefix hwtest-) and their homes."""
    import pwd

    for user in (INSTRUCTOR, GRADER, *STUDENTS):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            subprocess.run(["userdel", "--remove", user], capture_output=True)


def _tail(path: Path, lines: int = 60) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _processes_of(users: list[str]) -> list[str]:
    import pwd

    uids = set()
    for user in users:
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam(user).pw_uid)
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and entry.stat().st_uid in uids:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")[:120]
                found.append(f"{entry.name}: {command!r}")
    return found


def test_the_hub_config_reads_as_documented(tmp_path, monkeypatch):
    """Without root: the one config file loads, and says what the class relies on."""
    from traitlets.config.loader import PyFileConfigLoader

    monkeypatch.setenv("HANDWRITTEN_CLASS_DIR", str(tmp_path))
    monkeypatch.setenv("HANDWRITTEN_STUDENTS", "s1 s2")
    config_file = ROOT / "deploy" / "jupyterhub" / "jupyterhub_config.py"
    c = PyFileConfigLoader(config_file.name, path=str(config_file.parent)).load_config()
    assert c.JupyterHub.authenticator_class == "pam" and c.JupyterHub.spawner_class == "localprocess"
    assert c.Authenticator.allowed_users == {"s1", "s2", "hw-instructor"}
    (service,) = c.JupyterHub.services
    assert service["name"] == COURSE_ID and service["user"] == "hw-grader"
    (role,) = c.JupyterHub.load_roles
    assert role["users"] == ["hw-instructor"] and f"read:services!service={COURSE_ID}" in role["scopes"]
    assert set(role["scopes"]) <= set(c.Spawner.server_token_scopes)
    student = tmp_path / "jupyter" / "student"
    page = json.loads((student / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"]["@jupyter/nbgrader:formgrader"] is True
    server = json.loads((student / "jupyter_server_config.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"]["nbgrader.server_extensions.formgrader"] is False
    assert "frame-ancestors 'self'" in (tmp_path / "jupyter" / "formgrader" / "jupyter_server_config.py").read_text()
    assert "PrivateSubmit" in (student / "nbgrader_config.py").read_text()
    assert (tmp_path / "exchange").stat().st_mode & 0o777 == 0o777


def submissions(course: Path) -> tuple[dict, dict]:
    """The instructor's answers, and the same with a flipped kernel in corr2d (a mutant of cases.toml)."""
    from handwritten.grading import Course
    from handwritten.grading.cases import load_cases, submission

    course = Course(ROOT)
    flipped = next(case for case in load_cases(course, LESSON) if case.name == "flipped-kernel")
    return submission(course, LESSON), submission(course, LESSON, flipped.cells)


def login(browser, hub: Hub, user: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(hub.url + "hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(f"/user/{user}/lab"), timeout=90_000)
    page.locator(".jp-LabShell").wait_for(timeout=60_000)
    return page


def api(page, hub: Hub, user: str, method: str, path: str, **kwargs):
    """A request from the user's browser session to their own server (its cookies, its XSRF token)."""
    xsrf = next((c["value"] for c in page.context.cookies() if c["name"] == "_xsrf"
                 and c.get("path", "/").startswith(f"/user/{user}")), None)
    xsrf = xsrf or next(c["value"] for c in page.context.cookies() if c["name"] == "_xsrf")
    response = page.request.fetch(hub.url + f"user/{user}/" + path.lstrip("/"), method=method,
                                  headers={"X-XSRFToken": xsrf}, **kwargs)
    return response


def formgrader_button(formgrader, column: str, success: str) -> None:
    """Click the formgrader's button in lesson 04's row of Manage Assignments (its ``column``: release, collect,
    release-feedback), as an instructor does, and wait for the message it answers with."""
    from playwright.sync_api import expect

    row = formgrader.locator("tr", has=formgrader.locator("td.name", has_text=LESSON))
    row.locator(f"td.{column} a").click()
    modal = formgrader.locator(".modal:visible")
    expect(modal.locator(".modal-title")).to_have_count(1, timeout=120_000)
    text = modal.inner_text()
    assert success in text, f"the formgrader's {column} button answered: {text[:1500]}"
    modal.locator("button[data-dismiss=modal]").first.click()
    expect(formgrader.locator(".modal:visible")).to_have_count(0, timeout=10_000)
    row.scroll_into_view_if_needed()  # for the screenshot that follows


def open_assignments_panel(page):
    """Nbgrader → Assignment List; a student's menu has no Formgrader or Course List, and no Create Assignment."""
    from playwright.sync_api import expect

    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    menu = page.locator(".lm-Menu-itemLabel")
    expect(menu.filter(has_text="Assignment List")).to_have_count(1)
    for hidden in ("Formgrader", "Course List"):
        expect(menu.filter(has_text=hidden)).to_have_count(0)
    expect(page.get_by_text("Create Assignment")).to_have_count(0)
    menu.filter(has_text="Assignment List").click()
    page.get_by_text("Released assignments").first.wait_for(timeout=30_000)


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_a_class_round_trip_in_chromium(hub: Hub):
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        untested("Debian's chromium is not installed: `make browser`")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    loop_started = time.monotonic()
    timings = {}

    def mark(what: str):
        timings[what] = round(time.monotonic() - loop_started, 1)

    right, wrong = submissions(hub.course)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            # -- the instructor releases lesson 04 and sees the formgrader (a hub service, in its own page)
            teacher = login(browser, hub, INSTRUCTOR)
            # the formgrader as JupyterLab shows it: in a frame, which its content-security policy must allow
            teacher.goto(hub.url + f"services/{COURSE_ID}/lab?formgrader=true")
            formgrader = teacher.frame_locator("iframe").first
            expect(formgrader.get_by_text("Manage Assignments").first).to_be_visible(timeout=60_000)
            expect(formgrader.get_by_text(LESSON).first).to_be_visible(timeout=30_000)  # the course's lessons
            formgrader_button(formgrader, "release", f"Successfully released '{LESSON}'")
            teacher.screenshot(path=str(ARTIFACTS / "01-instructor-formgrader-released.png"))
            mark("released")

            # -- two students log in, see lesson 04 under Assignments, fetch it and submit
            pages = {}
            for user, notebook in zip(STUDENTS, (right, wrong)):
                page = pages[user] = login(browser, hub, user)
                # no instructor tools: no Formgrader or Create Assignment, and the formgrader service refuses them
                assert api(page, hub, user, "GET", "formgrader").status == 404
                service = page.request.get(hub.url + f"services/{COURSE_ID}/formgrader")
                assert service.status == 403 or "nbgrader formgrade" not in service.text()
                open_assignments_panel(page)
                expect(page.get_by_text(LESSON).first).to_be_visible(timeout=30_000)
                page.screenshot(path=str(ARTIFACTS / f"02-{user}-assignments.png"))
                page.get_by_role("button", name="Fetch", exact=True).click()  # the Assignments panel's buttons
                expect(page.get_by_role("button", name="Submit", exact=True)).to_be_visible(timeout=30_000)
                # the student's answers, saved as JupyterLab saves them
                saved = api(page, hub, user, "PUT", f"api/contents/{LESSON}/{LESSON}.ipynb",
                            data=json.dumps({"type": "notebook", "format": "json", "content": notebook}))
                assert saved.ok, saved.text()
                page.get_by_role("button", name="Submit", exact=True).click()
                expect(page.get_by_role("button", name="Fetch Feedback")).to_be_visible(timeout=30_000)
                page.screenshot(path=str(ARTIFACTS / f"02-{user}-submitted.png"))
            mark("submitted")

            # -- a student cannot read the other's work: through the hub, or through the exchange as a Unix user
            other_page = pages[STUDENTS[1]]
            foreign = other_page.request.get(hub.url + f"user/{STUDENTS[0]}/api/contents/{LESSON}")
            assert foreign.status in (403, 404) or LESSON not in foreign.text(), foreign.status
            inbound = hub.exchange / "inbound"
            assert inbound.stat().st_mode & stat.S_ISVTX, "inbound/ is not sticky: StickyRelease did not release"
            first = next(d for d in inbound.iterdir() if d.name.startswith(STUDENTS[0] + "+"))
            for command in (["ls", str(inbound)], ["ls", str(first)], ["cat", str(first / f"{LESSON}.ipynb")],
                            ["ls", f"/home/{STUDENTS[0]}"], ["touch", str(first / "planted.txt")],
                            ["sh", "-c", f"echo '{{}}' > {shlex.quote(str(first / f'{LESSON}.ipynb'))}"],
                            ["mv", str(first), str(inbound / f"{STUDENTS[1]}+{LESSON}+moved")]):
                refused = hub.as_user(STUDENTS[1], *command, check=False)
                assert refused.returncode != 0, f"{STUDENTS[1]} could run {command}:\n{refused.stdout[:300]}"
            # nor pass off work as the other's: a folder in their name, newer than their submission (older than the
            # forger's own), holding the wrong answers; nbgrader's collect would take it as the other's newest
            claimed = datetime.strptime(first.name.rsplit("+", 3)[2], "%Y-%m-%d %H:%M:%S.%f %Z")
            stamp = (claimed + timedelta(microseconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
            forged = inbound / f"{STUDENTS[0]}+{LESSON}+{stamp}+forged"
            decoy = hub.folder / "forged.ipynb"
            decoy.write_text(json.dumps(dict(wrong, metadata=dict(wrong["metadata"], forged=True))))
            decoy.chmod(0o644)
            hub.as_user(STUDENTS[1], "mkdir", str(forged))
            hub.as_user(STUDENTS[1], "cp", str(decoy), str(forged / f"{LESSON}.ipynb"))
            for name, text in (("timestamp.txt", stamp), ("submission_secret.txt", "x")):
                hub.as_user(STUDENTS[1], "sh", "-c", f"echo '{text}' > {shlex.quote(str(forged / name))}")
            # nor alter it through the hub, in the other's server
            altered = other_page.request.put(hub.url + f"user/{STUDENTS[0]}/api/contents/{LESSON}/{LESSON}.ipynb",
                                             data=json.dumps({"type": "notebook", "format": "json", "content": wrong}))
            assert not altered.ok or "last_modified" not in altered.text(), altered.status

            # -- the instructor collects in the formgrader; `handwritten grade` grades; feedback goes back
            formgrader_button(formgrader, "collect", f"Successfully collected submissions of '{LESSON}'")
            teacher.screenshot(path=str(ARTIFACTS / "04-instructor-collected.png"))
            mark("collected")
            out = hub.folder / "grades.csv"
            graded = subprocess.run(
                [sys.executable, "-m", "handwritten.cli", "--course", str(hub.course), "grade",
                 str(hub.course / "autograders" / "submitted"), "--lesson", LESSON, "--workers", "2",
                 "--out", str(out)], cwd=hub.course, capture_output=True, text=True, timeout=400)
            assert graded.returncode == 0, graded.stdout + graded.stderr
            mark("graded")
            rows = {row["student"]: row for row in csv.DictReader(out.open())}
            scores = {s: (float(rows[s]["score"]), float(rows[s]["max_score"])) for s in STUDENTS}
            assert scores[STUDENTS[0]][0] == scores[STUDENTS[0]][1] > 0, scores  # their own work, not the forgery
            submitted = hub.course / "autograders" / "submitted"
            forgery = {s: json.loads((submitted / s / LESSON / f"{LESSON}.ipynb").read_text())["metadata"].get("forged")
                       for s in STUDENTS}
            assert forgery == {STUDENTS[0]: None, STUDENTS[1]: None}, forgery  # the forger's, and older than theirs
            assert scores[STUDENTS[1]][0] < scores[STUDENTS[1]][1], scores
            subprocess.run(["chown", "-R", f"{GRADER}:{GRADER}", str(hub.course)], check=True)
            teacher.reload()  # the formgrader's page lists the submissions only when it loads
            formgrader = teacher.frame_locator("iframe").first
            formgrader_button(formgrader, "release-feedback", f"Successfully released feedback of '{LESSON}'")
            mark("feedback returned")

            # -- each student fetches and reads their own feedback, and cannot list or read the other's
            for user in STUDENTS:
                page = pages[user]
                page.bring_to_front()
                page.get_by_role("button", name="Fetch Feedback").first.click()  # in their Assignments panel
                expect(page.get_by_text("(view feedback)").first).to_be_visible(timeout=60_000)
                page.screenshot(path=str(ARTIFACTS / f"03-{user}-feedback-fetched.png"))
                listing = api(page, hub, user, "GET", f"api/contents/{LESSON}/feedback").json()
                stamp = listing["content"][0]["name"]
                page.goto(hub.url + f"user/{user}/files/{LESSON}/feedback/{stamp}/{LESSON}.html")
                score = scores[user][0]
                # the whole notebook's score (the written answers wait for the instructor: 0 so far)
                expect(page.locator("body")).to_contain_text(f"{LESSON} (Score: {score:.1f} / ", timeout=30_000)
                page.screenshot(path=str(ARTIFACTS / f"03-{user}-feedback.png"), full_page=False)
            mark("feedback seen")
            feedback = hub.exchange / "feedback"
            for command in (["ls", str(feedback)], ["touch", str(feedback / "planted.html")]):
                refused = hub.as_user(STUDENTS[1], *command, check=False)
                assert refused.returncode != 0, f"{STUDENTS[1]} could run {command} on the returned feedback"
            mine = {p.name for p in (Path(f"/home/{STUDENTS[1]}") / LESSON / "feedback").rglob("*.html")}
            assert mine == {f"{LESSON}.html"}
        finally:
            browser.close()
    total = time.monotonic() - loop_started
    print(f"class loop: {total:.1f} s ({timings}); hub ready in {hub.ready_s:.1f} s")
    (ARTIFACTS / "timings.json").write_text(json.dumps({"hub_ready_s": round(hub.ready_s, 1),
                                                       "loop_s": round(total, 1), "marks": timings}, indent=2))
