"""Grading a class at scale: several workers, a progress bar, a run that is killed half way and
resumed without losing or regrading anything, re-runs that skip what is graded unless `--force`,
and the loud fallback when bubblewrap is missing."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from handwritten.grading import Course
from handwritten.grading.cases import graded_tests, load_cases, solution_sources, submission

from conftest import copy_course, without_demos

CONV = "04-convolutions-by-hand"


def grade_cmd(course: Course, source: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "handwritten.cli", "--course", str(course.root), "grade", str(source),
            "--out", str(out), *extra]


def handed_in(course: Course, cells=None, **kw):
    """A lesson-04 submission without the lesson's demonstrations: its exercises and their tests are what grading
    at scale needs, at half the kernel time."""
    return without_demos(submission(course, CONV, cells, **kw))


def rows_of(out: Path) -> dict[str, dict]:
    with open(out, newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def records(course: Course) -> dict[str, float]:
    """When each submission's result was recorded, by student."""
    return {p.parent.name: p.stat().st_mtime_ns for p in course.path("autograded").glob(f"*/{CONV}.result.json")}


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    base = tmp_path_factory.mktemp("scale")
    course = Course(copy_course(base / "course"))
    mutant = next(c for c in load_cases(course, CONV) if c.kind == "mutant")
    source = base / "submissions"
    for student, nb in [("ada", handed_in(course)), ("bo", handed_in(course, mutant.cells)),
                        ("cy", handed_in(course)), ("di", handed_in(course, blank=True))]:
        (source / student).mkdir(parents=True)
        nbformat.write(nb, source / student / f"{CONV}.ipynb")
    return {"course": course, "source": source, "base": base, "mutant": mutant, "tests": graded_tests(course, CONV)}


