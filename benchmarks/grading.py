"""Grading at scale, for `make bench`: N lesson-04 submissions graded with one worker and with two
(seconds per submission, speed-up; target >= 1.6x on 2 cores), and with two workers unsandboxed
(the sandbox's overhead; target <= 10 %). Every run regrades everything (force) in one course copy.

And one submission of each lesson graded alone, with one worker (target <= 15 s), with what the grader
spends around nbgrader's autograde (the kernel runs inside it): the release check, the integrity scan,
reading the scores, the feedback, the item analysis; and against the same submission graded with its test cells
in the student's kernel, as before they ran in the grader (target <= 1.25x).

    uv run --frozen python benchmarks/grading.py [N]
    uv run --frozen python benchmarks/grading.py one [LESSON ...]
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HANDWRITTEN_DATA", "sample")

from handwritten.grading import Course, grade, release  # noqa: E402
from handwritten.grading.cases import submission  # noqa: E402
from handwritten.grading.sandbox import resolve  # noqa: E402

from conftest import copy_course  # noqa: E402

LESSON = "04-convolutions-by-hand"
SPEEDUP_TARGET = 1.6
OVERHEAD_TARGET = 0.10
ONE_TARGET = 15.0  # seconds to grade one submission with one worker (lessons 01-03 hold more exercises now)
RATIO_TARGET = 1.25  # test cells in the grader, against the same cells in the student's kernel
PHASES = ["release", "scan", "autograde", "scores", "generate_feedback", "write_item_analysis"]


def grading_scale(n: int = 20) -> dict:
    """Seconds per submission for workers 1 and 2 (sandboxed) and workers 2 unsandboxed."""
    sandbox, warning = resolve("auto")
    figures = {"submissions": n, "sandbox": sandbox, "sandbox_warning": warning}
    with tempfile.TemporaryDirectory() as tmp:
        course = Course(copy_course(Path(tmp) / "course"))
        folder = Path(tmp) / "submissions"
        for i in range(n):
            target = folder / f"student{i:02d}" / f"{LESSON}.ipynb"
            target.parent.mkdir(parents=True)
            nbformat.write(submission(course, LESSON), target)
        release(course, [LESSON])  # into the gradebook, outside the timings
        for name, workers, mode in [("workers_1", 1, sandbox), ("workers_2", 2, sandbox),
                                    ("workers_2_unsandboxed", 2, "off")]:
            start = time.perf_counter()
            results, _ = grade(course, folder, progress=False, workers=workers, force=True, sandbox=mode)
            elapsed = time.perf_counter() - start
            assert all(r.score == r.max_score > 0 for r in results), [(r.status, r.notes) for r in results]
            figures[f"{name}_seconds_per_submission"] = elapsed / n
    figures["speedup"] = figures["workers_1_seconds_per_submission"] / figures["workers_2_seconds_per_submission"]
    figures["sandbox_overhead"] = (figures["workers_2_seconds_per_submission"]
                                   / figures["workers_2_unsandboxed_seconds_per_submission"] - 1)
    return figures


@contextlib.contextmanager
def phases():
    """Seconds spent in each of PHASES while inside (the grading module's functions, timed in place)."""
    module = importlib.import_module("handwritten.grading.grade")
    from nbgrader.apps import NbGraderAPI

    spent: dict[str, float] = {}
    owners = {name: NbGraderAPI if name == "generate_feedback" else module for name in PHASES}
    originals = {name: getattr(owner, name) for name, owner in owners.items()}

    def timed(name, function):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        return run

    for name, owner in owners.items():
        setattr(owner, name, timed(name, originals[name]))
    try:
        yield spent
    finally:
        for name, owner in owners.items():
            setattr(owner, name, originals[name])


def one_submission(lessons: list[str], repeats: int = 2) -> dict:
    """For each lesson: the fastest of ``repeats`` gradings (force) of one correct submission with one
    worker, in seconds, and where they went (after a first run, which releases into the gradebook); and the same
    with the test cells in the kernel (``tests_run_in = "kernel"``, as before the grader ran them): their ratio."""
    figures = {}
    for lesson in lessons:
        for tests_in in ("grader", "kernel"):
            with tempfile.TemporaryDirectory() as tmp:
                course = Course(copy_course(Path(tmp) / "course"))
                if tests_in == "kernel":
                    with open(course.root / "autograders" / "nbgrader_config.py", "a") as config:
                        config.write('\nc.SandboxedExecute.tests_run_in = "kernel"\n')
                folder = Path(tmp) / "submissions"
                (folder / "student").mkdir(parents=True)
                nbformat.write(submission(course, lesson), folder / "student" / f"{lesson}.ipynb")
                grade(course, folder, progress=False, workers=1)
                runs = []
                for _ in range(repeats):
                    with phases() as spent:
                        start = time.perf_counter()
                        results, _ = grade(course, folder, progress=False, workers=1, force=True)
                        runs.append({"seconds": time.perf_counter() - start, **spent})
                    assert results[0].score == results[0].max_score > 0, (results[0].status, results[0].notes)
            fastest = min(runs, key=lambda run: run["seconds"])
            if tests_in == "grader":
                figures[lesson] = fastest
            else:
                figures[lesson]["tests_in_kernel_seconds"] = fastest["seconds"]
                figures[lesson]["ratio"] = figures[lesson]["seconds"] / fastest["seconds"]
    return figures


def report_one(figures: dict) -> list[str]:
    """Print one submission's figures; return what missed its target."""
    print(f"\ngrading one submission, one worker (target <= {ONE_TARGET:g} s); the kernel runs inside autograde;"
          f" tests in the grader against tests in the kernel (target <= {RATIO_TARGET:g}x)")
    print(f"  {'lesson':<30} {'total':>7} " + " ".join(f"{name[:12]:>12}" for name in PHASES)
          + f" {'in kernel':>10} {'ratio':>6}")
    missed = []
    for lesson, run in figures.items():
        print(f"  {lesson:<30} {run['seconds']:>6.2f}s " + " ".join(f"{run.get(n, 0):>11.2f}s" for n in PHASES)
              + f" {run['tests_in_kernel_seconds']:>9.2f}s {run['ratio']:>5.2f}x")
        if run["seconds"] > ONE_TARGET:
            missed.append(f"grading one submission of {lesson}: {run['seconds']:.1f} s > {ONE_TARGET:g} s")
        if run["ratio"] > RATIO_TARGET:
            missed.append(f"grading {lesson} with the tests in the grader: {run['ratio']:.2f}x > {RATIO_TARGET:g}x")
    return missed


def report(figures: dict) -> list[str]:
    """Print the figures; return what missed its target."""
    print(f"\ngrading {figures['submissions']} x {LESSON} (sandbox: {figures['sandbox']})")
    for key in ("workers_1", "workers_2", "workers_2_unsandboxed"):
        print(f"  {key.replace('_', ' '):<28} {figures[key + '_seconds_per_submission']:>7.2f} s per submission")
    print(f"  speed-up, 2 workers            {figures['speedup']:>7.2f}x   (target >= {SPEEDUP_TARGET}x)")
    print(f"  sandbox overhead               {100 * figures['sandbox_overhead']:>+7.1f} %  "
          f"(target <= {100 * OVERHEAD_TARGET:.0f} %)")
    missed = []
    if figures["speedup"] < SPEEDUP_TARGET:
        missed.append(f"grading speed-up {figures['speedup']:.2f}x < {SPEEDUP_TARGET}x")
    if figures["sandbox_overhead"] > OVERHEAD_TARGET:
        missed.append(f"sandbox overhead {100 * figures['sandbox_overhead']:.1f} % > {100 * OVERHEAD_TARGET:.0f} %")
    return missed


if __name__ == "__main__":
    if sys.argv[1:2] == ["one"]:
        figures = one_submission(sys.argv[2:] or sorted(p.name for p in (ROOT / "solutions").iterdir()
                                                         if (p / f"{p.name}.ipynb").is_file()))
        missed = report_one(figures)
    else:
        figures = grading_scale(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
        missed = report(figures)
    print(json.dumps(figures, indent=2))
    sys.exit(1 if missed else 0)
