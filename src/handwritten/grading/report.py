"""Item analysis: how each test did across the class, as a CSV and a chart (the score
distribution, and each test's pass rate), next to ``grades.csv``. A test nobody passes, or
everybody does, is worth a second look at the lesson or the test.

A lesson with a timed challenge (lesson 05's) also gets ``<grades>-challenge.csv`` and ``.png``: each
submission's training time and validation accuracy, as the grader measured them."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from pathlib import Path

from .cells import nbgrader_meta, read_cells
from .records import Result

# The hidden test of a timed challenge, and the line its check (checks.cnn.CHALLENGE_LINE) prints first. That test
# cell runs in the grader, where no student code prints: its stdout is the check's own.
CHALLENGE_TESTS = {"challenge_hidden"}
CHALLENGE = re.compile(r"challenge: (\d+(?:\.\d+)?) s of training, validation accuracy (\d(?:\.\d+)?)")


def item_rows(results: list[Result], max_points: dict[tuple[str, str], float]) -> list[dict]:
    """One row per lesson and test; ``max_points[lesson, test]`` is what a test is worth."""
    graded = [r for r in results if r.graded]
    rows = []
    for lesson, test in sorted({(r.assignment, t) for r in graded for t in r.tests}):
        scores = [r.tests[test] for r in graded if r.assignment == lesson and test in r.tests]
        full = max_points.get((lesson, test)) or max(scores, default=0)
        rows.append({"lesson": lesson, "test": test, "points": full, "submissions": len(scores),
                     "pass_rate": sum(s >= full for s in scores) / len(scores) if scores else 0.0,
                     "mean_points": sum(scores) / len(scores) if scores else 0.0})
    return rows


def challenge_measure(notebook: Path) -> tuple[float, float] | None:
    """(seconds, accuracy) that a graded notebook's timed challenge printed, or None (no such test, or it did not get
    as far as measuring: an unfinished exercise, a network that failed)."""
    try:
        cells = read_cells(notebook)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for cell in cells if isinstance(cells, list) else []:
        if nbgrader_meta(cell).get("grade_id") not in CHALLENGE_TESTS:
            continue
        for output in cell.get("outputs") or []:
            if isinstance(output, dict) and output.get("output_type") == "stream" and output.get("name") == "stdout":
                text = output.get("text", "")
                text = "".join(text) if isinstance(text, list) else str(text)
                found = CHALLENGE.match(text)
                if found:
                    seconds, accuracy = float(found[1]), float(found[2])
                    return (seconds, accuracy) if math.isfinite(seconds) and 0 <= accuracy <= 1 else None
                return None
    return None


def challenge_rows(results: list[Result], notebook: Callable[[str, str], Path]) -> list[dict]:
    """One row per graded submission whose challenge was measured: student, lesson, seconds, accuracy, and the
    points of the challenge's test. ``notebook(lesson, student)`` is the path of its autograded notebook."""
    rows = []
    for r in results:
        if not r.graded or not CHALLENGE_TESTS & set(r.tests):
            continue
        measured = challenge_measure(notebook(r.assignment, r.student))
        if measured is not None:
            points = sum(r.tests[t] for t in CHALLENGE_TESTS & set(r.tests))
            rows.append({"student": r.student, "lesson": r.assignment, "seconds": measured[0],
                         "accuracy": measured[1], "points": points})
    return rows


def write_challenge(rows: list[dict], grades_csv: Path) -> tuple[Path, Path] | None:
    """Write ``<grades>-challenge.csv`` and a chart of time against accuracy (``.png``); None when no row."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    table = grades_csv.with_name(grades_csv.stem + "-challenge.csv")
    with open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["student", "lesson", "seconds", "accuracy", "points"])
        writer.writeheader()
        for row in sorted(rows, key=lambda row: (row["lesson"], -row["accuracy"], row["seconds"])):
            writer.writerow(row | {"seconds": f"{row['seconds']:.2f}", "accuracy": f"{row['accuracy']:.4f}",
                                   "points": f"{row['points']:g}"})
    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = figure.subplots()
    full = max((row["points"] for row in rows), default=0)
    for reached, colour, label in ((True, "#55a868", "full points"), (False, "#c44e52", "fewer points")):
        chosen = [row for row in rows if (row["points"] >= full > 0) == reached]
        ax.scatter([row["seconds"] for row in chosen], [100 * row["accuracy"] for row in chosen], color=colour,
                   label=f"{label} ({len(chosen)})")
    ax.set(title=f"the challenge: {len(rows)} submissions, as the grader measured them",
           xlabel="seconds of training", ylabel="validation accuracy (%)")
    ax.legend(loc="lower right")
    chart = grades_csv.with_name(grades_csv.stem + "-challenge.png")
    figure.savefig(chart, dpi=100)
    return table, chart


def _autograded(grades_csv: Path) -> Callable[[str, str], Path] | None:
    """Where the course around ``grades_csv`` keeps autograded notebooks, or None outside a course."""
    from .course import Course, CourseError

    try:
        course = Course.find(grades_csv.parent)
    except (CourseError, OSError):
        return None
    return lambda lesson, student: course.notebook("autograded", lesson, student)


def write_item_analysis(results: list[Result], max_points: dict[tuple[str, str], float],
                        grades_csv: Path, notebook: Callable[[str, str], Path] | None = None) -> tuple[Path, Path]:
    """Write ``<grades>-items.csv`` and ``<grades>-items.png``; return their paths. Where a lesson has a timed
    challenge, also ``<grades>-challenge.csv`` and ``.png`` (``write_challenge``), reading the autograded notebooks
    at ``notebook(lesson, student)`` (by default, those of the course that holds ``grades_csv``)."""
    if any(r.graded and CHALLENGE_TESTS & set(r.tests) for r in results):
        notebook = notebook or _autograded(grades_csv)
        if notebook is not None:
            write_challenge(challenge_rows(results, notebook), grades_csv)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows = item_rows(results, max_points)
    table = grades_csv.with_name(grades_csv.stem + "-items.csv")
    with open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["lesson", "test", "points", "submissions", "pass_rate", "mean_points"])
        writer.writeheader()
        for row in rows:
            writer.writerow(row | {"points": f"{row['points']:g}", "pass_rate": f"{row['pass_rate']:.3f}",
                                   "mean_points": f"{row['mean_points']:.3f}"})
    graded = [r for r in results if r.graded and r.max_score]
    figure = Figure(figsize=(11, max(3.5, 0.28 * len(rows) + 1.5)), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=[1, 1.3])
    left.hist([100 * r.score / r.max_score for r in graded], bins=[i * 10 for i in range(11)],
              color="#4c72b0", edgecolor="white")
    left.set(title=f"score distribution ({len(graded)} graded)", xlabel="autograded score (%)",
             ylabel="submissions", xlim=(0, 100))
    lessons = {row["lesson"] for row in rows}
    labels = [row["test"] if len(lessons) == 1 else f"{row['lesson'][:2]} {row['test']}" for row in rows]
    right.barh(labels, [100 * row["pass_rate"] for row in rows], color="#55a868")
    right.invert_yaxis()
    right.set(title="pass rate per test", xlabel="submissions with full points (%)", xlim=(0, 100))
    right.tick_params(axis="y", labelsize=8)
    chart = grades_csv.with_name(grades_csv.stem + "-items.png")
    figure.savefig(chart, dpi=100)
    return table, chart
