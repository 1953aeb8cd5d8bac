"""The instructor's command line, ``handwritten``: what it prints and exits with, and its argument
checks (tests/grading/ tests the pipeline behind it; test_grading.py grades through it)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import nbformat
import pytest

import handwritten.grading as pipeline
from handwritten import cli
from handwritten.grading import Result

from conftest import ROOT

NB = "04-convolutions-by-hand"


def handwritten(*args, cwd):
    return subprocess.run([sys.executable, "-m", "handwritten.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_grade_prints_each_row_and_counts_errors_by_status(monkeypatch, capsys, tmp_path):
    graded = Result("ada", NB, score=3, max_score=4, notes=["a cell ran past the time limit and was interrupted"])
    broken = Result.error("bo", NB, "not a readable notebook (no cells)")
    kept = Result("cy", NB, score=4, max_score=4, kept=True, flags=["cell corr2d, line 2: touches sys.modules"])
    monkeypatch.setattr(pipeline, "grade", lambda *a, **k: ([graded, broken, kept], ["stray.txt: not ..."]))
    assert cli.main(["--course", str(ROOT), "grade", str(tmp_path), "--out", str(tmp_path / "g.csv")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "skipped: stray.txt: not ..." in out
    rows = {line.split()[0]: line for line in out if line.startswith(("ada ", "bo ", "cy "))}
    assert rows["ada"].endswith("3/4     graded; a cell ran past the time limit and was interrupted")
    assert rows["bo"].endswith("0/0     error; not a readable notebook (no cells)")
    assert rows["cy"].endswith("4/4     graded")
    assert "integrity: cy 04-convolutions-by-hand: cell corr2d, line 2: touches sys.modules" in out
    assert any("3 notebook(s): 2 graded now, 1 kept" in line and "1 with errors, 1 flagged" in line for line in out)


@pytest.mark.parametrize("words,field,value", [
    (["grade", "x", "--shard", "1/4"], "shard", (1, 4)),
    (["grade", "x", "--workers", "3"], "workers", 3),
    (["grade", "x", "--wall-time", "60"], "wall_time", 60),
])
def test_arguments_are_parsed(words, field, value):
    assert getattr(cli.build_parser().parse_args(words), field) == value


@pytest.mark.parametrize("words,message", [
    (["grade", "x", "--shard", "4/4"], "0 <= I < N"),
    (["grade", "x", "--shard", "two"], "0 <= I < N"),
    (["grade", "x", "--workers", "0"], "at least 1"),
    (["grade", "x", "--timeout", "-5"], "at least 1"),
])
def test_bad_arguments_say_what_is_expected(words, message, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.build_parser().parse_args(words)
    assert exit.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(argparse.ArgumentTypeError):
        cli._positive("0")


def test_release_check_catches_a_stale_lesson(course_copy):
    # one lesson: test_notebooks proves every committed lesson is what release generates
    assert handwritten("release", NB, "--check", cwd=course_copy.root).returncode == 0
    source = course_copy.root / "solutions" / NB / f"{NB}.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells[0].source += "\n\nA sentence added to the instructor's notebook."
    nbformat.write(nb, source)
    done = handwritten("release", NB, "--check", cwd=course_copy.root)
    assert done.returncode == 1 and "out of date" in done.stderr and "Commit" in done.stderr


def test_errors_say_what_to_do(course_copy, tmp_path):
    done = handwritten("release", "99-nothing", cwd=course_copy.root)
    assert done.returncode == 2 and "No such lesson" in done.stderr and NB in done.stderr
    done = handwritten("grade", str(tmp_path / "nowhere"), cwd=course_copy.root)
    assert done.returncode == 2 and "neither a folder" in done.stderr
    done = handwritten("release", cwd=tmp_path)
    assert done.returncode == 2 and "No course found" in done.stderr and "--course" in done.stderr
