"""Hostile and broken submissions, graded in one batch beside two honest students, through the real
`handwritten grade` with two workers and the sandbox (bubblewrap, which `make test` installs under CI).

For each: the batch completes; its row says what happened (and flags a cheat, which never collects
the points it cheated for); the honest students get exactly what a clean run gives them; no file
outside a submission's own working folder changes; every submitted file is preserved byte for byte.
"""

from __future__ import annotations

import csv
import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from handwritten.grading import Course
from handwritten.grading.cases import graded_tests, load_cases, solution_sources, submission
from handwritten.grading.sandbox import bwrap_problem, pids_problem

from conftest import copy_course, without_demos

CONV = "04-convolutions-by-hand"
TIMEOUT = 20  # seconds per cell in this batch: the infinite loop and the sleep each cost this much
CORR2D_TESTS = {"corr2d_test", "corr2d_hidden"}
WRONG = "def corr2d(X, K):\n    return torch.zeros(X.shape[0] - K.shape[0] + 1, X.shape[1] - K.shape[1] + 1)\n"
SCRATCH = {"autograded", "submitted", "feedback", "gradebook.db", "gradebook.db-journal", "grades.csv",
           "grading.log"}

if bwrap_problem() is not None:
    if os.environ.get("CI"):
        pytest.fail(f"bubblewrap is needed for the adversarial suite ({bwrap_problem()}): `make test` "
                    f"installs it under CI; run `make sandbox` as root", pytrace=False)
    pytest.skip(f"bubblewrap unavailable ({bwrap_problem()}): `make sandbox` installs it", allow_module_level=True)


def hostile(course: Course, root: Path, port: int, mutant) -> dict[str, object]:
    """Student id -> notebook (or raw text). Each cheat writes what it managed into report.txt in its
    working folder, so the test can read what it saw."""
    good = solution_sources(course, CONV)["corr2d"] + "\n"

    def corr2d(code: str):  # the lesson's demonstrations left out: only its exercises and their tests run
        return without_demos(submission(course, CONV, {"corr2d": code}))

    def report(body: str) -> str:
        return ("try:\n" + "".join(f"    {line}\n" for line in body.splitlines())
                + "    seen = 'got it'\nexcept Exception as error:\n    seen = f'denied: {error!r}'\n"
                + "open('report.txt', 'a').write(seen + '\\n')\n")

    secret = root / "solutions" / CONV / f"{CONV}.ipynb"
    gradebook = root / "autograders" / "gradebook.db"
    other = root / "autograders" / "autograded" / "honest" / CONV
    nbs: dict[str, object] = {
        "honest": corr2d(good),
        "honest-mutant": without_demos(submission(course, CONV, mutant.cells)),
        "infinite-loop": corr2d(good + "while True:\n    pass\n"),
        "memory-bomb": corr2d(good + "blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 1024**2))\n"),
        "fork-bomb": corr2d(good + "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(3600)\n"),
        "os-exit": corr2d("import os\nos._exit(1)\n"),
        "huge-print": corr2d(good + "print('x' * 100_000_000)\n"),
        "allclose-patched": corr2d(WRONG + "torch.allclose = lambda *a, **k: True\n"
                                   "torch.Tensor.__eq__ = lambda *a, **k: True\n"),
        "checks-patched": corr2d(WRONG + "import types\nimport handwritten.checks.conv as real\n"
                                 "real.corr2d = real.corr2d_hidden = lambda *a, **k: print('✓')\n"
                                 "check = types.SimpleNamespace(corr2d=real.corr2d, corr2d_hidden=real.corr2d)\n"),
        "reads-solutions": corr2d(report(f"source = open({str(secret)!r}).read()\n"
                                         "exec(source[source.index('def corr2d'):].split('###')[0])")
                                  + report(f"open({str(gradebook)!r}, 'rb').read(100)")),
        "writes-elsewhere": corr2d(good + report(f"open({str(other / 'pwned.txt')!r}, 'w').write('x')")
                                   + report(f"open({str(gradebook)!r}, 'ab').write(b'x')")
                                   + report(f"open({str(secret)!r}, 'a').write('x')")),
        "network": corr2d(good + report(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)")
                          + report("import socket\nsocket.create_connection(('pypi.org', 443), timeout=5)")),
        "sleeps": corr2d(good + "import time\ntime.sleep(10**6)\n"),
        "hidden-marker": corr2d(good + "# ### BEGIN HIDDEN TESTS\n# ### END HIDDEN TESTS\n"),
        "corrupt-json": '{"cells": [ this is not json',
        "empty-file": "",
        "other-lesson": (root / "lessons" / "01-pixels-and-tensors" / "01-pixels-and-tensors.ipynb").read_text(),
    }
    deleted = corr2d(good)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "corr2d_test"]
    nbs["deleted-test"] = deleted
    edited = corr2d(WRONG)
    for cell in edited.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "corr2d_test":
            cell.source = "pass  # nothing to check here"
    nbs["edited-test"] = edited
    split = corr2d(good)
    test_cell = next(c for c in split.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "corr2d_test")
    split.cells.insert(split.cells.index(test_cell), nbformat.from_dict(
        {**test_cell, "id": "split-copy", "source": "# the top half of a split cell\n"}))
    nbs["duplicated-ids"] = split
    stale = corr2d(good)
    stale.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"version_major": 2}}
    nbs["stale-widgets"] = stale
    return nbs


