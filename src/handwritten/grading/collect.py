"""Find the class's notebooks in a folder or an LMS zip, and say whose each one is.

Two layouts are understood, in a folder or inside a zip:

* one sub-folder per student, the notebook anywhere inside it, under its lesson's name:
  ``alice/04-convolutions-by-hand.ipynb`` or ``alice/04-convolutions-by-hand/04-convolutions-by-hand.ipynb``;
* flat files named the way LMS bulk downloads name them, ``<student>_<anything>_<lesson>.ipynb``,
  e.g. Canvas's ``alice_12345_678901_04-convolutions-by-hand.ipynb`` or ``alice_LATE_12345_678901_...``,
  whose user id (12345) is kept as the submission's ``lms_id``; two students of one name are ``alice-12345`` and
  ``alice-12346``.

A trailing ``-1``, ``-2`` (a resubmission) or `` (1)`` (a browser's duplicate download) after the
lesson name is accepted; of several copies, the highest number wins. A notebook named after no lesson
(``Untitled.ipynb``, ``homework (final).ipynb``) is matched by its nbgrader cell ids when they are
those of one lesson, and reported otherwise. Nothing in the source is changed.

Nothing in the source is trusted either: links are never followed (a linked notebook, like a folder, pipe or
device named like one, is its student's row with its reason; a linked folder is not looked into), a zip's
entries that are links, absolute or outside the folder, or too large are refused one by one (``extract_zip``),
and two different names are never one student (``safe_id``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .cells import grade_ids
from .course import CourseError
from .intake import MAX_NOTEBOOK_BYTES, Refused, load_notebook, problem, size_text

COPY_SUFFIX = re.compile(r"(?:-(\d+)| \((\d+)\))$")
# Canvas names a bulk download's files <name>_[LATE_]<user id>_<submission id>_<file>: the user id is the gradebook's
# "ID" column, what an export back to Canvas matches students by (canvas.py).
LMS_ID = re.compile(r"^[^_]+_(?:LATE_)?(\d+)_\d+_", re.IGNORECASE)
SKIP = frozenset({".ipynb_checkpoints", "__MACOSX"})
# A zip is extracted to a temporary folder before grading. A class's zip is a few hundred notebooks of a few MB at
# most; 1 GB of notebooks is past any class and still fits a grading machine's /tmp. Counted in bytes written, so
# that a zip bomb (600 MB of zeros is 600 KB zipped) costs at most this much disk and decompression.
MAX_ZIP_BYTES = 2**30
MAX_ZIP_NOTEBOOKS = 10_000  # a few hundred students times seven lessons; past this a zip is a bomb of files


@dataclass(frozen=True)
class Submission:
    student: str
    assignment: str
    path: Path
    copy: int = 0  # resubmission number
    renamed: str = ""  # the file's name, when it was matched to its lesson by cell ids instead
    problem: str = ""  # why it is not graded: not a file that can be read (a link, a pipe, too large)
    lms_id: str = ""  # the LMS's user id from the file's name (Canvas's "ID"), "" when the name has none

    @property
    def late(self) -> bool:
        return "_LATE_" in self.path.name.upper()


@dataclass
class Collected:
    submissions: list[Submission] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # files that could not be attributed
    workdir: tempfile.TemporaryDirectory | None = None  # holds an extracted zip while grading


def safe_id(name: str) -> str:
    """A student id that is safe as a folder name, and never another name's: a name already safe is its own id
    (``alice``, ``bob-2``); any other is made safe and tagged with a hash of the name itself
    (``Jean-Luc Picard!`` -> ``Jean-Luc_Picard~5c1e...``): ``alice.`` is not ``alice``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    if cleaned and cleaned == name:
        return name
    tag = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{cleaned or 'unknown'}~{tag}"  # "~" is in no safe name: a tagged id is never a name's own


def shown(path) -> str:
    """A file name as text that can be printed and written to the CSV (a name need not be UTF-8)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


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
        found = grade_ids(load_notebook(path)["cells"])
    except Refused:
        return None
    share = {lesson: len(found & ids) / len(ids) for lesson, ids in cell_ids.items() if ids}
    ranked = sorted(share, key=share.get, reverse=True)
    if ranked and share[ranked[0]] >= 0.5 and (len(ranked) == 1 or share[ranked[1]] < share[ranked[0]]):
        return ranked[0]
    return None


def _unsafe(name: str) -> str:
    """Why a zip entry's name cannot be extracted as it is, or ""."""
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "a path out of the zip's folder"
    return ""


def extract_zip(archive: Path, into: Path, *, max_bytes: int = MAX_ZIP_BYTES, max_entry: int = MAX_NOTEBOOK_BYTES,
                max_notebooks: int = MAX_ZIP_NOTEBOOKS) -> list[tuple[str, str]]:
    """Extract an LMS zip's notebooks into ``into``; return the entries refused, each with why: a link, an absolute
    path or one out of ``into``, a notebook past ``max_entry`` bytes, and every notebook once ``max_bytes`` were
    written or ``max_notebooks`` extracted. Sizes are counted as the bytes come out, never taken from the zip's
    headers. Entries that are not notebooks are not needed for grading and are not extracted."""
    refused, written, count = [], 0, 0
    too_much = f"the zip's notebooks come to more than {size_text(max_bytes)}"
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise CourseError(f"{archive} is not a readable zip file ({error}).") from None
    with zf:
        for info in zf.infolist():
            name = info.filename
            why = _unsafe(name) or ("a symbolic link" if stat.S_ISLNK(info.external_attr >> 16) else "")
            if why:
                refused.append((name, f"{why} in the zip: not extracted"))
                continue
            if info.is_dir() or not name.endswith(".ipynb"):
                continue
            count += 1
            if count > max_notebooks:
                refused.append((name, f"past the zip's first {max_notebooks:,} notebooks: not extracted"))
                continue
            if written >= max_bytes:
                refused.append((name, f"{too_much}: not extracted"))
                continue
            target, why = into / name, ""
            try:
                if not target.resolve().is_relative_to(into.resolve()):
                    raise ValueError("a path out of the zip's folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                size = 0
                with os.fdopen(fd, "wb") as out, zf.open(info) as entry:
                    while chunk := entry.read(2**20):
                        size += len(chunk)
                        written += len(chunk)
                        if size > max_entry or written > max_bytes:
                            break
                        out.write(chunk)
                if size > max_entry:
                    why = f"larger than {size_text(max_entry)} when extracted"
                elif written > max_bytes:
                    why = too_much
            except FileExistsError:
                why = "a second entry of the same name"
            except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError, EOFError) as error:
                why = f"cannot be extracted ({error})"  # a bad CRC, a password, an unknown compression
            if why:
                refused.append((name, f"{why}: not extracted"))
                if why != "a second entry of the same name":
                    with contextlib.suppress(OSError):
                        target.unlink()
    return refused


