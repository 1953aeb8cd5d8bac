"""Kernels that attack the grader from inside the sandbox, graded in one batch beside two honest students, through
the real `handwritten grade` with two workers and bubblewrap.

Each writes its hostile code after a correct ``corr2d`` (where the kernel lives on, corr2d's points show the grader
went on): links left in its working folder to ``solutions/``, the gradebook and another student's notebook; its own
notebook replaced by a link to the instructor's; memory taken as shared maps, and as files in its RAM-backed
folders; its folder filled with many files; its own file descriptors 1 and 2 written; "MemoryError" claimed on
stderr before dying; MemoryError raised by hand; the kernel's displayhook broken, so that it answers nothing more.

Nothing outside a submission's own working copy changes, byte or mode; the honest students get what a clean run
gives; every bound holds, and each row says what the grader saw, never what the kernel wrote.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from test_forgery import up_to_corr2d

from handwritten.grading import Course, release
from handwritten.grading.cases import graded_tests, load_cases, solution_sources, submission
from handwritten.grading.sandbox import Sandbox, bwrap_problem, memory_problem, reach_problem

from conftest import copy_course, without_demos

CONV = "04-convolutions-by-hand"
TIMEOUT = 20  # seconds per cell: what the kernel that stops answering costs, once
CORR2D_TESTS = {"corr2d_test", "corr2d_hidden"}
HIDDEN = "corr2d_hidden"
SCRATCH = {"autograded", "submitted", "feedback", "gradebook.db", "gradebook.db-journal", "grading.log",
           "grades.csv", "grades-items.csv", "grades-items.png"}
MARKER = "fd-marker-5c1e9a"
LIMITS = Sandbox()
MB = 1024**2

if bwrap_problem() is not None:
    if os.environ.get("CI"):
        pytest.fail(f"bubblewrap is needed for the adversarial suite ({bwrap_problem()})", pytrace=False)
    pytest.skip(f"bubblewrap unavailable ({bwrap_problem()}): `make sandbox` installs it", allow_module_level=True)

FILL = """
written = 0
for folder in {folders!r}:
    try:
        for i in range({count}):
            with open(f'{{folder}}/fill-{{i}}', 'wb') as f:
                f.write(bytes({size}))
            written += {size}
    except OSError as error:
        print('errno', error.errno)