def tree_digest(root: Path, skip: set[str] = frozenset()) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not skip & set(p.relative_to(root).parts)}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    if os.environ.get("CI"):
        assert pids_problem() is None, pids_problem()  # the fork bomb needs the process limit
    elif pids_problem() is not None:
        pytest.skip(pids_problem())
    base = tmp_path_factory.mktemp("adversarial")
    course = Course(copy_course(base / "course"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(1)
    connections = []

    def accept():
        while not stop.is_set():
            try:
                connections.append(listener.accept())
            except (TimeoutError, OSError):
                pass

    stop = threading.Event()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    mutant = next(c for c in load_cases(course, CONV) if c.kind == "mutant")
    source = base / "submissions"
    for student, nb in hostile(course, course.root, listener.getsockname()[1], mutant).items():
        target = source / student / f"{CONV}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(nb if isinstance(nb, str) else nbformat.writes(nb))
    before = tree_digest(source), tree_digest(course.root, SCRATCH)
    out = base / "grades.csv"
    done = subprocess.run([sys.executable, "-m", "handwritten.cli", "--course", str(course.root), "grade", str(source),
                           "--out", str(out), "--workers", "2", "--timeout", str(TIMEOUT)],
                          capture_output=True, text=True, timeout=1500)
    stop.set()
    thread.join()
    listener.close()
    with open(out, newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    yield {"done": done, "rows": rows, "course": course, "source": source, "before": before, "mutant": mutant,
           "after": (tree_digest(source), tree_digest(course.root, SCRATCH)), "connections": connections,
           "tests": graded_tests(course, CONV)}


def report(batch, student) -> str:
    path = batch["course"].path("autograded") / student / CONV / "report.txt"
    return path.read_text() if path.exists() else ""


def points(row, tests) -> float:
    assert all(row[t] != "" for t in tests), (row["student"], row["status"])
    return sum(float(row[t]) for t in tests)


def test_the_batch_completes_and_every_submission_has_a_row(batch):
    assert batch["done"].returncode == 0, batch["done"].stdout[-3000:] + batch["done"].stderr[-3000:]
    assert len(batch["rows"]) == 21 and all(row["status"] for row in batch["rows"].values())
    assert {row["sandbox"] for row in batch["rows"].values()} == {"bwrap"}


def test_honest_students_get_what_a_clean_run_gives(batch):
    rows, tests = batch["rows"], batch["tests"]
    assert (rows["honest"]["status"], rows["honest"]["notes"], rows["honest"]["integrity_flags"]) == ("graded", "", "")
    assert {t: float(rows["honest"][t]) for t in tests} == tests
    mutant = rows["honest-mutant"]
    assert {t for t in tests if float(mutant[t]) != tests[t]} == set(batch["mutant"].fails)


def test_submissions_and_everything_outside_the_working_folders_are_untouched(batch):
    assert batch["after"][0] == batch["before"][0]   # submissions, byte for byte
    assert batch["after"][1] == batch["before"][1]   # solutions/, lessons/, the course config
    autograded = batch["course"].path("autograded")
    assert not list(autograded.rglob("pwned.txt"))
    other, gradebook, solutions = report(batch, "writes-elsewhere").splitlines()
    assert other.startswith("denied") and solutions.startswith("denied"), (other, solutions)
    # the gradebook's path, if the sandbox lets it be written at all, is a scratch file in its own /tmp:
    # the real one is still a whole SQLite file (an appended byte would break its page count)
    real = batch["course"].root / "autograders" / "gradebook.db"
    assert real.stat().st_size % sqlite3.connect(real).execute("PRAGMA page_size").fetchone()[0] == 0, gradebook


def test_resource_bombs_are_contained_and_explained(batch):
    rows = batch["rows"]
    for student, reason in [("infinite-loop", "time limit"), ("sleeps", "time limit"),
                            ("fork-bomb", "limit on processes"), ("huge-print", "output was cut")]:
        assert rows[student]["status"] == "graded" and reason in rows[student]["notes"], (student, rows[student])
        worth = sum(batch["tests"][t] for t in CORR2D_TESTS)
        assert points(rows[student], CORR2D_TESTS) == worth, (student, rows[student]["notes"])  # its corr2d is right
    # it gets a MemoryError at 2 GB; holding on to it, the kernel may then be killed by what follows
    assert "out of memory" in rows["memory-bomb"]["notes"], rows["memory-bomb"]
    assert rows["os-exit"]["status"] == "error"
    assert rows["os-exit"]["notes"] == "the kernel died while running the notebook (a cell crashed or exited Python)"
    graded = batch["course"].path("autograded") / "huge-print" / CONV / f"{CONV}.ipynb"
    assert graded.stat().st_size < 5_000_000


@pytest.mark.parametrize("student,flag", [
    ("allclose-patched", "replaces torch.allclose"),
    ("checks-patched", "redefines 'check'"),
    ("edited-test", "locked cell was edited"),
])
def test_cheats_are_flagged_and_never_collect_the_points(batch, student, flag):
    row = batch["rows"][student]
    assert row["status"] == "graded", row["notes"]
    assert flag in row["integrity_flags"], row["integrity_flags"]
    assert points(row, CORR2D_TESTS) == 0
    corr2d_worth = sum(batch["tests"][t] for t in CORR2D_TESTS)
    assert float(row["score"]) == sum(batch["tests"].values()) - corr2d_worth  # every other test still counts


def test_the_sandbox_hides_the_course_and_the_network(batch):
    rows = batch["rows"]
    seen = report(batch, "reads-solutions")
    assert seen.count("denied") == 2 and "got it" not in seen, seen
    assert points(rows["reads-solutions"], CORR2D_TESTS) == 0
    assert "the grader's files" in rows["reads-solutions"]["integrity_flags"]
    seen = report(batch, "network")
    assert seen.count("denied") == 2 and "got it" not in seen, seen
    assert batch["connections"] == []


def test_broken_notebooks_are_recorded_with_their_reason(batch):
    rows = batch["rows"]
    for student, why in [("corrupt-json", "not a readable notebook"), ("empty-file", "not a readable notebook"),
                         ("other-lesson", "this is the notebook of lesson 01-pixels-and-tensors")]:
        assert rows[student]["status"] == "error" and rows[student]["notes"].startswith(why), rows[student]
    full = sum(batch["tests"].values())
    assert rows["duplicated-ids"]["status"] == "graded"
    assert rows["duplicated-ids"]["notes"] == "1 duplicated cell id(s) ignored (split or copied cells)"
    for student in ("duplicated-ids", "stale-widgets", "hidden-marker", "deleted-test"):
        assert float(rows[student]["score"]) == full, (student, rows[student]["notes"])
        assert rows[student]["feedback"] and Path(rows[student]["feedback"]).is_file(), student
    assert "hidden-tests marker" in rows["hidden-marker"]["integrity_flags"]
    assert "locked cell was deleted" in rows["deleted-test"]["integrity_flags"]
