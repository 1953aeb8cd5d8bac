"""The instructor's pipeline, over nbgrader's Python API: regenerate the student notebooks
(``release``), and grade a class's submissions into ``grades.csv`` and feedback (``grade``)."""

from .course import Course, CourseError
from .grade import grade
from .release import release

__all__ = ["Course", "CourseError", "grade", "release"]
