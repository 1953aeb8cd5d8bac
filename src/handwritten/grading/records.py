"""What grading one submission gave (``Result``), and one small JSON record of it per graded
submission, written the moment it is graded: what makes a run resumable (an interrupted batch loses
nothing) and idempotent (a submission graded before, byte for byte the same, is not graded again unless
forced).

Records live beside nbgrader's own output, ``autograded/<student>/<lesson>.result.json``: outside
the folder the student's kernel runs in, so a submission cannot write its own record.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from ..files import write_atomic
from .course import Course


class Status(StrEnum):
    GRADED = "graded"  # autograded: scores (and feedback, unless a note says it failed)
    ERROR = "error"    # not graded: the first note says why


@dataclass
class Result:
    student: str
    assignment: str
    status: Status = Status.GRADED
    notes: list[str] = field(default_factory=list)          # what the instructor should know, one line each
    score: float = 0.0                          # autograded points
    max_score: float = 0.0                      # autograded points available
    manual_max: float = 0.0                     # points waiting for a human (questionnaire)
    tests: dict[str, float] = field(default_factory=dict)   # grade id -> autograded points
    feedback: Path | None = None
    sandbox: str = ""                           # how the kernel was confined: bwrap, limits, off
    flags: list[str] = field(default_factory=list)          # integrity flags: "line N: reason"
    late: bool = False
    digest: str = ""                            # sha256 of the submitted file
    kept: bool = False                          # graded by an earlier run, not again
    lms_id: str = ""                            # the LMS's user id, from the submitted file's name

    @classmethod
    def error(cls, student: str, assignment: str, why: str, **more) -> Result:
        """A submission that could not be graded, and why."""
        return cls(student, assignment, status=Status.ERROR, notes=[why], **more)

    @property
    def graded(self) -> bool:
        return self.status is Status.GRADED


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def path(course: Course, student: str, assignment: str) -> Path:
    return course.path("autograded") / student / f"{assignment}.result.json"


def save(course: Course, result: Result) -> None:
    target = path(course, result.student, result.assignment)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(result) | {"feedback": str(result.feedback) if result.feedback else None, "kept": False}
    write_atomic(target, json.dumps(data, indent=1) + "\n")  # a record is whole or absent


def load(course: Course, student: str, assignment: str) -> Result | None:
    """The recorded result, or None when there is none, or none this version reads (a record of the
    previous version, whose status held its notes: that submission is graded again)."""
    try:
        data = json.loads(path(course, student, assignment).read_text(encoding="utf-8"))
        result = Result(**data)
        result.status = Status(result.status)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(result.notes, list):
        return None
    result.feedback = Path(result.feedback) if result.feedback else None
    result.kept = True
    return result


def forget(course: Course, student: str, assignment: str) -> None:
    path(course, student, assignment).unlink(missing_ok=True)
