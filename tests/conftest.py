"""Shared fixtures. Every test runs on the bundled MNIST sample (no download attempts) unless
it sets HANDWRITTEN_DATA itself, and notebooks run in kernels that inherit that setting."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p.name for p in (ROOT / "solutions").iterdir() if (p / f"{p.name}.ipynb").is_file())

os.environ.setdefault("HANDWRITTEN_DATA", "sample")
os.environ.pop("NBGRADER_EXECUTION", None)
os.environ.pop("NBGRADER_DB_URL", None)  # every course copy keeps its own gradebook


def copy_course(target: Path) -> Path:
    """A throwaway copy of the course (sources, lessons, grader config and fixtures), so tests
    can release and grade without touching the working tree or its gradebook."""
    scratch = shutil.ignore_patterns("submitted", "autograded", "feedback", "release", "downloaded",
                                     "gradebook.db*", "grades.csv", ".ipynb_checkpoints", "__pycache__")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("solutions", "lessons", "autograders"):
        shutil.copytree(ROOT / name, target / name, ignore=scratch)
    return target


@pytest.fixture
def course_copy(tmp_path):
    from handwritten.grading import Course

    return Course(copy_course(tmp_path / "course"))
