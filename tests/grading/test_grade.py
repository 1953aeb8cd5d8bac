"""Grading one submission (``handwritten.grading.grade``), around nbgrader: the rows it writes (a status
and notes, each in its column), the notebooks it refuses before nbgrader sees them, the kernel's
ending read back from the sandbox's record, and why split cells are deduplicated here and not left to
nbgrader (test_grading.py and test_adversarial.py grade whole notebooks through all of it)."""

from __future__ import annotations

import csv
import importlib
import json
import signal
import subprocess
import sys

import nbformat
import pytest

from handwritten.grading import Result, Status
from handwritten.grading.cases import submission
from handwritten.grading.collect import Submission
from handwritten.grading.release import release
from handwritten.grading.sandbox import ending_path

grading = importlib.import_module("handwritten.grading.grade")
CONV = "04-convolutions-by-hand"


def submit(tmp_path, student: str, text: str) -> Submission:
    path = tmp_path / "submissions" / student / f"{CONV}.ipynb"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return Submission(student, CONV, path)


def split(nb) -> dict:
    """The notebook with a test cell split in two, as JupyterLab does it: both halves keep the grade id."""
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    nb.cells.insert(nb.cells.index(test), nbformat.from_dict({**test, "id": "split-copy", "source": "# top half\n"}))
    return json.loads(nbformat.writes(nb))


def test_grades_csv_has_one_row_per_submission_with_status_and_notes_apart(tmp_path):
    results = [Result("ada", CONV, score=3, max_score=4, tests={"t1": 1, "t2": 2}, sandbox="bwrap",
                      notes=["a cell ran past the time limit and was interrupted", "feedback failed: x"]),
               Result.error("bo", CONV, "not a readable notebook (no cells)", late=True, flags=["cell 1: a", "b"])]
    out = tmp_path / "out" / "grades.csv"
    grading.write_csv(results, out)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["student", "lesson", "status", "notes", "score", "max_score", "manual_points_to_grade",
                             "late", "sandbox", "integrity_flags", "t1", "t2", "feedback", "lms_id"]
    assert [(r["student"], r["status"]) for r in rows] == [("ada", "graded"), ("bo", "error")]
    assert rows[0]["notes"] == "a cell ran past the time limit and was interrupted; feedback failed: x"
    assert rows[1]["notes"] == "not a readable notebook (no cells)" and rows[1]["late"] == "yes"
    assert (rows[0]["t2"], rows[1]["t2"], rows[1]["integrity_flags"]) == ("2", "", "cell 1: a; b")
    assert [p.name for p in out.parent.iterdir()] == ["grades.csv"]


@pytest.mark.parametrize("text,why", [
    ("{ not json", "not a readable notebook (Expecting property name"),
    ('{"cells": "none"}', "not a readable notebook (no cells)"),
    ("\xff\xfe", "not a readable notebook ("),
])
def test_an_unreadable_notebook_is_an_error_row(course_copy, tmp_path, text, why):
    result = grading.grade_one(course_copy, submit(tmp_path, "ada", text), api=object(), sandbox="bwrap")
    assert result.status is Status.ERROR and result.notes[0].startswith(why) and result.sandbox == "bwrap"


def test_another_lessons_notebook_is_an_error_row_that_names_it(course_copy, tmp_path):
    other = (course_copy.notebook("release", "01-pixels-and-tensors")).read_text()
    result = grading.grade_one(course_copy, submit(tmp_path, "ada", other), api=object())
    assert result.status is Status.ERROR
    assert result.notes == ["this is the notebook of lesson 01-pixels-and-tensors, submitted as "
                            "04-convolutions-by-hand: ask the student for the right one, or rename it to "
                            "01-pixels-and-tensors.ipynb and grade again"]


class FakeAPI:
    """nbgrader's API as grade_one sees it, whose autograde leaves ``ending`` where the executor would."""

    def __init__(self, course, ending: dict | None, log: str):
        self.course, self.ending, self.log, self.config = course, ending, log, course.config()

    def autograde(self, assignment, student, **kw):
        if self.ending is not None:
            workdir = self.course.notebook("autograded", assignment, student).parent
            ending_path(workdir).write_text(json.dumps(self.ending))
        return {"success": False, "log": self.log, "error": ""}


DEAD = "nbclient.exceptions.DeadKernelError: Kernel died\n"


@pytest.mark.parametrize("ending,why", [
    ({"exit_status": -signal.SIGKILL, "stderr": ""}, "the kernel was killed (SIGKILL) while running the notebook: "
                                                      "it ran out of memory (the sandbox allows 2 GB)"),
    ({"exit_status": None, "out_of_memory": True}, "the kernel died while running the notebook: it ran out of memory"),
    ({"exit_status": -signal.SIGXCPU}, "the kernel used up its CPU time (900 s) and was stopped"),
    ({"exit_status": 1, "stderr": ""}, "the kernel died while running the notebook (a cell crashed or exited Python)"),
    (None, "the kernel died while running the notebook (a cell crashed or exited Python)"),
])
def test_a_dead_kernel_is_explained_by_the_sandboxs_record(course_copy, tmp_path, ending, why):
    sub = submit(tmp_path, "ada", nbformat.writes(submission(course_copy, CONV)))
    workdir = course_copy.notebook("autograded", CONV, "ada").parent
    workdir.mkdir(parents=True)
    ending_path(workdir).write_text(json.dumps({"exit_status": -signal.SIGKILL}))  # an earlier run's: not this one's
    result = grading.grade_one(course_copy, sub, api=FakeAPI(course_copy, ending, DEAD))
    assert result.status is Status.ERROR and result.notes[0].startswith(why), result.notes


