"""Grading at scale, for `make bench`: N lesson-04 submissions graded with one worker and with two
(seconds per submission, speed-up; target >= 1.6x on 2 cores), and with two workers unsandboxed
(the sandbox's overhead; target <= 10 %). Every run regrades everything (force) in one course copy.

    uv run --frozen python benchmarks/grading.py [N]
"""

from __future__ import annotations

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
            assert all(r.score == r.max_score > 0 for r in results), [r.status for r in results]
            figures[f"{name}_seconds_per_submission"] = elapsed / n
    figures["speedup"] = figures["workers_1_seconds_per_submission"] / figures["workers_2_seconds_per_submission"]
    figures["sandbox_overhead"] = (figures["workers_2_seconds_per_submission"]
                                   / figures["workers_2_unsandboxed_seconds_per_submission"] - 1)
    return figures


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
    figures = grading_scale(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    missed = report(figures)
    print(json.dumps(figures, indent=2))
    sys.exit(1 if missed else 0)
