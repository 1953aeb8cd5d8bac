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


# ---------------------------------------------------------------- lesson 05's timed challenge

CNN = "05-cnns"


def graded_notebook(path, outputs):
    import json

    cell = {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "challenge_hidden", "grade": True}},
            "source": "", "outputs": outputs}
    path.write_text(json.dumps({"cells": [cell]}), encoding="utf-8")
    return path


def stdout(text):
    return {"output_type": "stream", "name": "stdout", "text": text}


def test_the_challenge_table_holds_what_the_grader_measured_and_nothing_else(tmp_path):
    notebooks = {
        "ada": graded_notebook(tmp_path / "ada.ipynb", [stdout(
            "challenge: 1.52 s of training, validation accuracy 0.9410 (target 90% within 4 s on the sample data).\n"
            "✓ the challenge: hidden tests passed.\n")]),
        "bo": graded_notebook(tmp_path / "bo.ipynb", [stdout(
            "challenge: 8.01 s of training, validation accuracy 0.5120 (target 90% within 4 s on the sample data).\n"),
            {"output_type": "error", "ename": "AssertionError", "evalue": "stopped", "traceback": []}]),
        # a failure before the measurement: its message (which may quote the student's) is no measurement
        "cy": graded_notebook(tmp_path / "cy.ipynb", [{
            "output_type": "error", "ename": "AssertionError", "traceback": [],
            "evalue": "challenge: 0.01 s of training, validation accuracy 1.0"}]),
    }
    results = [Result(name, CNN, score=s, max_score=2, tests={"challenge_hidden": s}) for name, s in
               [("ada", 2.0), ("bo", 0.0), ("cy", 0.0)]]
    write_item_analysis(results, {(CNN, "challenge_hidden"): 2.0}, tmp_path / "grades.csv",
                        notebook=lambda lesson, student: notebooks[student])
    with open(tmp_path / "grades-challenge.csv", newline="") as f:
        rows = [(r["student"], r["seconds"], r["accuracy"], r["points"]) for r in csv.DictReader(f)]
    assert rows == [("ada", "1.52", "0.9410", "2"), ("bo", "8.01", "0.5120", "0")]
    assert (tmp_path / "grades-challenge.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_challenge_no_challenge_table(tmp_path):
    write_item_analysis(results(), {}, tmp_path / "grades.csv")
    assert not (tmp_path / "grades-challenge.csv").exists()
