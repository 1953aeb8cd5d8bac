"""Find the class's notebooks in a folder or an LMS zip, and say whose each one is.

Two layouts are understood, in a folder or inside a zip:

* one sub-folder per student, the notebook anywhere inside it, under its lesson's name:
  ``alice/04-convolutions-by-hand.ipynb`` or ``alice/04-convolutions-by-hand/04-convolutions-by-hand.ipynb``;
* flat files named the way LMS bulk downloads name them, ``<student>_<anything>_<lesson>.ipynb``,
  e.g. Canvas's ``alice_12345_678901_04-convolutions-by-hand.ipynb`` or ``alice_LATE_12345_678901_...``.

A trailing ``-1``, ``-2`` (a resubmission) or `` (1)`` (a browser's duplicate download) after the
lesson name is accepted; of several copies, the highest number wins. A notebook named after no lesson
(``Untitled.ipynb``, ``homework (final).ipynb``) is matched by its nbgrader cell ids when they are
those of one lesson, and reported otherwise. Nothing in the source is changed.
"""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .cells import grade_ids
from .course import CourseError

COPY_SUFFIX = re.compile(r"(?:-(\d+)| \((\d+)\))$")
SKIP = frozenset({".ipynb_checkpoints", "__MACOSX"})


@dataclass(frozen=True)
class Submission:
    student: str
    assignment: str
    path: Path
    copy: int = 0  # resubmission number
    renamed: str = ""  # the file's name, when it was matched to its lesson by cell ids instead


@dataclass
class Collected:
    submissions: list[Submission] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # files that could not be attributed
    workdir: tempfile.TemporaryDirectory | None = None  # holds an extracted zip while grading


def safe_id(name: str) -> str:
    """A student id that is safe as a folder name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "unknown"


def _lesson_of(stem: str, assignments: list[str]) -> tuple[str, int] | None:
    """The lesson a notebook name ends with, and its copy number."""
    copy = 0
    match = COPY_SUFFIX.search(stem)
    if match:
        copy = int(match.group(1) or match.group(2))
        stem = stem[:match.start()]
    for assignment in sorted(assignments, key=len, reverse=True):
        if stem == assignment or stem.endswith("_" + assignment):
            return assignment, copy
    return None


def _lesson_by_cells(path: Path, cell_ids: dict[str, set[str]]) -> str | None:
    """The lesson whose nbgrader cell ids the notebook holds: most of them, and more than of any other."""
    try:
        found = grade_ids(json.loads(path.read_text(encoding="utf-8")).get("cells", []))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError):
        return None
    share = {lesson: len(found & ids) / len(ids) for lesson, ids in cell_ids.items() if ids}
    ranked = sorted(share, key=share.get, reverse=True)
    if ranked and share[ranked[0]] >= 0.5 and (len(ranked) == 1 or share[ranked[1]] < share[ranked[0]]):
        return ranked[0]
    return None


def extract_zip(archive: Path, into: Path) -> None:
    """Extract an LMS zip, refusing entries that would land outside ``into``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                target = (into / info.filename).resolve()
                if not target.is_relative_to(into.resolve()):
                    raise CourseError(f"{archive}: unsafe path in zip: {info.filename!r}")
            zf.extractall(into)
    except zipfile.BadZipFile as error:
        raise CourseError(f"{archive} is not a readable zip file ({error}).") from None


def collect(source: Path, assignments: list[str], cell_ids: dict[str, set[str]] | None = None) -> Collected:
    """Every notebook under ``source`` (a folder or a .zip), attributed to a student and a lesson
    (by its name, else by ``cell_ids``: each lesson's nbgrader cell ids)."""
    source = Path(source)
    collected = Collected()
    if source.is_file() and source.suffix.lower() == ".zip":
        collected.workdir = tempfile.TemporaryDirectory(prefix="handwritten-zip-")
        root = Path(collected.workdir.name)
        extract_zip(source, root)
    elif source.is_dir():
        root = source
    else:
        raise CourseError(f"{source} is neither a folder of submissions nor a .zip file.")

    best: dict[tuple[str, str], Submission] = {}
    for path in sorted(root.rglob("*.ipynb")):
        relative = path.relative_to(root)
        if SKIP & set(relative.parts):
            continue
        found, renamed = _lesson_of(path.stem, assignments), ""
        if found is None and (matched := _lesson_by_cells(path, cell_ids or {})):
            found, renamed = (matched, 0), path.name
        if found is None:
            collected.problems.append(f"{relative}: not named after any lesson ({', '.join(assignments)}), "
                                      f"and its cells are not those of one lesson")
            continue
        assignment, copy = found
        if len(relative.parts) > 1:
            student = relative.parts[0]
        else:
            student = path.stem.split("_", 1)[0] if "_" in path.stem else ""
            if not student:
                collected.problems.append(f"{relative}: a notebook at the top level must be named "
                                          f"<student>_..._<lesson>.ipynb")
                continue
        submission = Submission(safe_id(student), assignment, path, copy, renamed)
        key = (submission.student, assignment)
        if key in best:
            kept, dropped = sorted([best[key], submission], key=lambda s: (s.copy, s.path.name), reverse=True)
            collected.problems.append(f"{dropped.path.relative_to(root)}: older copy of "
                                      f"{kept.path.relative_to(root)}, not graded")
            best[key] = kept
        else:
            best[key] = submission
    collected.submissions = sorted(best.values(), key=lambda s: (s.student, s.assignment))
    return collected
