"""The grader fixtures of ``autograders/<lesson>/cases.toml``, turned into submissions.

A *mutant* is a plausible wrong answer and names the tests it must fail, with a fragment of
the message each failure must show; an *alternative* is another correct answer, which must
get every point. Both are written as replacements for solution cells (by grade id) of an
otherwise correct submission: the student notebook with the instructor's solutions typed in.
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import nbformat
from nbgrader import utils

from .cells import nbgrader_meta
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


KEYS = MappingProxyType({"mutant": frozenset({"name", "why", "cells", "fails", "message", "messages"}),
                         "alternative": frozenset({"name", "why", "cells"})})


def load_cases(course: Course, assignment: str) -> list[Case]:
    """The lesson's fixtures, checked against the schema (``check_entry``); [] if it has none."""
    path = course.root / "autograders" / assignment / "cases.toml"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        where = re.search(r"at line (\d+)", str(error))
        raise CourseError(f"{path}:{where.group(1) if where else 1}: not valid TOML ({error})") from None
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise CourseError(f"{path}:{_line(text, unknown[0])}: unknown table {unknown[0]!r} "
                          f"(expected [[mutant]] or [[alternative]])")
    cases, names = [], set()
    for kind in KEYS:
        entries = raw.get(kind, [])
        if not isinstance(entries, list):
            raise CourseError(f"{path}:{_line(text, kind)}: {kind} must be an array of tables, [[{kind}]]")
        for index, entry in enumerate(entries):
            problem = check_entry(kind, entry)
            if problem is None and entry["name"] in names:
                problem = ("name", f"a second case named {entry['name']!r}")
            if problem is not None:
                key, what = problem
                raise CourseError(f"{path}:{_line(text, kind, index, key)}: {kind} "
                                  f"{entry.get('name', index + 1)!r}: {what}")
            names.add(entry["name"])
            cases.append(Case(kind=kind, name=entry["name"], why=entry["why"], cells=dict(entry["cells"]),
                              fails=tuple(entry.get("fails", ())), message=entry.get("message", ""),
                              messages=dict(entry.get("messages", {}))))
    return cases


def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def check_entry(kind: str, entry: dict) -> tuple[str | None, str] | None:
    """What is wrong with one ``[[mutant]]`` or ``[[alternative]]`` (the key to point at, and why), or None.

    Both need a ``name``, a ``why`` and ``cells`` (solution grade id -> replacement code), and nothing else,
    except that a mutant also names the tests it ``fails`` (at least one) and, for each of them, a
    non-empty fragment of the failure's message: ``message``, or ``messages[test]``."""
    for key in entry:
        if key not in KEYS[kind]:
            extra = " (an alternative gets every point: it fails nothing)" if key in KEYS["mutant"] else ""
            return key, f"unknown key {key!r}{extra}; expected {', '.join(sorted(KEYS[kind]))}"
    for key in ("name", "why"):
        if not _text(entry.get(key)):
            return (key if key in entry else None), f"needs a non-empty {key!r}"
    cells = entry.get("cells")
    if not (isinstance(cells, dict) and cells and all(isinstance(code, str) for code in cells.values())):
        return ("cells" if "cells" in entry else None), "needs 'cells': solution grade id -> replacement code"
    if kind == "alternative":
        return None
    fails = entry.get("fails")
    if not (isinstance(fails, list) and fails and all(_text(test) for test in fails)):
        return ("fails" if "fails" in entry else None), "needs 'fails': the tests it must fail, at least one"
    messages = entry.get("messages", {})
    if not isinstance(messages, dict) or not isinstance(entry.get("message", ""), str):
        return ("messages" if "messages" in entry else "message"), "'message' is text, 'messages' test -> text"
    for test in messages:
        if test not in fails:
            return test, f"messages names {test!r}, which is not in fails"
    for test in fails:
        if not _text(messages.get(test, entry.get("message"))):
            return "fails", f"no message for {test!r}: give 'message', or 'messages.{test}'"
    return None


def _line(text: str, kind: str, index: int = 0, key: str | None = None) -> int:
    """The line of ``text`` (a cases.toml) where entry ``index`` of ``kind`` sets ``key`` (its ``[[kind]]``
    line without ``key``, or when the key is not found); multi-line strings (the code) are skipped."""
    lines = text.splitlines()
    header = re.compile(rf"\s*\[\[\s*{re.escape(kind)}\s*\]\]")
    headers = [i for i, line in enumerate(lines) if header.match(line)]
    if index >= len(headers):
        return next((i + 1 for i, line in enumerate(lines) if re.match(rf"\s*\[*\s*{re.escape(kind)}\b", line)), 1)
    start = headers[index]
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[[")), len(lines))
    if key is not None:
        name = rf"(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
        sets = re.compile(rf"\s*(?:{name}\s*=|\[\s*{re.escape(kind)}\s*\.\s*{name}\s*[\].])")
        quote = None
        for i in range(start, end):
            if quote is None and sets.match(lines[i]):
                return i + 1
            for found in re.findall(r"\'\'\'|\"\"\"", lines[i]):
                quote = found if quote is None else None if found == quote else quote
    return start + 1


def solution_sources(course: Course, assignment: str) -> dict[str, str]:
    """The instructor's answer of every solution cell, with the solution markers removed."""
    nb = nbformat.read(course.notebook("source", assignment), as_version=4)
    answers = {}
    for cell in nb.cells:
        if utils.is_solution(cell):
            lines = [line for line in cell.source.split("\n") if line.strip() not in MARKERS]
            answers[nbgrader_meta(cell)["grade_id"]] = "\n".join(lines)
    return answers


def student_notebook(course: Course, assignment: str):
    return nbformat.read(course.notebook("release", assignment), as_version=4)


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
        if utils.is_solution(cell):
            grade_id = nbgrader_meta(cell)["grade_id"]
            cell.source = replacements.get(grade_id, answers[grade_id]).strip("\n")
    return nb


def graded_tests(course: Course, assignment: str) -> dict[str, float]:
    """Every autograded test cell of a lesson and its points."""
    nb = student_notebook(course, assignment)
    return {nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c).get("points", 0)) for c in nb.cells
            if utils.is_grade(c) and c.cell_type == "code"}


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
