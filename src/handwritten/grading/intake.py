"""Reading a submitted notebook, trusting nothing about it.

A submission is read only if it is a regular file of at most ``MAX_NOTEBOOK_BYTES``: a symbolic link (to the
instructor's solutions, to another student's notebook), a folder, a named pipe or a device named like a notebook
is refused with its reason, and never opened through the link or read from. Its JSON must be an object holding a
list of cells, each an object, nested at most ``MAX_DEPTH`` levels. Anything else is refused with the reason that
becomes its row in ``grades.csv``: one bad file costs only its own row.

Before nbgrader sees it, a submission's graded cells are the release's (``normalise``): only cells whose grade id
is in the released notebook keep nbgrader metadata, and they get the release's (points, locks, type), so the
points and the manual questions of every submission are those of the lesson, whatever the student did.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import stat

from .cells import nbgrader_meta

# A lesson's notebook is ~50 KB as released and a few MB with its plots: 50 MB is far past any honest one, and
# small enough that parsing one (JSON takes ~10x its size in memory) never troubles a grading machine.
MAX_NOTEBOOK_BYTES = 50 * 2**20
# An nbformat notebook nests about 6 levels (notebook, cells, cell, outputs, output, data); widget state or a JSON
# output adds a few dozen at most. Deeper JSON is made to break parsers (nbformat's validator recurses).
MAX_DEPTH = 100
UNREADABLE = "not a readable notebook"
KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
         (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


class Refused(ValueError):
    """A submission that is not graded; the message says why."""


def _kind(mode: int) -> str:
    return next((name for test, name in KINDS if test(mode)), "not a regular file")


def size_text(size: int) -> str:
    return f"{size // 2**20:,} MB" if size >= 2**20 else f"{size:,} bytes"


def _too_large(size: int) -> str:
    return f"larger than {size_text(MAX_NOTEBOOK_BYTES)} ({size:,} bytes): not graded"


def problem(path) -> str:
    """Why the entry at ``path`` cannot be read as a notebook, from the entry itself (a link is not followed, nothing
    is opened), or "" when it can."""
    try:
        info = os.lstat(path)
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return f"{_kind(info.st_mode)}, not a file: not graded"
    return _too_large(info.st_size) if info.st_size > MAX_NOTEBOOK_BYTES else ""


def read_bytes(path, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, read without following a link (the entry was checked
    with lstat first, so a device is never opened; the check on the opened file makes a swap in between harmless)."""
    why = problem(path)
    if why:
        raise Refused(why)
    try:  # O_NONBLOCK: opening a pipe that took the file's place returns at once, instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise Refused("a symbolic link, not a file: not graded" if error.errno == errno.ELOOP
                      else f"cannot be read ({error.strerror})") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{_kind(info.st_mode)}, not a file: not graded")
        data = file.read(limit + 1)  # the size can grow after fstat: never read more than the bound
    if len(data) > limit:
        raise Refused(_too_large(len(data)))
    return data


def depth(value) -> int:
    """How deeply a parsed JSON value nests (without recursion: the value may be deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (value.values() if isinstance(value, dict) else value))
    return deepest


def _is_cell(cell) -> bool:
    """Whether a cell has the fields the grader reads (its metadata, its source) in the shapes nbformat gives them."""
    if not isinstance(cell, dict) or not isinstance(cell.get("metadata", {}), dict):
        return False
    source = cell.get("source", "")
    return isinstance(source, str) or isinstance(source, list) and all(isinstance(line, str) for line in source)


def load_notebook(path) -> dict:
    """A submitted notebook as plain JSON, or :class:`Refused` saying why it cannot be graded."""
    data = read_bytes(path)
    try:
        notebook = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise Refused(f"{UNREADABLE} (not UTF-8 text: {error.reason} at byte {error.start})") from None
    except RecursionError:
        raise Refused(f"{UNREADABLE} (its JSON nests more than {MAX_DEPTH} levels deep)") from None
    except ValueError as error:
        raise Refused(f"{UNREADABLE} ({error})") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise Refused(f"{UNREADABLE} (no cells)")
    if depth(notebook) > MAX_DEPTH:
        raise Refused(f"{UNREADABLE} (its JSON nests more than {MAX_DEPTH} levels deep)")
    for index, cell in enumerate(notebook["cells"]):
        if not _is_cell(cell):
            raise Refused(f"{UNREADABLE} (cell {index + 1} is not a notebook cell)")
    return notebook


def _retype(cell: dict, cell_type: str) -> None:
    """Make a cell of another type one of ``cell_type``, keeping its source, with the fields nbformat's schema
    asks of that type and none it forbids."""
    cell["cell_type"] = cell_type
    if cell_type == "code":
        cell.pop("attachments", None)
        cell.setdefault("outputs", [])
        cell.setdefault("execution_count", None)
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


def normalise(notebook: dict, released: dict) -> list[str]:
    """Make the submission's graded cells those of the release, in place; return the integrity flags of what was
    changed. A cell whose grade id is not the release's (a graded cell the student added, an id that is not text)
    becomes a plain cell: it grants no points, and nbgrader would fail the whole notebook on it. A released cell
    keeps the student's source but gets the release's nbgrader metadata (points, locks) and cell type: a question
    typed into a code cell is still a markdown answer for the instructor to grade."""
    cells = {meta["grade_id"]: cell for cell in released.get("cells", []) if (meta := nbgrader_meta(cell))
             and "grade_id" in meta}
    flags = []
    for index, cell in enumerate(notebook["cells"]):
        meta = cell.get("metadata")
        if not isinstance(meta, dict) or "nbgrader" not in meta:
            continue
        theirs = meta["nbgrader"]
        grade_id = theirs.get("grade_id") if isinstance(theirs, dict) else None
        if not isinstance(grade_id, str) or grade_id not in cells:
            del meta["nbgrader"]
            if isinstance(grade_id, str):
                claimed = " (it claimed points)" if theirs.get("grade") else ""
                flags.append(f"cell {index + 1}: grade id {grade_id!r} is not in the released notebook{claimed}: "
                             f"graded as a plain cell")
            elif theirs:
                what = "without a grade id" if grade_id is None else "whose grade id is not text"
                flags.append(f"cell {index + 1}: nbgrader metadata {what}: graded as a plain cell")
            continue
        release = cells[grade_id]
        meta["nbgrader"] = copy.deepcopy(release["metadata"]["nbgrader"])
        if cell.get("cell_type") != release["cell_type"]:
            flags.append(f"cell {grade_id}: a {release['cell_type']} cell of the release was made "
                         f"{cell.get('cell_type')!s}: put back")
            _retype(cell, release["cell_type"])
    return flags