@pytest.mark.filterwarnings("ignore:.*not in session")  # nbgrader's gradebook, on every new submission
def test_split_cells_need_deduplicating_before_nbgrader(course_copy, tmp_path):
    """nbgrader's own DeduplicateIds empties the nbgrader metadata of the earlier copy, and its OverwriteCells
    (add_missing_cells, as this course sets it) then fails the whole notebook: if this test starts failing,
    nbgrader has fixed it and ``deduplicate_ids`` can go."""
    release(course_copy, [CONV])
    notebook = split(submission(course_copy, CONV))
    sub = Submission("ada", CONV, tmp_path / "unused.ipynb")
    no_execution = course_copy.api({"Autograde": {"autograde_preprocessors": []}})  # nbgrader's sanitizing only
    grading.place(course_copy, sub, notebook)
    outcome = no_execution.autograde(CONV, "ada", force=True, create=True)
    assert not outcome["success"] and "KeyError: 'grade_id'" in outcome["log"], outcome["log"][-2000:]
    assert grading.deduplicate_ids(notebook) == 1
    assert "nbgrader" not in notebook["cells"][[c.get("id") for c in notebook["cells"]].index("split-copy")]["metadata"]
    grading.place(course_copy, sub, notebook)
    outcome = no_execution.autograde(CONV, "ada", force=True, create=True)
    assert outcome["success"], outcome["log"][-2000:]


def test_grading_starts_without_compiling_rfc3987s_grammar():
    """rfc3987_syntax builds an Earley parser as it is imported (2.3 s), for a format no notebook uses:
    grading goes without it, and notebooks are still validated."""
    code = ("import sys, time, handwritten.grading, nbformat\n"
            "nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1')]))\n"
            "print(sys.modules.get('rfc3987_syntax', 'never imported'), 'lark' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["None", "False"], done.stdout + done.stderr


def test_placing_a_collected_submission_keeps_the_exchanges_files(course, tmp_path):
    """`nbgrader collect` puts timestamp.txt (late penalties) and submission_secret.txt (the name of the
    returned feedback) beside the notebook; grading the collected folder in place must keep them, and must not
    follow a link in their place."""
    from handwritten.grading.grade import place

    folder = course.path("submitted") / "alice" / "04-convolutions-by-hand"
    folder.mkdir(parents=True)
    notebook = folder / "04-convolutions-by-hand.ipynb"
    notebook.write_text("{}")
    (folder / "timestamp.txt").write_text("2026-12-06 15:43:36.871353 UTC")
    (tmp_path / "secret-elsewhere").write_text("not the student's")
    (folder / "submission_secret.txt").symlink_to(tmp_path / "secret-elsewhere")
    target = place(course, Submission("alice", "04-convolutions-by-hand", notebook), {"cells": []})
    assert (target.parent / "timestamp.txt").read_text() == "2026-12-06 15:43:36.871353 UTC"
    assert not (target.parent / "submission_secret.txt").exists()
    assert json.loads(target.read_text()) == {"cells": []}


def test_each_row_keeps_the_lms_id_of_its_file_name(course_copy, tmp_path):
    # links named like an LMS download: refused unread, so no kernel starts, yet each is its student's row
    submissions = tmp_path / "zip"
    submissions.mkdir()
    (submissions / f"ada_123_456_{CONV}.ipynb").symlink_to(tmp_path)
    (submissions / f"bo_LATE_124_457_{CONV}.ipynb").symlink_to(tmp_path)
    out = tmp_path / "grades.csv"
    grading.grade(course_copy, submissions, out=out, progress=False, sandbox="off")
    with open(out, newline="") as f:
        assert {row["student"]: row["lms_id"] for row in csv.DictReader(f)} == {"ada": "123", "bo": "124"}


def test_grading_workers_take_the_environment_and_folder_of_their_run(tmp_path, monkeypatch):
    """Workers fork from a server that outlives one grading (a caller in one process may grade many times): each
    run's workers take that run's environment variables and working folder, not the server's."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from handwritten.grading.grade import _pool_context, _take_environment

    for run in ("first", "second"):
        monkeypatch.setenv("HANDWRITTEN_TEST_RUN", run)
        (tmp_path / run).mkdir()
        monkeypatch.chdir(tmp_path / run)
        with ProcessPoolExecutor(1, mp_context=_pool_context(), initializer=_take_environment,
                                 initargs=(dict(os.environ), os.getcwd())) as pool:
            assert pool.submit(os.getenv, "HANDWRITTEN_TEST_RUN").result() == run
            assert pool.submit(os.getcwd).result() == str(tmp_path / run)
