"""Regenerate the student notebooks (``lessons/``) from the instructor's (``solutions/``).

nbgrader replaces every solution by ``raise NotImplementedError()``, strips the hidden tests
and records both, with the points, in the gradebook, which grading needs later. The output
is deterministic: running it twice gives byte-identical notebooks.
"""

from __future__ import annotations

from pathlib import Path

from .course import Course, CourseError


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def release(course: Course, assignments: list[str] | None = None) -> list[str]:
    """Generate the student version of each lesson; return the files that changed."""
    known = course.assignments()
    assignments = assignments or known
    unknown = sorted(set(assignments) - set(known))
    if unknown:
        raise CourseError(f"No such lesson in {course.path('source')}: {', '.join(unknown)}. "
                          f"Lessons: {', '.join(known)}.")
    release_dir = course.path("release")
    before = _snapshot(release_dir) if release_dir.exists() else {}
    api = course.api()
    for assignment in assignments:
        result = api.generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            raise CourseError(f"nbgrader could not generate {assignment}:\n"
                              f"{result.get('error', '')}{result.get('log', '')}")
    after = _snapshot(release_dir)
    return sorted(name for name in after if before.get(name) != after[name])