def test_killed_run_resumes_without_losing_or_regrading(klass):
    course, out = klass["course"], klass["base"] / "grades.csv"
    run = subprocess.Popen(grade_cmd(course, klass["source"], out, "--workers", "1"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 600
    while not records(course) and time.time() < deadline and run.poll() is None:
        time.sleep(0.5)
    os.killpg(run.pid, signal.SIGKILL)  # the grader and its kernel, as a power cut would
    run.wait()
    first = records(course)
    assert len(first) == 1, run.stdout.read()
    done = subprocess.run(grade_cmd(course, klass["source"], out, "--workers", "2"),
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 graded now, 1 kept from an earlier run" in done.stdout
    assert "grading: 100%" in done.stdout and "3/3" in done.stdout     # the progress bar
    after = records(course)
    assert sorted(after) == ["ada", "bo", "cy", "di"]
    assert all(after[s] == first[s] for s in first)                    # not graded twice
    rows, tests = rows_of(out), klass["tests"]
    assert {t: float(rows["ada"][t]) for t in tests} == tests == {t: float(rows["cy"][t]) for t in tests}
    assert {t for t in tests if float(rows["bo"][t]) != tests[t]} == set(klass["mutant"].fails)
    assert float(rows["di"]["score"]) == 0
    assert {row["sandbox"] for row in rows.values()} <= {"bwrap", "limits"}
    klass["rows"] = rows


def test_item_analysis_and_feedback_reasons(klass):
    """4 students: two full marks, the mutant, a blank notebook. Every test has a pass rate of 3/4,
    or 2/4 for the tests the mutant fails; feedback names every lost point with its reason."""
    out, tests, mutant = klass["base"] / "grades.csv", klass["tests"], klass["mutant"]
    with open(out.with_name("grades-items.csv"), newline="") as f:
        items = {row["test"]: row for row in csv.DictReader(f)}
    assert set(items) == set(tests)
    for test, points in tests.items():
        passed = 2 if test in mutant.fails else 3
        assert float(items[test]["pass_rate"]) == pytest.approx(passed / 4, abs=1e-3)
        assert float(items[test]["mean_points"]) == pytest.approx(points * passed / 4, abs=1e-3)
    assert out.with_name("grades-items.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = klass["rows"]
    assert "Every autograded point earned" in Path(rows["ada"]["feedback"]).read_text()
    html = Path(rows["bo"]["feedback"]).read_text()
    assert "Where points were lost" in html and "BEGIN HIDDEN TESTS" not in html
    for test in mutant.fails:
        assert f"<code>{test}</code>" in html
        assert mutant.expected_message(test).split("\n")[0][:40] in html


def test_rerun_grades_only_what_changed_and_force_grades_all_again(klass):
    course, out = klass["course"], klass["base"] / "grades2.csv"
    before = records(course)
    assert len(before) == 4, "needs the previous test's run"
    changed = klass["source"] / "di" / f"{CONV}.ipynb"
    nbformat.write(handed_in(course), changed)                                          # di resubmits, now complete
    done = subprocess.run(grade_cmd(course, klass["source"], out, "--workers", "2"),
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 graded now, 3 kept from an earlier run" in done.stdout
    after = records(course)
    assert [s for s in after if after[s] != before[s]] == ["di"]
    assert float(rows_of(out)["di"]["score"]) == sum(klass["tests"].values())


def test_force_without_bubblewrap_regrades_everything_the_same_and_says_so_loudly(klass):
    """--sandbox limits is what a machine without bubblewrap gets: the same grades, a warning in
    the output and a `limits` in every row."""
    course, out = klass["course"], klass["base"] / "grades3.csv"
    before = records(course)
    done = subprocess.run(grade_cmd(course, klass["source"], out, "--workers", "2", "--force", "--sandbox", "limits"),
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 graded now, 0 kept" in done.stdout
    assert "WARNING" in done.stdout and "bubblewrap" in done.stdout and "solutions/" in done.stdout
    after, rows = records(course), rows_of(out)
    assert all(after[s] != before[s] for s in before)
    assert {row["sandbox"] for row in rows.values()} == {"limits"}
    earlier = klass["rows"]
    for student in ("ada", "bo", "cy"):
        assert {t: rows[student][t] for t in klass["tests"]} == {t: earlier[student][t] for t in klass["tests"]}


def test_a_record_is_whole_json_and_outside_the_kernels_folder(klass):
    course = klass["course"]
    record = course.path("autograded") / "ada" / f"{CONV}.result.json"
    data = json.loads(record.read_text())
    assert data["student"] == "ada" and data["digest"] and data["kept"] is False
    assert record.parent != course.path("autograded") / "ada" / CONV  # the kernel's cwd cannot forge it


def test_bad_worker_counts_are_refused_with_what_to_do(klass, tmp_path):
    done = subprocess.run(grade_cmd(klass["course"], klass["source"], tmp_path / "g.csv", "--workers", "0"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--workers" in done.stderr and "at least 1" in done.stderr


def test_many_slow_cells_stop_at_the_notebooks_wall_time_limit(klass, tmp_path):
    """Each cell stays under the per-cell limit, but together they would run on: the wall-time limit
    cuts the notebook short, the row says so, and what ran before it keeps its points."""
    course, source = klass["course"], tmp_path / "slow"
    answers = solution_sources(course, CONV)
    nap = "import time\ntime.sleep(12)\n"
    slow = handed_in(course, {cell: nap + answers[cell] for cell in ("corr2d_multi_in", "corr2d_multi_in_out",
                                                                     "corr2d_1x1", "pool2d")})
    (source / "slowpoke").mkdir(parents=True)
    nbformat.write(slow, source / "slowpoke" / f"{CONV}.ipynb")
    done = subprocess.run(grade_cmd(course, source, tmp_path / "grades.csv", "--timeout", "120", "--wall-time", "30"),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    row = rows_of(tmp_path / "grades.csv")["slowpoke"]
    assert row["status"] == "graded" and "wall-time limit (30 s)" in row["notes"], row
    tests = klass["tests"]
    assert float(row["corr2d_test"]) == tests["corr2d_test"]  # ran long before the limit
    assert float(row["pool2d_test"]) == 0                     # 4 x 12 s of naps: the last one was cut
