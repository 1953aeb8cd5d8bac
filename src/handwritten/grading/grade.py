"""Grade a class: collect the notebooks, autograde each with nbgrader, write ``grades.csv``
(one row per student and lesson, one column per test) and the feedback HTML.

A broken notebook never stops the batch: its row says what went wrong, and the next one is
graded. Each submission is graded on its own (``grade_one``), so that grading can be spread
over processes or machines.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .collect import Submission, collect
from .course import Course
from .release import release


@dataclass
class Result:
    student: str
    assignment: str
    status: str = "graded"                      # "graded", or what went wrong
    score: float = 0.0                          # autograded points
    max_score: float = 0.0                      # autograded points available
    manual_max: float = 0.0                     # points waiting for a human (questionnaire)
    tests: dict[str, float] = field(default_factory=dict)   # grade id -> autograded points
    feedback: Path | None = None


EXCEPTION_LINE = re.compile(r"^\s*((?:\w+\.)*\w+(?:Error|Exception|Timeout)\w*): (.+)$", re.M)
EXPLAINED = {
    "DeadKernelError": "the kernel died while running the notebook (a cell crashed or exited Python)",
    "CellTimeoutError": "a cell ran longer than the per-cell time limit",
}


def _reason(outcome: dict) -> str:
    """The most telling line of a failed nbgrader run: the innermost exception, not nbgrader's
    "see the above traceback"."""
    text = (outcome.get("log") or "") + "\n" + (outcome.get("error") or "")
    found = [(name, message) for name, message in EXCEPTION_LINE.findall(text)
             if not name.endswith("NbGraderException")]
    if not found:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else "unknown error"
    name, message = found[-1]
    short = name.rsplit(".", 1)[-1]
    return EXPLAINED.get(short, f"{short}: {message.strip()}")


def deduplicate_ids(notebook: dict) -> int:
    """JupyterLab's "split cell" and copy-paste duplicate a cell's nbgrader id, and nbgrader then
    refuses the whole notebook. Keep the last cell with each id; earlier copies become plain
    cells. Returns how many were changed."""
    seen, changed = set(), 0
    for cell in reversed(notebook.get("cells", [])):
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id is None:
            continue
        if grade_id in seen:
            del cell["metadata"]["nbgrader"]
            changed += 1
        seen.add(grade_id)
    return changed


def place(course: Course, submission: Submission, notebook: dict) -> Path:
    """Write a submission where nbgrader looks for it (the original file is never touched)."""
    folder = course.path("submitted") / submission.student / submission.assignment
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    target = folder / f"{submission.assignment}.ipynb"
    target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def scores(course: Course, student: str, assignment: str) -> Result:
    from nbgrader.api import Gradebook

    result = Result(student, assignment)
    with Gradebook(course.db_url) as gradebook:
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        for grade in sorted(notebook.grades, key=lambda g: g.name):
            if grade.cell_type == "code":
                result.tests[grade.name] = float(grade.auto_score or 0.0)
                result.score += float(grade.auto_score or 0.0)
                result.max_score += float(grade.max_score)
            else:
                result.manual_max += float(grade.max_score)
    return result


def grade_one(course: Course, submission: Submission, api=None) -> Result:
    """Autograde one student's notebook for one lesson and write its feedback."""
    api = api or course.api()
    try:
        notebook = json.loads(submission.path.read_text(encoding="utf-8"))
        if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
            raise ValueError("no cells")
    except (UnicodeDecodeError, ValueError) as error:
        return Result(submission.student, submission.assignment,
                      status=f"error: not a readable notebook ({error})")
    duplicates = deduplicate_ids(notebook)
    place(course, submission, notebook)
    outcome = api.autograde(submission.assignment, submission.student, force=True, create=True)
    if not outcome["success"]:
        return Result(submission.student, submission.assignment,
                      status=f"error: {_reason(outcome)}")
    result = scores(course, submission.student, submission.assignment)
    if duplicates:
        result.status = f"graded; {duplicates} duplicated cell id(s) ignored (split or copied cells)"
    feedback = api.generate_feedback(submission.assignment, submission.student, force=True)
    html = (course.path("feedback") / submission.student / submission.assignment
            / f"{submission.assignment}.html")
    if feedback["success"] and html.exists():
        result.feedback = html
    else:
        result.status += f"; feedback failed: {_reason(feedback)}"
    return result


def write_csv(results: list[Result], path: Path) -> None:
    tests = sorted({name for r in results for name in r.tests})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "lesson", "status", "score", "max_score", "manual_points_to_grade",
                         *tests, "feedback"])
        for r in results:
            writer.writerow([r.student, r.assignment, r.status, f"{r.score:g}", f"{r.max_score:g}",
                             f"{r.manual_max:g}", *(f"{r.tests[t]:g}" if t in r.tests else "" for t in tests),
                             str(r.feedback or "")])


@contextlib.contextmanager
def stderr_to(path: Path):
    """Send this process's stderr, and that of every kernel it starts, to a log file: grading a
    class prints a progress bar and a summary, and keeps nbgrader's and the kernels' chatter here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def grade(course: Course, source: Path, *, out: Path | None = None,
          assignments: list[str] | None = None, progress: bool = True) -> tuple[list[Result], list[str]]:
    """Grade every submission in ``source``; return the results and the files that were skipped."""
    collected = collect(Path(source), course.assignments())
    submissions = [s for s in collected.submissions if not assignments or s.assignment in assignments]
    problems = list(collected.problems)
    # nbgrader's gradebook trips SQLAlchemy's autoflush warnings on every new submission: noise.
    warnings.filterwarnings("ignore", message=".*not in session.*")
    try:
        if submissions:
            changed = release(course, sorted({s.assignment for s in submissions}))
            if changed:
                problems.append(f"lessons/ was out of date with solutions/ and was regenerated: "
                                f"{', '.join(changed)}")
        api = course.api()
        with stderr_to(course.root / "autograders" / "grading.log"):
            results = [grade_one(course, s, api) for s in tqdm(
                submissions, desc="grading", unit="notebook", disable=not progress, file=sys.stdout)]
    finally:
        if collected.workdir is not None:
            collected.workdir.cleanup()
    write_csv(results, out or course.root / "autograders" / "grades.csv")
    return results, problems
