"""The grader fixtures of ``autograders/<lesson>/cases.toml``, turned into submissions.

A *mutant* is a plausible wrong answer and names the tests it must fail, with a fragment of
the message each failure must show; an *alternative* is another correct answer, which must
get every point. Both are written as replacements for solution cells (by grade id) of an
otherwise correct submission: the student notebook with the instructor's solutions typed in.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .course import Course, CourseError

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


@dataclass(frozen=True)
class Case:
    kind: str                     # "mutant" or "alternative"
    name: str
    why: str
    cells: dict[str, str]         # solution grade id -> replacement source
    fails: tuple[str, ...] = ()   # test grade ids that must fail (mutants)
    message: str = ""
    messages: dict[str, str] = field(default_factory=dict)

    def expected_message(self, test: str) -> str:
        return self.messages.get(test, self.message)


def load_cases(course: Course, assignment: str) -> list[Case]:
    path = course.root / "autograders" / assignment / "cases.toml"
    if not path.exists():
        return []
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    cases = []
    for kind in ("mutant", "alternative"):
        for entry in raw.get(kind, []):
            cases.append(Case(kind=kind, name=entry["name"], why=entry.get("why", ""),
                              cells=dict(entry["cells"]), fails=tuple(entry.get("fails", ())),
                              message=entry.get("message", ""), messages=dict(entry.get("messages", {}))))
    return cases


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def solution_sources(course: Course, assignment: str) -> dict[str, str]:
    """The instructor's answer of every solution cell, with the solution markers removed."""
    nb = nbformat.read(course.path("source") / assignment / f"{assignment}.ipynb", as_version=4)
    answers = {}
    for cell in nb.cells:
        meta = _nbgrader(cell)
        if meta.get("solution"):
            lines = [line for line in cell.source.split("\n") if line.strip() not in MARKERS]
            answers[meta["grade_id"]] = "\n".join(lines)
    return answers


def student_notebook(course: Course, assignment: str):
    return nbformat.read(course.path("release") / assignment / f"{assignment}.ipynb", as_version=4)


def submission(course: Course, assignment: str, replacements: dict[str, str] | None = None,
               *, blank: bool = False):
    """The student notebook with every solution cell answered: by the instructor's answer, or
    by ``replacements[grade_id]``. ``blank=True`` leaves it as released."""
    nb = copy.deepcopy(student_notebook(course, assignment))
    if blank:
        return nb
    answers = solution_sources(course, assignment)
    replacements = replacements or {}
    unknown = set(replacements) - set(answers)
    if unknown:
        raise CourseError(f"{assignment}: no solution cell with grade id {', '.join(sorted(unknown))}")
    for cell in nb.cells:
        meta = _nbgrader(cell)
        if meta.get("solution"):
            cell.source = replacements.get(meta["grade_id"], answers[meta["grade_id"]]).strip("\n")
    return nb


def graded_tests(course: Course, assignment: str) -> dict[str, float]:
    """Every autograded test cell of a lesson and its points."""
    nb = student_notebook(course, assignment)
    return {_nbgrader(c)["grade_id"]: float(_nbgrader(c).get("points", 0)) for c in nb.cells
            if _nbgrader(c).get("grade") and c.cell_type == "code"}


def pack(cases: list[Case]) -> list[list[Case]]:
    """Cases of one kind grouped so that no two in a group replace the same cell or must fail the
    same test (first fit, in file order). A mistake is penalised once, so a group's submission must
    fail exactly the union of its members' tests: one kernel run proves several fixtures."""
    groups: list[list[Case]] = []
    for case in cases:
        for group in groups:
            if all(group[0].kind == case.kind and not set(other.cells) & set(case.cells)
                   and not set(other.fails) & set(case.fails) for other in group):
                group.append(case)
                break
        else:
            groups.append([case])
    return groups


def write_submissions(course: Course, assignment: str, folder: Path, *, packed: bool = False
                      ) -> dict[str, list[Case]]:
    """One sub-folder per case (plus "instructor" and "blank"), as ``handwritten grade`` reads them.
    With ``packed``, one sub-folder per group of :func:`pack` (``mutants-1``, ``alternatives-1``, ...)
    holding all its members' replacements. Returns student id -> its cases ([] for the instructor's
    and the blank notebook)."""
    made: dict[str, list[Case]] = {}

    def write(student, nb, cases):
        target = Path(folder) / student / f"{assignment}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        made[student] = cases

    write("instructor", submission(course, assignment), [])
    write("blank", submission(course, assignment, blank=True), [])
    cases = load_cases(course, assignment)
    if not packed:
        groups = {f"{case.kind}-{case.name}": [case] for case in cases}
    else:
        groups = {}
        for kind in ("mutant", "alternative"):
            for i, group in enumerate(pack([c for c in cases if c.kind == kind]), 1):
                groups[f"{kind}s-{i}"] = group
    for student, group in groups.items():
        cells = {grade_id: code for case in group for grade_id, code in case.cells.items()}
        write(student, submission(course, assignment, cells), group)
    return made
