"""`make bench`: the course's speed figures, printed as a table and written as JSON.

* how long each instructor notebook takes on a fresh kernel (kernel start included);
* how long autograding one submission takes, through `handwritten grade` (nbgrader autograde + feedback);
* how long each lesson 06 widget takes to redraw after a control moves (benchmarks/widget_redraw.py);
* the lesson's loops against the vectorised versions and PyTorch, measured in one run: corr2d (28x28 digit,
  5x5 kernel) and 2x2 max pooling;
* grading at scale (benchmarks/grading.py): 20 submissions with one and two workers, and unsandboxed;
* each further module of ``FIGURES`` (a ``measure()`` that returns rows of
  {"what", "value", "unit", "limit", "better"}): lesson 05's training speed, lesson 07's engine, Binder
  and the demo (cold start, each lesson kernel's peak memory, the data prefetch).

The operators are taken from the instructor notebook itself, so the figures are those of the code students read.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
import timeit
from pathlib import Path

import nbformat
import torch
import torch.nn.functional as F
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HANDWRITTEN_DATA", "sample")

from grading import grading_scale  # noqa: E402
from grading import report as grading_report  # noqa: E402
from widget_redraw import REDRAW_LIMIT, widget_redraw_seconds  # noqa: E402

from handwritten.data import load_mnist  # noqa: E402
from handwritten.grading import Course, grade  # noqa: E402
from handwritten.grading.cases import submission  # noqa: E402

from conftest import LESSONS, copy_course  # noqa: E402

# The most seconds each instructor notebook may take on a fresh kernel (one core, bundled sample).
NOTEBOOK_LIMITS = {"03-what-is-torch-nn": 45, "05-cnns": 60, "06-inside-a-cnn": 60, "07-build-your-own-framework": 60}
DEFAULT_NOTEBOOK_LIMIT = 30
AUTOGRADE_LIMIT = 10  # seconds per submission, one worker, sandboxed, feedback included
FIGURES = ["cnn_speed", "autograd_speed", "binder_figures"]  # modules of benchmarks/ with measure()


def figure_rows() -> tuple[dict, list[str]]:
    """Every FIGURES module's rows, printed; returns them by module and what missed its limit."""
    import importlib

    found, over = {}, []
    for name in FIGURES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        found[name] = rows = module.measure()
        for row in rows:
            limit, better = row.get("limit"), row.get("better", "lower")
            word = "limit" if better == "lower" else "target"
            bound = "" if limit is None else f"   ({word} {limit:g} {row['unit']})"
            print(f"{row['what']:<58} {row['value']:>10.4g} {row['unit']}{bound}")
            missed = limit is not None and (row["value"] > limit if better == "lower" else row["value"] < limit)
            if missed:
                over.append(f"{row['what']}: {row['value']:.4g} {row['unit']} (limit {limit:g})")
    return found, over


