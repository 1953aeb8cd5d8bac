"""Shared fixtures. Every test runs on the bundled MNIST sample (no download attempts) unless
it sets HANDWRITTEN_DATA itself, and notebooks run in kernels that inherit that setting."""

from __future__ import annotations

import os
import re
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


def without_demos(nb):
    """The notebook with the lesson's own demonstration cells emptied (they call corr2d too): only its exercises
    and their tests run."""
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and not meta.get("locked") and not meta.get("solution"):
            cell.source = ""
    return nb


@pytest.fixture
def course_copy(tmp_path):
    from handwritten.grading import Course

    return Course(copy_course(tmp_path / "course"))


# ---------------------------------------------------------------- running side by side (pytest-xdist)
# `make test` runs the suite in several processes (`-n auto`). A test file's tests stay together in one process,
# because many share an expensive module fixture (a graded batch, a JupyterLab server, an executed notebook); the
# tests of INDEPENDENT files share nothing and run wherever a process is free; the real-nbgrader grading contract
# (test_grading.py) is one unit per lesson. The long poles go first, so that no process starts one when the others
# are done. (xdist's own `loadgroup` marks do not group anything under pytest 9: its workers rename a node id that
# pytest 9 no longer reads. So the units are made here, by the scheduler.)
INDEPENDENT = {"test_checks.py", "test_notebooks.py"}
PER_LESSON = {"test_grading.py"}
LONG_POLES = ["test_adversarial.py", "test_forgery.py", "test_grading.py", "test_adversarial_kernel.py",
              "test_adversarial_outputs.py", "test_grading_scale.py", "test_lab.py", "test_class.py",
              "test_adversarial_intake.py", "test_train_pretrained.py", "test_grading_slurm.py",
              "test_grading_shards.py", "test_browser_inside_cnn.py", "test_notebooks.py", "test_browser_demo.py",
              "test_binder.py", "test_demo.py"]
LESSON_IN_ID = re.compile(r"\[(\d\d-[a-z-]+)")
GROUPED_LESSON = "04-convolutions-by-hand"  # test_grading.py's tests without a lesson use lesson 04's grading


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its file, its own id, or its file and lesson."""
    path = nodeid.split("::", 1)[0]
    name = path.rsplit("/", 1)[-1]
    if name in INDEPENDENT:
        return nodeid
    if name in PER_LESSON:
        lesson = LESSON_IN_ID.search(nodeid)
        return f"{path}:{lesson.group(1) if lesson else GROUPED_LESSON}"
    return path


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_POLES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: otherwise in collection order


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's: nothing to do without it
def pytest_xdist_make_scheduler(config, log):
    """Schedule the units of ``unit_of``, in the order collected (long poles first)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False
    return ByUnit(config, log)
