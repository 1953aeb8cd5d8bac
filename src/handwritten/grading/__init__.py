"""The instructor's pipeline, over nbgrader's Python API: regenerate the student notebooks
(``release``), and grade a class's submissions into ``grades.csv``, an item analysis and feedback
(``grade``): in parallel (``grade``), resumably (``records``), each kernel sandboxed (``sandbox``,
``limits``, ``kernel_guard``), every notebook scanned for tampering (``integrity``)."""

from .course import Course, CourseError
from .grade import grade
from .release import release

__all__ = ["Course", "CourseError", "grade", "release"]
