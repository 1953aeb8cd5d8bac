"""What a class's folder or zip can hand the grader besides notebooks, graded in one `handwritten grade` batch (two
workers, the sandbox) beside two honest students whose names clean up alike (``alice`` and ``alice.``), and one
zip of an honest notebook beside a zip bomb, an absolute path and a link.

For each: the batch completes; a file that is not a notebook to trust (a link to the solutions or to another
student's notebook, a pipe, a folder, JSON nested past parsing) is its student's error row with its reason, and no
kernel runs for it; a notebook whose graded cells were tampered with (an id that is not text, a graded cell of its
own worth 100 points, questions retyped) is graded on the release's cells, at the release's points, and flagged;
the honest students get exactly what a clean run gives them; no link is followed (the solutions and the other
student's notebook are unchanged, and nobody gets their points).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from handwritten.grading import Course
from handwritten.grading.cases import graded_tests, load_cases, submission
from handwritten.grading.collect import safe_id
from handwritten.grading.sandbox import bwrap_problem

from conftest import copy_course, without_demos

CONV = "04-convolutions-by-hand"
TIMEOUT = 60  # seconds per cell: nothing here should run long
LINK = "a symbolic link, not a file: not graded"

if bwrap_problem() is not None:
    if os.environ.get("CI"):
        pytest.fail(f"bubblewrap is needed for the adversarial suite ({bwrap_problem()}): `make test` "
                    f"installs it under CI; run `make sandbox` as root", pytrace=False)
    pytest.skip(f"bubblewrap unavailable ({bwrap_problem()}): `make sandbox` installs it", allow_module_level=True)


def graded_cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def write(source: Path, student: str, nb) -> Path:
    target = source / student / f"{CONV}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(nb if isinstance(nb, str) else nbformat.writes(nb))
    return target


def submissions(course: Course, source: Path, mutant) -> None:
    right = without_demos(submission(course, CONV))
    honest = write(source, "alice", right)
    write(source, "alice.", without_demos(submission(course, CONV, mutant.cells)))
    for student, target in [("linked-solution", course.notebook("source", CONV)), ("linked-student", honest)]:
        (source / student).mkdir()
        (source / student / f"{CONV}.ipynb").symlink_to(target)
    (source / "linked-folder").symlink_to(honest.parent)
    (source / "piped").mkdir()
    os.mkfifo(source / "piped" / f"{CONV}.ipynb")
    (source / "folder" / f"{CONV}.ipynb").mkdir(parents=True)
    write(source, "deep", '{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    listed = nbformat.from_dict(json.loads(nbformat.writes(right)))
    graded_cell(listed, "corr2d").metadata.nbgrader.grade_id = ["corr2d"]  # unhashable
    write(source, "listed-id", listed)
    extra = nbformat.from_dict(json.loads(nbformat.writes(right)))
    extra.cells.append(nbformat.v4.new_code_cell("print('free points')", metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": False, "points": 100, "grade_id": "bonus", "schema_version": 3}}))
    write(source, "extra-cell", extra)
    retyped = nbformat.from_dict(json.loads(nbformat.writes(right)))
    question = graded_cell(retyped, "q1_receptive_field")   # a question for the instructor, made a code cell
    question.update(cell_type="code", outputs=[], execution_count=None, source="print('no answer to grade')")
    test = graded_cell(retyped, "corr2d_test")             # a test cell made markdown
    test.cell_type = "markdown"
    del test["outputs"], test["execution_count"]
    write(source, "retyped", retyped)


def class_zip(course: Course, archive: Path) -> None:
    link = zipfile.ZipInfo(f"zip-link/{CONV}.ipynb")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    bomb = zipfile.ZipInfo(f"zip-bomb/{CONV}.ipynb")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"zipped/{CONV}.ipynb", nbformat.writes(without_demos(submission(course, CONV))))
        zf.writestr(f"/tmp/zip-absolute/{CONV}.ipynb", "{}")
        zf.writestr(link, str(course.notebook("source", CONV)))
        with zf.open(bomb, "w", force_zip64=True) as entry:  # 600 MB of zeros, ~600 KB zipped
            for _ in range(600):
                entry.write(bytes(2**20))


def regular_files(root: Path) -> dict[str, str]:
    """Every regular file under ``root`` and its hash, found without following a link or opening anything else."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if stat.S_ISREG(p.lstat().st_mode)}


