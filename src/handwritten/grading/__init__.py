"""The instructor's pipeline, over nbgrader's Python API: regenerate the student notebooks
(``release``), and grade a class's submissions into ``grades.csv``, an item analysis and feedback
(``grade``): in parallel (``grade``), resumably (``records``), each kernel sandboxed (``sandbox``,
``limits``, ``kernel_guard``), every notebook scanned for tampering (``integrity``)."""

import sys

# nbformat imports jsonschema, whose format checkers import rfc3987_syntax when it is installed (jupyter-events
# brings it), and rfc3987_syntax compiles an Earley grammar as it is imported: 2.3 s in every grading process and
# worker, for the "iri" format, which no notebook schema uses. Marked missing, jsonschema goes without that check.
sys.modules.setdefault("rfc3987_syntax", None)

from .course import Course, CourseError  # noqa: E402
from .grade import grade  # noqa: E402
from .records import Result, Status  # noqa: E402
from .release import release  # noqa: E402

__all__ = ["Course", "CourseError", "Result", "Status", "grade", "release"]