def notebook_seconds(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
        return time.perf_counter() - start


def autograde_seconds(lesson: str, n: int = 3) -> float:
    """Mean seconds per submission for n correct submissions graded in one `grade` call, one worker."""
    with tempfile.TemporaryDirectory() as tmp:
        course = Course(copy_course(Path(tmp) / "course"))
        folder = Path(tmp) / "submissions"
        for i in range(n):
            target = folder / f"student{i}" / f"{lesson}.ipynb"
            target.parent.mkdir(parents=True)
            nbformat.write(submission(course, lesson), target)
        grade(course, folder, progress=False, workers=1)  # first call also releases into the gradebook
        shutil.rmtree(course.path("autograded"))
        start = time.perf_counter()
        results, _ = grade(course, folder, progress=False, workers=1)
        elapsed = time.perf_counter() - start
        assert all(r.score == r.max_score for r in results), [(r.status, r.notes) for r in results]
        return elapsed / n


def notebook_functions(lesson: str, names: list[str]) -> dict:
    """Define the notebook's own functions: the instructor's solution cells and the demo cells
    that define ``names``."""
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    namespace = {"torch": torch, "F": F, "nn": torch.nn}
    for cell in nb.cells:
        is_solution = cell.get("metadata", {}).get("nbgrader", {}).get("solution")
        if cell.cell_type == "code" and (is_solution or any(f"def {name}(" in cell.source for name in names)):
            exec(cell.source, namespace)
    return namespace


def seconds_per_call(fn, *args, repeat: int = 7, budget: float = 0.1) -> float:
    timer = timeit.Timer(lambda: fn(*args))
    number = max(1, int(budget / max(timer.timeit(1), 1e-7)))
    return min(timer.repeat(repeat=repeat, number=number)) / number


def operators() -> dict:
    fns = notebook_functions("04-convolutions-by-hand", ["corr2d_unfold", "pool2d_unfold"])
    digit = load_mnist(quiet=True).test_images[0].float() / 255
    kernel = torch.randn(5, 5)
    corr = {
        "loop (lesson 04 corr2d)": seconds_per_call(fns["corr2d"], digit, kernel),
        "vectorised (corr2d_unfold)": seconds_per_call(fns["corr2d_unfold"], digit, kernel),
        "F.conv2d": seconds_per_call(lambda x, k: F.conv2d(x[None, None], k[None, None]), digit, kernel),
    }
    pool = {
        "loop (lesson 04 pool2d)": seconds_per_call(fns["pool2d"], digit, (2, 2)),
        "vectorised (pool2d_unfold)": seconds_per_call(fns["pool2d_unfold"], digit, (2, 2)),
        "F.max_pool2d": seconds_per_call(lambda x: F.max_pool2d(x[None, None], 2, stride=1), digit),
    }
    return {"corr2d 28x28 * 5x5": corr, "max pool 28x28, 2x2, stride 1": pool}


def main() -> int:
    torch.set_num_threads(1)
    results = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                    "threads": torch.get_num_threads(), "data": os.environ["HANDWRITTEN_DATA"]},
        "notebook_seconds": {}, "autograde_seconds_per_submission": {}, "operators_seconds": operators(),
        "widget_redraw_seconds": widget_redraw_seconds(),
    }
    for lesson in LESSONS:
        results["notebook_seconds"][lesson] = notebook_seconds(ROOT / "solutions" / lesson / f"{lesson}.ipynb")
        results["autograde_seconds_per_submission"][lesson] = autograde_seconds(lesson)

    print(f"\n{'what':<58} {'time':>12} {'ratio':>9}")
    print("-" * 81)
    over = []
    for lesson in LESSONS:
        for what, seconds, limit in [
                (f"instructor notebook {lesson} (fresh kernel)", results["notebook_seconds"][lesson],
                 NOTEBOOK_LIMITS.get(lesson, DEFAULT_NOTEBOOK_LIMIT)),
                (f"autograde one submission of {lesson}", results["autograde_seconds_per_submission"][lesson],
                 AUTOGRADE_LIMIT)]:
            print(f"{what:<58} {seconds:>10.1f} s   (limit {limit} s)")
            if seconds > limit:
                over.append(f"{what}: {seconds:.1f} s > {limit} s")
    for name, seconds in results["widget_redraw_seconds"].items():
        print(f"{name + ' redraw (lesson 06 widget)':<58} {seconds * 1e3:>9.1f} ms"
              f"   (limit {REDRAW_LIMIT * 1e3:.0f} ms)")
        if seconds > REDRAW_LIMIT:
            over.append(f"{name} redraw: {seconds * 1e3:.0f} ms > {REDRAW_LIMIT * 1e3:.0f} ms")
    for group, timings in results["operators_seconds"].items():
        fastest = min(timings.values())
        for name, seconds in timings.items():
            print(f"{group + ': ' + name:<58} {seconds * 1e6:>9.1f} µs {seconds / fastest:>8.1f}x")
    results["figures"], missed = figure_rows()
    over += missed
    results["grading_scale"] = grading_scale(20)
    over += grading_report(results["grading_scale"])
    out = ROOT / "benchmarks" / "results" / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {out.relative_to(ROOT)}")
    if over:
        print("\nOVER BUDGET:\n  " + "\n  ".join(over))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
