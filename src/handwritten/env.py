"""The first cell of every lesson: check the environment, fix threads and seeds, say which
data is in use and whether the notebook is being graded.

    from handwritten import env
    course = env.setup()

Everything is printed to stdout in one short block; a broken environment raises
``EnvironmentProblem`` with the exact command that fixes it.
"""

from __future__ import annotations

import os
import platform
import random
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from . import __version__
from .files import find_up

# Minimum versions the lessons are written and tested against (major.minor).
REQUIRED = {
    "torch": "2.13",
    "torchvision": "0.28",
    "numpy": "1.26",
    "matplotlib": "3.8",
    "ipywidgets": "8.1",
    "tqdm": "4.66",
}

FIX = ("To fix it, open the course with `make lab` from the course folder (it installs the "
       "environment and starts JupyterLab with it), or run `uv sync` there and pick the kernel "
       "of its .venv. With conda: `conda env update -f environment.yml`, then restart the kernel.")
MIN_PYTHON = (3, 11)
CLONE = ("uv.lock", "Makefile")  # what marks a clone of the course's repository
PLACES = {"binder": "Binder", "conda": "conda environment", "venv": "virtual environment", "python": "system Python"}


def _course_folder() -> Path | None:
    """The course folder this package is used from (a clone with a Makefile and uv.lock), if any."""
    return find_up(Path.cwd(), *CLONE) or find_up(Path(__file__).parent, *CLONE)


def where() -> str:
    """Where this kernel runs: "binder", "conda" (a conda environment), "venv" (the course's .venv, or
    another virtual environment) or "python" (some other Python)."""
    if os.environ.get("BINDER_LAUNCH_HOST") or os.environ.get("BINDER_REQUEST") or os.environ.get("BINDER_REPO_URL"):
        return "binder"
    if os.environ.get("CONDA_PREFIX") and Path(sys.prefix).resolve() == Path(os.environ["CONDA_PREFIX"]).resolve():
        return "conda"
    if sys.prefix != sys.base_prefix:
        return "venv"
    return "python"


def _in_course_venv() -> bool:
    course = _course_folder()
    return bool(course) and Path(sys.prefix).resolve() == (course / ".venv").resolve()


def place() -> str:
    """Where this kernel runs, in words: "Binder", "the course's .venv", "conda environment"..."""
    kind = where()
    return "the course's .venv" if kind == "venv" and _in_course_venv() else PLACES[kind]


def fix(kind: str | None = None) -> str:
    """The one thing to run that repairs the environment ``kind`` (default: this kernel's)."""
    kind = kind or where()
    course = _course_folder()
    folder = f"cd {course} && " if course else ""
    if kind == "binder":
        return ("This Binder image does not match the course. Relaunch it from the course's Binder badge "
                "(File → Hub Control Panel → Stop My Server, then open the badge's link again); if that does not "
                "help, tell your instructor: the image needs rebuilding.")
    if kind == "conda":
        env_file = course / "environment.yml" if course else "environment.yml"
        return (f"To fix it, run in a terminal:  conda env update --prune -f {env_file}  then restart the "
                "kernel (Kernel → Restart Kernel).")
    if kind == "venv" and _in_course_venv():
        return (f"To fix it, run in a terminal:  {folder}make setup  (it runs `uv sync --frozen`) then restart "
                "the kernel (Kernel → Restart Kernel).")
    return (f"This kernel ({sys.executable}) is not the course's Python. Close this JupyterLab and run in a "
            f"terminal:  {folder or 'cd <the course folder> && '}make lab  (it installs the course's environment "
            "and opens the lessons with it). Or: `uv sync` there and pick the kernel of its .venv; with conda, "
            "`conda env update -f environment.yml`.")


class EnvironmentProblem(RuntimeError):
    """The Python environment cannot run the lessons; the message says how to fix it."""


@dataclass(frozen=True)
class Setup:
    """What ``setup`` found and set (a lesson keeps it as ``course = env.setup()``)."""
    versions: dict
    threads: int
    seed: int
    graded: str | None          # None, "autograde" or "validate" (nbgrader's NBGRADER_EXECUTION)
    mnist: object               # handwritten.data.MNIST


def _major_minor(version: str) -> tuple[int, int]:
    """(2, 13) for "2.13.0+cu130"; (4, 66) for "4.66rc1"."""
    numbers = [int(m.group()) if (m := re.match(r"\d+", piece)) else 0 for piece in version.split(".")[:2]]
    return tuple(numbers + [0] * (2 - len(numbers)))


def check_versions(required: dict = REQUIRED) -> dict:
    """Return {package: version}; raise EnvironmentProblem listing every missing or old one."""
    found, problems = {}, []
    if sys.version_info < MIN_PYTHON:
        problems.append(f"Python {platform.python_version()} is too old (need {'.'.join(map(str, MIN_PYTHON))} "
                        "or newer)")
    for name, minimum in required.items():
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed (need {minimum} or newer)")
            continue
        if _major_minor(found[name]) < _major_minor(minimum):
            problems.append(f"{name} {found[name]} is too old (need {minimum} or newer)")
    if problems:
        raise EnvironmentProblem("This kernel's environment cannot run the course: "
                                 + "; ".join(problems) + ".\n" + fix())
    return found


def grading() -> str | None:
    """'autograde' or 'validate' while nbgrader runs the notebook, else None."""
    return os.environ.get("NBGRADER_EXECUTION") or None


def threads_wanted() -> int:
    value = os.environ.get("HANDWRITTEN_THREADS", "1")
    try:
        n = int(value)
    except ValueError:
        raise EnvironmentProblem(f"HANDWRITTEN_THREADS={value!r} is not a whole number.") from None
    if n < 1:
        raise EnvironmentProblem(f"HANDWRITTEN_THREADS={value!r} must be at least 1.")
    return n


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(seed: int = 0, *, load_data: bool = True) -> Setup:
    """Check versions, use ``HANDWRITTEN_THREADS`` torch threads (default 1: on a shared or
    one-core machine more threads are slower), seed Python, NumPy and torch, load MNIST and
    print one block that says all of it."""
    versions = check_versions()
    import torch

    threads = threads_wanted()
    torch.set_num_threads(threads)
    seed_everything(seed)
    graded = grading()
    shown = " · ".join(f"{name} {versions[name]}" for name in ("torch", "torchvision", "numpy",
                                                               "matplotlib", "ipywidgets"))
    print(f"Handwritten {__version__}: environment OK (Python {platform.python_version()}, {place()})")
    print(f"  {shown}")
    print(f"  torch threads: {threads} (set HANDWRITTEN_THREADS to change) · random seed: {seed}")
    if graded:
        print(f"  graded: yes, nbgrader is running this notebook ({graded}); training is shortened")
    else:
        print("  graded: no; each exercise's self-check prints ✓ when its public checks pass")
    mnist = None
    if load_data:
        from . import data
        print("  ", end="")
        mnist = data.load_mnist()
    return Setup(versions=versions, threads=threads, seed=seed, graded=graded, mnist=mnist)
