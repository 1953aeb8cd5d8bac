"""The item analysis (``handwritten.grading.report``): each test's pass rate over the graded
submissions only, by their status (an error row has no scores to count)."""

from __future__ import annotations

import csv

import pytest

from handwritten.grading import Result
from handwritten.grading.report import item_rows, write_item_analysis

CONV = "04-convolutions-by-hand"


def results() -> list[Result]:
    return [Result("ada", CONV, score=3, max_score=3, tests={"a": 1.0, "b": 2.0}),
            Result("bo", CONV, score=1, max_score=3, tests={"a": 1.0, "b": 0.0}, notes=["feedback failed: x"]),
            Result.error("cy", CONV, "the kernel died while running the notebook", tests={"a": 0.0, "b": 0.0})]


def test_pass_rates_count_graded_submissions_only():
    rows = {row["test"]: row for row in item_rows(results(), {(CONV, "a"): 1.0, (CONV, "b"): 2.0})}
    assert rows["a"]["submissions"] == rows["b"]["submissions"] == 2
    assert rows["a"]["pass_rate"] == 1.0 and rows["b"]["pass_rate"] == 0.5
    assert rows["b"]["mean_points"] == pytest.approx(1.0)


def test_the_table_and_the_chart_are_written_beside_the_grades(tmp_path):
    table, chart = write_item_analysis(results(), {}, tmp_path / "grades.csv")
    with open(table, newline="") as f:
        assert [(r["test"], r["pass_rate"]) for r in csv.DictReader(f)] == [("a", "1.000"), ("b", "0.500")]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
