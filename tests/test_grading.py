"""The grading contract, through the real `nbgrader autograde` (via `handwritten grade`):

1. the instructor's answers get every autograded point;
2. the released student notebook gets zero, failing only with NotImplementedError;
3. every mutant in autograders/<lesson>/cases.toml loses exactly the points of the tests it
   names, each failure showing the message it names (a wrong corr2d costs only corr2d's tests:
   the later checks put a reference corr2d in place);
4. every alternative-correct answer gets every point;
(3 and 4 through the real nbgrader in packs: mutants that touch different cells and fail different
tests share one submission, which must fail exactly the union of their tests, so a mistake is shown
to be penalised once across exercises too; test_checks.py proves every fixture alone, in-process;)
5. grading the same submission twice gives the same scores;
and the collection side: LMS zips, broken notebooks and stray files never stop the batch.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from handwritten.grading import Course
from handwritten.grading.cases import graded_tests, load_cases, submission, write_submissions

from conftest import LESSONS, copy_course, without_demos

CONV = "04-convolutions-by-hand"  # the lesson the collection-side tests submit
# The packs of mutants and alternatives are graded with the lesson's demonstration cells emptied (only exercises and
# tests run): a demonstration scores nothing, and no test reads what one leaves, as every alternatives pack shows
# (its other cells are the instructor's, and it gets every point without them). The instructor's and the blank
# notebook keep theirs. A lesson's demonstrations cost a few seconds per notebook, and there are 60-odd packs.
WORKERS = 2  # notebooks graded side by side by one `handwritten grade`


def run_grade(course: Course, source: Path, out: Path, *args: str) -> dict[str, dict]:
    done = subprocess.run([sys.executable, "-m", "handwritten.cli", "--course", str(course.root), "grade",
                           str(source), "--out", str(out), *args], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out, newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def autograded(course: Course, student: str, lesson: str):
    path = course.path("autograded") / student / lesson / f"{lesson}.ipynb"
    return nbformat.read(path, as_version=4)


def outputs_by_test(nb) -> dict[str, str]:
    """The text each test cell printed or raised, by grade id."""
    found = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            found[meta["grade_id"]] = "\n".join(
                o.get("text", "") if o.output_type == "stream" else f"{o.get('ename')}: {o.get('evalue')}"
                for o in cell.outputs)
    return found


def errors_by_test(nb) -> dict[str, list[str]]:
    """The names of the errors each test cell raised, by grade id (a cell stops at its first)."""
    tests = [c for c in nb.cells if c.cell_type == "code" and c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    return {c.metadata.nbgrader["grade_id"]: [o.get("ename") for o in c.outputs if o.output_type == "error"]
            for c in tests}


def grade_every_case(base: Path, lesson: str) -> dict:
    """Every case of one lesson, graded once in packs, by one `handwritten grade` with WORKERS workers."""
    course = Course(copy_course(base / "course"))
    cases = write_submissions(course, lesson, base / "all", packed=True)
    for student, group in cases.items():  # the packs without the lesson's demonstrations: see the note at the top
        if group:
            path = base / "all" / student / f"{lesson}.ipynb"
            nbformat.write(without_demos(nbformat.read(path, as_version=4)), path)
    rows = run_grade(course, base / "all", base / "grades.csv", "--workers", str(WORKERS))
    students = sorted(cases)
    assert sorted(rows) == students
    where = {student: course for student in students}
    packs = {f"{case.kind}-{case.name}": student for student, group in cases.items() for case in group}
    return {"rows": rows, "cases": cases, "packs": packs, "course": where, "base": base,
            "tests": graded_tests(course, lesson)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """graded(lesson): that lesson's cases, graded on first use (so `-k <lesson>` grades one lesson)."""
    done: dict[str, dict] = {}

    def get(lesson: str) -> dict:
        if lesson not in done:
            done[lesson] = grade_every_case(tmp_path_factory.mktemp(f"grading-{lesson}"), lesson)
        return done[lesson]

    return get


@pytest.mark.parametrize("lesson", LESSONS)
def test_instructor_gets_every_point(graded, lesson):
    run = graded(lesson)
    row = run["rows"]["instructor"]
    assert (row["status"], row["notes"]) == ("graded", "")
    assert float(row["score"]) == float(row["max_score"]) == sum(run["tests"].values()) > 0
    assert float(row["manual_points_to_grade"]) > 0  # the questionnaire waits for a human


@pytest.mark.parametrize("lesson", LESSONS)
def test_blank_student_notebook_gets_zero_and_fails_only_with_not_implemented(graded, lesson):
    run = graded(lesson)
    row = run["rows"]["blank"]
    assert float(row["score"]) == 0 and float(row["max_score"]) > 0
    outputs = outputs_by_test(autograded(run["course"]["blank"], "blank", lesson))
    assert set(outputs) == set(run["tests"])
    for grade_id, text in outputs.items():
        assert text.startswith("NotImplementedError"), (grade_id, text)


def _cases(kind):
    from conftest import ROOT

    return [pytest.param(lesson, f"{c.kind}-{c.name}", id=f"{lesson}:{c.kind}-{c.name}")
            for lesson in LESSONS for c in load_cases(Course(ROOT), lesson) if c.kind == kind]