def grade(course: Course, source: Path, out: Path) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    done = subprocess.run([sys.executable, "-m", "handwritten.cli", "--course", str(course.root), "grade", str(source),
                           "--out", str(out), "--workers", "2", "--timeout", str(TIMEOUT)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(out, newline="") as f:
        return done, {row["student"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    base = tmp_path_factory.mktemp("intake")
    course = Course(copy_course(base / "course"))
    mutant = next(c for c in load_cases(course, CONV) if c.kind == "mutant")
    source = base / "submissions"
    submissions(course, source, mutant)
    class_zip(course, base / "class.zip")
    kept = {"course": regular_files(course.root / "solutions") | regular_files(course.root / "lessons"),
            "submissions": regular_files(source)}
    done, rows = grade(course, source, base / "grades.csv")
    zip_done, zip_rows = grade(course, base / "class.zip", base / "zip-grades.csv")
    yield {"done": done, "rows": rows, "zip_done": zip_done, "zip_rows": zip_rows, "course": course,
           "mutant": mutant, "tests": graded_tests(course, CONV), "kept": kept, "source": source}


def test_every_submission_has_a_row_and_the_honest_get_a_clean_runs_grades(batch):
    rows, tests = batch["rows"], batch["tests"]
    assert set(rows) == {"alice", safe_id("alice."), "linked-solution", "linked-student", "piped", "folder", "deep",
                         "listed-id", "extra-cell", "retyped"}
    assert safe_id("alice.") != "alice"    # two students, never one merged into the other
    alice, mutant = rows["alice"], rows[safe_id("alice.")]
    assert (alice["status"], alice["notes"], alice["integrity_flags"], alice["score"]) == ("graded", "", "", "28")
    assert {t: float(alice[t]) for t in tests} == tests
    assert (mutant["status"], mutant["integrity_flags"]) == ("graded", "")
    assert {t for t in tests if float(mutant[t]) != tests[t]} == set(batch["mutant"].fails)
    assert "older copy" not in batch["done"].stdout


def test_what_is_not_a_file_to_trust_is_refused_with_its_reason_and_never_read(batch):
    rows, course = batch["rows"], batch["course"]
    for student, why in [("linked-solution", LINK), ("linked-student", LINK),
                         ("piped", "a named pipe, not a file: not graded"),
                         ("folder", "a folder, not a file: not graded"),
                         ("deep", "not a readable notebook (its JSON nests more than 100 levels deep)")]:
        row = rows[student]
        assert (row["status"], row["notes"], row["score"], row["max_score"]) == ("error", why, "0", "0"), row
        assert not (course.path("submitted") / student).exists()   # no kernel, no copy of what it points to
    assert "skipped: linked-folder: a symbolic link to a folder: not looked into" in batch["done"].stdout
    # nothing a link pointed to changed, and nothing was graded that was not read from a student's own file
    assert regular_files(course.root / "solutions") | regular_files(course.root / "lessons") == batch["kept"]["course"]
    assert regular_files(batch["source"]) == batch["kept"]["submissions"]
    graded = {row["student"] for row in [*rows.values(), *batch["zip_rows"].values()] if row["status"] == "graded"}
    assert {p.name for p in course.path("submitted").iterdir()} == graded


def test_graded_cells_come_from_the_release(batch):
    rows = batch["rows"]
    for student in ("listed-id", "extra-cell", "retyped"):
        row = rows[student]
        assert row["status"] == "graded", row
        assert (row["score"], row["max_score"], row["manual_points_to_grade"]) == ("28", "28", "5"), row
    assert "whose grade id is not text: graded as a plain cell" in rows["listed-id"]["integrity_flags"]
    assert ("grade id 'bonus' is not in the released notebook (it claimed points)"
            in rows["extra-cell"]["integrity_flags"])
    flags = rows["retyped"]["integrity_flags"]
    assert "cell q1_receptive_field: a markdown cell of the release was made code: put back" in flags
    assert "cell corr2d_test: a code cell of the release was made markdown: put back" in flags
    graded = json.loads(batch["course"].notebook("autograded", CONV, "retyped").read_text())
    question = next(c for c in graded["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id")
                    == "q1_receptive_field")
    assert question["cell_type"] == "markdown" and "no answer to grade" in "".join(question["source"])


def test_a_zip_is_extracted_within_bounds_and_its_unsafe_entries_refused_one_by_one(batch):
    rows, out = batch["zip_rows"], batch["zip_done"].stdout
    assert set(rows) == {"zipped", "zip-bomb", "zip-link"}
    zipped = rows["zipped"]
    assert (zipped["status"], zipped["score"], zipped["integrity_flags"]) == ("graded", "28", "")
    assert rows["zip-bomb"]["notes"] == "larger than 50 MB when extracted: not extracted"
    assert rows["zip-link"]["notes"] == "a symbolic link in the zip: not extracted"
    assert f"skipped: /tmp/zip-absolute/{CONV}.ipynb: an absolute path in the zip: not extracted" in out
    assert not Path("/tmp/zip-absolute").exists()