print('WROTE', written)
"""


def hostile(course: Course, root: Path, source: Path) -> dict[str, nbformat.NotebookNode]:
    good = solution_sources(course, CONV)["corr2d"] + "\n"
    secret = root / "solutions" / CONV / f"{CONV}.ipynb"
    links = {"answers.txt": secret, "solutions": root / "solutions", "gradebook.db": root / "autograders" /
             "gradebook.db", "friend.txt": source / "honest" / f"{CONV}.ipynb", "lessons": root / "lessons"}
    cases = {
        "links": "import os\n" + "".join(f"os.symlink({str(t)!r}, {n!r})\n" for n, t in links.items()),
        "notebook-replaced": f"import os\nos.symlink({str(secret)!r}, {CONV + '.ipynb'!r})\n",
        "shared-mmap-bomb": "import mmap\nm = mmap.mmap(-1, 3 * 1024**3, flags=mmap.MAP_SHARED)\n"
                            "for i in range(0, len(m), 4096):\n    m[i] = 1\n",
        "tmp-bomb": FILL.format(folders=["/tmp"], count=48, size=64 * MB),  # 3 GB asked
        "files-everywhere": FILL.format(folders=["/tmp", "/dev/shm", "."], count=48, size=64 * MB),
        "disk-filler": FILL.format(folders=["."], count=250, size=10 * MB),  # 2.5 GB in files under RLIMIT_FSIZE
        "fd-writes": f"import os, subprocess\nos.write(1, b'{MARKER}-1\\n')\nos.write(2, b'{MARKER}-2\\n')\n"
                     f"subprocess.run(['echo', '{MARKER}-child'])\nos.write(1, b'y' * 5_000_000)\n"
                     f"os.write(1, b'\\n{MARKER}-last\\n')\n",
        "claims-memory-error": "import os, sys, time\nsys.stderr.write('MemoryError\\n')\nsys.stderr.flush()\n"
                               "os.write(2, b'MemoryError\\n')\ntime.sleep(1)  # its stderr has reached the grader\n"
                               "os._exit(1)\n",
        "raises-memory-error": "raise MemoryError('raised by hand')\n",
    }
    nbs = {student: up_to_corr2d(submission(course, CONV, {"corr2d": good + code})) for student, code in cases.items()}
    nbs["honest"] = without_demos(submission(course, CONV))
    mutant = next(c for c in load_cases(course, CONV) if c.kind == "mutant")
    nbs["honest-mutant"] = without_demos(submission(course, CONV, mutant.cells))
    hooked = up_to_corr2d(submission(course, CONV))  # a cell after corr2d's tests breaks the kernel
    last = next(i for i, c in enumerate(hooked.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == HIDDEN)
    hooked.cells.insert(last + 1, nbformat.v4.new_code_cell("get_ipython().displayhook = lambda *a, **k: None\n"))
    nbs["displayhook"] = hooked
    return nbs


def tree_digest(root: Path, skip: set[str] = frozenset()) -> dict[str, tuple[int, str]]:
    """Every entry under ``root`` (but ``skip``'s): its mode, and its bytes' hash or its link's target."""
    found = {}
    for path in sorted(root.rglob("*")):
        if skip & set(path.relative_to(root).parts):
            continue
        info = path.lstat()
        what = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else b""
        found[str(path.relative_to(root))] = (info.st_mode, hashlib.sha256(os.fsencode(what)).hexdigest())
    return found


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    base = tmp_path_factory.mktemp("adversarial-kernel")
    course = Course(copy_course(base / "course"))
    source = base / "submissions"
    for student, nb in hostile(course, course.root, source).items():
        target = source / student / f"{CONV}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    gradebook = course.root / "autograders" / "gradebook.db"
    out = base / "grades.csv"
    release(course, [CONV])  # the gradebook exists before the batch: its mode is checked
    before = tree_digest(source), tree_digest(course.root, SCRATCH), gradebook.stat().st_mode
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "handwritten.cli", "--course", str(course.root), "grade", str(source),
                           "--out", str(out), "--workers", "2", "--timeout", str(TIMEOUT)],
                          capture_output=True, text=True, timeout=1500)
    seconds = time.monotonic() - start
    with open(out, newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    yield {"done": done, "rows": rows, "course": course, "source": source, "before": before, "seconds": seconds,
           "after": (tree_digest(source), tree_digest(course.root, SCRATCH), gradebook.stat().st_mode),
           "tests": graded_tests(course, CONV),
           "mutant": next(c for c in load_cases(course, CONV) if c.kind == "mutant")}


def points(row, tests) -> float:
    assert all(row[t] != "" for t in tests), (row["student"], row["status"], row["notes"])
    return sum(float(row[t]) for t in tests)


def printed(batch, student: str) -> str:
    """What the cell holding the student's code printed, in its graded notebook."""
    nb = nbformat.read(batch["course"].path("autograded") / student / CONV / f"{CONV}.ipynb", as_version=4)
    return "".join(str(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []) if "WROTE" in str(o))


def ending(batch, student: str) -> dict:
    return json.loads((batch["course"].path("autograded") / student / f"{CONV}.ending.json").read_text())


def size(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*"))


def test_the_batch_completes_in_time_and_the_honest_get_what_a_clean_run_gives(batch):
    done, rows, tests = batch["done"], batch["rows"], batch["tests"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(rows) == 12 and {row["sandbox"] for row in rows.values()} == {"bwrap"}
    assert (rows["honest"]["status"], rows["honest"]["notes"], rows["honest"]["integrity_flags"]) == ("graded", "", "")
    assert {t: float(rows["honest"][t]) for t in tests} == tests
    mutant = rows["honest-mutant"]
    assert {t for t in tests if float(mutant[t]) != tests[t]} == set(batch["mutant"].fails)
    print(f"batch: {batch['seconds']:.0f} s")
    assert batch["seconds"] < 240  # about 90 s on an idle machine with two cores


def test_nothing_outside_a_working_copy_changes_and_no_link_is_followed(batch):
    course, rows = batch["course"], batch["rows"]
    assert batch["after"][0] == batch["before"][0]  # the submissions, every other student's included: bytes and modes
    assert batch["after"][1] == batch["before"][1]  # solutions/, lessons/, the course config: bytes and modes
    assert batch["after"][2] == batch["before"][2]  # the gradebook's mode (its rows are grading's to write)
    grading = course.root / "autograders"
    assert not [p for p in grading.rglob("*") if p.is_symlink()]
    for student in ("links", "notebook-replaced"):
        assert rows[student]["status"] == "graded", rows[student]
        assert points(rows[student], CORR2D_TESTS) == sum(batch["tests"][t] for t in CORR2D_TESTS)
        feedback = {p.name for p in (grading / "feedback" / student / CONV).iterdir()}
        assert feedback == {f"{CONV}.html"}, feedback  # nothing of the links' targets is copied into it
        assert {p.name for p in (grading / "autograded" / student / CONV).iterdir()} == {f"{CONV}.ipynb"}
    for name in ("answers.txt (a link)", "solutions (a link)", "gradebook.db (a link)", "friend.txt (a link)"):
        assert name in rows["links"]["notes"], rows["links"]["notes"]
    assert f"{CONV}.ipynb (a link)" in rows["notebook-replaced"]["notes"]
    graded = nbformat.read(grading / "autograded" / "notebook-replaced" / CONV / f"{CONV}.ipynb", as_version=4)
    assert graded.cells and not (grading / "autograded" / "notebook-replaced" / CONV / f"{CONV}.ipynb").is_symlink()


def test_memory_however_taken_stays_within_the_bound_and_the_row_says_what_was_seen(batch):
    if memory_problem() is not None:
        pytest.skip(memory_problem())
    rows, memory = batch["rows"], LIMITS.memory
    for student in ("shared-mmap-bomb", "files-everywhere"):  # 3 GB asked: the kernel is killed at 2 GB
        seen = ending(batch, student)
        assert seen["out_of_memory"] and seen["memory_limit"] == memory >= seen["memory_peak"], seen
        assert rows[student]["status"] == "error", rows[student]
        assert "ran out of memory (the sandbox allows 2 GB)" in rows[student]["notes"], rows[student]["notes"]
    # its word is no evidence: "MemoryError" on stderr, then os._exit(1); MemoryError raised by hand
    claims = rows["claims-memory-error"]
    assert claims["notes"] == "the kernel died while running the notebook (a cell crashed or exited Python)", claims
    raised = rows["raises-memory-error"]
    assert raised["status"] == "graded" and "out of memory" not in raised["notes"], raised
    below = "a cell raised MemoryError below the sandbox's memory limit (the kernel's memory peaked at"
    assert below in raised["notes"], raised["notes"]
    assert points(raised, CORR2D_TESTS) == sum(batch["tests"][t] for t in CORR2D_TESTS)


def test_files_stay_within_their_bounds_and_little_is_kept(batch):
    rows, course = batch["rows"], batch["course"]
    worth = sum(batch["tests"][t] for t in CORR2D_TESTS)
    private = ("tmp-bomb", "disk-filler") if reach_problem() is None else ("tmp-bomb",)  # else its real folder
    for student in private:  # no space left (errno 28) at the tmpfs' size: 1 GB
        said = printed(batch, student)
        written = int(re.search(r"WROTE (\d+)", said).group(1))
        assert "errno 28" in said and written <= LIMITS.disk, (student, said)
        assert rows[student]["status"] == "graded" and points(rows[student], CORR2D_TESTS) == worth, rows[student]
    for student in ("tmp-bomb", "disk-filler"):
        for folder in ("autograded", "feedback"):  # what it leaves on the grader's disk
            assert size(course.path(folder) / student) <= LIMITS.kept + MB, (student, folder)
    assert re.search(r"\d+ file\(s\) of \d+\.\d MB over the 32 MB", rows["disk-filler"]["notes"]), rows["disk-filler"]
    assert size(course.path("autograded")) < 200 * MB
    quiet = {p.name for p in (course.path("autograded") / "honest" / CONV).iterdir()}
    assert quiet == {f"{CONV}.ipynb"}  # a kernel that wrote nothing leaves nothing


def test_the_kernels_own_stdout_and_stderr_go_to_the_log_bounded(batch):
    done, course = batch["done"], batch["course"]
    assert MARKER not in done.stdout and MARKER not in done.stderr
    log = (course.root / "autograders" / "grading.log").read_text(errors="replace").splitlines()
    start = next(i for i, line in enumerate(log) if line.startswith("[kernel output]") and "/fd-writes/" in line)
    kept = [line for line in log[start + 1:] if line.startswith("  | ")]
    kept = kept[:next((i for i, line in enumerate(log[start + 1:]) if not line.startswith("  | ")), len(kept))]
    text = "\n".join(line[4:] for line in kept)
    # fds 1 and 2 reach the grader through two threads of ipykernel's, so only each one's own order is kept: the
    # last of fd 1 is in the tail, and every byte of both (and of the child's) is counted
    written = sum(len(f"{MARKER}-{end}\n") for end in ("1", "2", "child")) + 5_000_000 + len(f"\n{MARKER}-last\n")
    assert f"{MARKER}-last" in text and f"of the {written} bytes" in log[start], log[start]
    assert len(text) <= LIMITS.kernel_log, len(text)
    assert f"{MARKER}-1" not in text  # the start of it is gone: only the end is kept
    assert batch["rows"]["fd-writes"]["status"] == "graded"


def test_a_kernel_that_stops_answering_ends_its_notebook_at_once_with_its_points(batch):
    row, tests = batch["rows"]["displayhook"], batch["tests"]
    assert row["status"] == "graded", row
    assert "the kernel stopped answering after a cell's time limit" in row["notes"], row["notes"]
    assert {t for t in tests if float(row[t]) == tests[t]} == CORR2D_TESTS  # earned before it stopped answering
    seen = ending(batch, "displayhook")
    assert seen["stopped_answering"] and seen["timeouts"] == 1 and seen["not_run"] >= 10, seen

