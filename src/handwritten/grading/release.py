"""Regenerate the student notebooks (``lessons/``) from the instructor's (``solutions/``).

nbgrader replaces every solution by ``raise NotImplementedError()``, strips the hidden tests
and records both, with the points, in the gradebook, which grading needs later. The output
is deterministic: running it twice gives byte-identical notebooks.

Grading releases before every run, in case ``lessons/`` or the gradebook fell behind ``solutions/``. That
costs seconds a lesson (nbgrader commits the gradebook cell by cell), so each release leaves a stamp
(``autograded/.released/<lesson>.json``): digests of the sources, the config, the lesson's release and the
gradebook's copy of its cells. While all four are what they were, generating again would change nothing,
and ``release(..., if_changed=True)`` skips it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..files import write_atomic
from .course import CONFIG, Course, CourseError


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()


def _files(folder: Path) -> str:
    return _digest({name: hashlib.sha256(data).hexdigest() for name, data in _snapshot(folder).items()}
                   if folder.is_dir() else None)


def _gradebook(course: Course, assignment: str) -> str | None:
    """A digest of what the gradebook holds of the lesson (its cells, their sources and points), or None."""
    from nbgrader.api import Gradebook, MissingEntry

    try:
        with Gradebook(course.db_url) as gradebook:
            notebook = gradebook.find_notebook(assignment, assignment)
            return _digest(sorted((c.name, c.cell_type, c.locked, c.checksum, c.source) for c in notebook.source_cells),
                           sorted((c.name, c.cell_type, c.max_score) for c in notebook.grade_cells),
                           sorted((c.name, c.max_score) for c in notebook.task_cells),
                           sorted(c.name for c in notebook.solution_cells))
    except MissingEntry:
        return None


def stamp(course: Course, assignment: str) -> dict:
    """What a release of ``assignment`` depends on and what it made, as digests."""
    return {"solutions": _files(course.path("source") / assignment),
            "lessons": _files(course.path("release") / assignment),
            "config": hashlib.sha256((course.root / CONFIG).read_bytes()).hexdigest(),
            "gradebook": _gradebook(course, assignment), "db": _digest(course.db_url)}


def _stamp_path(course: Course, assignment: str) -> Path:
    return course.path("autograded") / ".released" / f"{assignment}.json"


def up_to_date(course: Course, assignment: str) -> bool:
    """Whether ``assignment`` was released by this course from the same sources into the same gradebook,
    and neither its release nor the gradebook's copy changed since."""
    try:
        return json.loads(_stamp_path(course, assignment).read_text()) == stamp(course, assignment)
    except (OSError, ValueError):
        return False


def release(course: Course, assignments: list[str] | None = None, *, if_changed: bool = False) -> list[str]:
    """Generate the student version of each lesson (with ``if_changed``, only of those not
    ``up_to_date``); return the files that changed."""
    known = course.assignments()
    assignments = assignments or known
    unknown = sorted(set(assignments) - set(known))
    if unknown:
        raise CourseError(f"No such lesson in {course.path('source')}: {', '.join(unknown)}. "
                          f"Lessons: {', '.join(known)}.")
    if if_changed:
        assignments = [a for a in assignments if not up_to_date(course, a)]
        if not assignments:
            return []
    release_dir = course.path("release")
    before = _snapshot(release_dir) if release_dir.exists() else {}
    api = course.api()
    for assignment in assignments:
        _stamp_path(course, assignment).unlink(missing_ok=True)
        result = api.generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            raise CourseError(f"nbgrader could not generate {assignment}:\n"
                              f"{result.get('error', '')}{result.get('log', '')}")
        _stamp_path(course, assignment).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(_stamp_path(course, assignment), json.dumps(stamp(course, assignment), indent=1) + "\n")
    after = _snapshot(release_dir)
    return sorted(name for name in after if before.get(name) != after[name])
