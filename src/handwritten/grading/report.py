"""Item analysis: how each test did across the class, as a CSV and a chart (the score
distribution, and each test's pass rate), next to ``grades.csv``. A test nobody passes, or
everybody does, is worth a second look at the lesson or the test."""

from __future__ import annotations

import csv
from pathlib import Path

from .records import Result


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


def write_item_analysis(results: list[Result], max_points: dict[tuple[str, str], float],
                        grades_csv: Path) -> tuple[Path, Path]:
    """Write ``<grades>-items.csv`` and ``<grades>-items.png``; return their paths."""
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