@pytest.mark.parametrize("lesson,case_id", _cases("mutant"))
def test_mutant_loses_exactly_its_tests(graded, lesson, case_id):
    run = graded(lesson)
    student = run["packs"][case_id]
    group, row, tests = run["cases"][student], run["rows"][student], run["tests"]
    case = next(c for c in group if f"{c.kind}-{c.name}" == case_id)
    assert row["status"] == "graded", (row["status"], row["notes"])
    lost = {t for t in tests if float(row[t]) != tests[t]}
    expected = {t for member in group for t in member.fails}
    assert lost == expected, f"{student} = {[c.name for c in group]}: {case.name} ({case.why})"
    assert all(float(row[t]) == 0 for t in lost)
    assert float(row["score"]) == sum(tests.values()) - sum(tests[t] for t in expected)
    graded_nb = autograded(run["course"][student], student, lesson)
    outputs, errors = outputs_by_test(graded_nb), errors_by_test(graded_nb)
    for test in case.fails:
        assert errors[test] == ["AssertionError"], outputs[test]  # failed by a check, as nbgrader counts it
        assert case.expected_message(test) in outputs[test], outputs[test]


@pytest.mark.parametrize("lesson,case_id", _cases("alternative"))
def test_alternative_gets_every_point(graded, lesson, case_id):
    run = graded(lesson)
    row = run["rows"][run["packs"][case_id]]
    assert row["status"] == "graded", row["notes"]
    assert float(row["score"]) == float(row["max_score"]) == sum(run["tests"].values())


def test_feedback_shows_failures_but_not_hidden_tests(graded):
    run = graded(CONV)
    html = Path(run["rows"][run["packs"]["mutant-flipped-kernel"]]["feedback"]).read_text()
    assert "not cross-correlation" in html            # the student learns what is wrong
    assert "corr2d_hidden(corr2d, seed" not in html   # but not the hidden test code
    assert "BEGIN HIDDEN TESTS" not in html


def before_score(run) -> str:
    return run["rows"]["instructor"]["score"]


def test_lms_zip_regrading_and_broken_submissions(graded, tmp_path):
    """A Canvas-style zip: regrades two earlier submissions (same scores), survives a broken
    notebook, a notebook whose cells were split (duplicate nbgrader ids) and whose widget state is
    broken, a kernel that dies, a notebook saved under another name, and stray files; the newest
    resubmission wins."""
    course = Course(copy_course(tmp_path / "course"))
    run = graded(CONV)
    all_dir = run["base"] / "all"
    flipped = next(c for c in load_cases(course, CONV) if c.name == "flipped-kernel")
    archive = tmp_path / "submissions.zip"
    duplicated = without_demos(submission(course, CONV))  # (no test reads a demonstration: see the top)
    test_cell = next(c for c in duplicated.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade"))
    duplicated.cells.insert(duplicated.cells.index(test_cell), nbformat.from_dict(
        {**test_cell, "id": "split-copy", "source": "# the top half of a split cell\n"}))
    # ipywidgets state without its "state" key breaks nbgrader's feedback unless it is cleared
    duplicated.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"version_major": 2}}
    dying = submission(course, CONV, {"corr2d": "import os\nos._exit(1)"})
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(all_dir / "blank" / f"{CONV}.ipynb", f"alice_123_455_{CONV}.ipynb")  # superseded
        zf.write(all_dir / "instructor" / f"{CONV}.ipynb", f"alice_123_456_{CONV}-1.ipynb")
        zf.writestr(f"bob_LATE_124_457_{CONV}.ipynb",
                    nbformat.writes(without_demos(submission(course, CONV, flipped.cells))))
        zf.writestr(f"carol_125_458_{CONV}.ipynb", "{ this is not json")
        zf.writestr(f"dave_126_459_{CONV}.ipynb", nbformat.writes(duplicated))
        zf.writestr(f"erin_127_460_{CONV}.ipynb", nbformat.writes(dying))
        zf.writestr("frank_128_461_notes.txt", "not a notebook")
        zf.writestr("frank_128_462_homework.ipynb", "{}")               # not named after a lesson
        zf.write(all_dir / "instructor" / f"{CONV}.ipynb", "grace_129_463_Untitled.ipynb")  # ...but its cells are
    rows = run_grade(course, archive, tmp_path / "grades.csv", "--workers", str(WORKERS))
    assert sorted(rows) == ["alice", "bob", "carol", "dave", "erin", "grace"]
    assert rows["grace"]["score"] == before_score(run)
    assert rows["grace"]["status"] == "graded"
    assert rows["grace"]["notes"] == ("the file was named 'grace_129_463_Untitled.ipynb': matched to this lesson "
                                      "by its cell ids")
    before = run["rows"]["instructor"]
    assert {k: rows["alice"][k] for k in run["tests"]} == {k: before[k] for k in run["tests"]}
    assert rows["alice"]["score"] == before["score"]
    tests = run["tests"]
    assert {t for t in tests if float(rows["bob"][t]) != tests[t]} == set(flipped.fails)
    assert rows["carol"]["status"] == "error" and rows["carol"]["notes"].startswith("not a readable notebook")
    assert rows["dave"]["status"] == "graded"
    assert rows["dave"]["notes"] == "1 duplicated cell id(s) ignored (split or copied cells)"
    assert rows["dave"]["feedback"]
    assert rows["dave"]["score"] == rows["alice"]["score"]
    assert rows["erin"]["status"] == "error"
    assert rows["erin"]["notes"] == "the kernel died while running the notebook (a cell crashed or exited Python)"


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_lesson_has_grader_fixtures(lesson):
    from conftest import ROOT

    assert (ROOT / "autograders" / lesson / "cases.toml").is_file()