def _walk(root: Path, problems: list[str]) -> list[tuple[Path, str]]:
    """Every entry under ``root`` named like a notebook, with why it cannot be read as one ("" when it can).
    Links are never followed: a linked folder is reported, not looked into."""
    found, folders = [], [root]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as error:
            problems.append(f"{shown(Path(folder).relative_to(root))}: cannot be listed ({error.strerror})")
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.name in SKIP:
                continue
            if entry.name.endswith(".ipynb"):
                found.append((path, problem(path)))
            elif entry.is_symlink() and path.is_dir():
                problems.append(f"{shown(path.relative_to(root))}: a symbolic link to a folder: not looked into")
            if entry.is_dir(follow_symlinks=False):
                folders.append(path)
    return found


def collect(source: Path, assignments: list[str], cell_ids: dict[str, set[str]] | None = None) -> Collected:
    """Every notebook under ``source`` (a folder or a .zip), attributed to a student and a lesson
    (by its name, else by ``cell_ids``: each lesson's nbgrader cell ids). A notebook of a student that cannot be
    read (a link, a pipe, too large) is a submission with its ``problem``; what cannot be attributed to a student
    and a lesson is one of ``problems``."""
    source = Path(source)
    collected = Collected()
    refused: list[tuple[str, str]] = []
    if source.is_file() and source.suffix.lower() == ".zip":
        collected.workdir = tempfile.TemporaryDirectory(prefix="handwritten-zip-")
        root = Path(collected.workdir.name)
        refused = extract_zip(source, root)
    elif source.is_dir():
        root = source
    else:
        raise CourseError(f"{source} is neither a folder of submissions nor a .zip file.")

    found = _walk(root, collected.problems)
    for name, why in refused:  # a refused notebook of a student is that student's row, the rest are problems
        if name.endswith(".ipynb") and not _unsafe(name):
            found.append((root / name, why))
        else:
            collected.problems.append(f"{shown(name)}: {why}")
    # Canvas names a file after the student's name alone: two students of the same name are told apart by their
    # user ids, else one's notebook would pass for the other's older copy
    lms_ids: dict[str, set[str]] = {}
    for path, _ in found:
        if path.parent == root and (found_id := LMS_ID.match(path.name)):
            lms_ids.setdefault(path.name.split("_", 1)[0], set()).add(found_id[1])
    best: dict[tuple[str, str], Submission] = {}
    owners: dict[str, str] = {}  # student id -> the name it was made from
    for path, why in sorted(found):
        relative = path.relative_to(root)
        found_lesson, renamed = _lesson_of(path.stem, assignments), ""
        if found_lesson is None and not why and (matched := _lesson_by_cells(path, cell_ids or {})):
            found_lesson, renamed = (matched, 0), path.name
        if found_lesson is None:
            collected.problems.append(f"{shown(relative)}: " + (why or (
                f"not named after any lesson ({', '.join(assignments)}), and its cells are not those of one lesson")))
            continue
        assignment, copy = found_lesson
        if len(relative.parts) > 1:
            student = relative.parts[0]
        else:
            student = path.stem.split("_", 1)[0] if "_" in path.stem else ""
            if not student:
                collected.problems.append(f"{shown(relative)}: a notebook at the top level must be named "
                                          f"<student>_..._<lesson>.ipynb")
                continue
        lms_id = found_id[1] if (found_id := LMS_ID.match(path.name)) else ""
        if len(relative.parts) == 1 and len(lms_ids.get(student, ())) > 1:
            student = f"{student}-{lms_id}"
        submission = Submission(safe_id(student), assignment, path, copy, renamed, why, lms_id)
        if owners.setdefault(submission.student, student) != student:  # a hash collision: reported, never merged
            collected.problems.append(f"{shown(relative)}: {shown(student)!r} has the id of "
                                      f"{shown(owners[submission.student])!r}: not graded")
            continue
        key = (submission.student, assignment)
        if key in best:
            # a notebook that can be read is graded before one that cannot, then the highest copy
            kept, dropped = sorted([best[key], submission], key=lambda s: (not s.problem, s.copy, s.path.name),
                                   reverse=True)
            dropped_at, kept_at = shown(dropped.path.relative_to(root)), shown(kept.path.relative_to(root))
            collected.problems.append(f"{dropped_at}: {dropped.problem} ({kept_at} is graded instead)"
                                      if dropped.problem else f"{dropped_at}: older copy of {kept_at}, not graded")
            best[key] = kept
        else:
            best[key] = submission
    collected.submissions = sorted(best.values(), key=lambda s: (s.student, s.assignment))
    return collected
