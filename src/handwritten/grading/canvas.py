"""Back to the LMS: ``grades.csv``'s scores written into the instructor's Canvas gradebook export, ready for
Canvas's *Import* (Grades → Import).

Canvas's export (Grades → Export) is a CSV whose first row names the columns ``Student``, ``ID``, ``SIS User ID``,
``SIS Login ID``, ``Section``, then one column per assignment, ``<name> (<assignment id>)``, then read-only totals.
Rows before the students have no ``ID``: ``Points Possible`` (each assignment's points; ``(read only)`` under the
totals), and, in some courses, a row marking assignments whose grades are posted by hand (``Manual Posting``, once
``Muted``). An import matches a row to a student by ``ID`` (or the SIS ids) and a column to an assignment by its
name and id, so the export is filled in place: each lesson's score goes into the column whose name holds the
lesson's name, in the row whose ``ID`` is the user id of the LMS's file names (``lms_id`` in ``grades.csv``).
Every other cell, row and column is written back as it was, in the file's own encoding (a UTF-8 byte-order mark,
kept when there is one), delimiter (``,`` or ``;``) and line ending.

A student without a graded notebook keeps their cell as it was (empty in a fresh gradebook): a notebook that could
not be graded is not a zero. Rows of ``grades.csv`` that cannot be placed are reported, never guessed.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..files import write_atomic
from .course import CourseError

IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
ASSIGNMENT = re.compile(r"^(.*\S)\s*\((\d+)\)$")  # "04 Convolutions by hand (12345)"
BOM = "\ufeff"
NEEDED = ("student", "lesson", "status", "score", "max_score", "lms_id")


@dataclass
class Filled:
    rows: int = 0  # cells written
    notes: list[str] = field(default_factory=list)  # what the instructor should know: rows not placed, and why


def _words(text: str) -> str:
    """Lower-case words only: "04-convolutions-by-hand" is "04 convolutions by hand", as in "Lesson 04: Convolutions
    by Hand (123)"."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _read_text(path: Path, what: str, hint: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CourseError(f"cannot read {what} {path} ({error.strerror}): {hint}.") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CourseError(f"{path} is not UTF-8 text: download it again from Canvas (Grades → Export), "
                          f"and if a spreadsheet saved it, save it as 'CSV UTF-8'.") from None


def read_gradebook(path: Path) -> tuple[list[list[str]], str, str, bool]:
    """The export's rows, its delimiter, its line ending and whether it began with a UTF-8 byte-order mark."""
    text = _read_text(path, "the Canvas gradebook", "download it from Canvas (Grades → Export → Export Entire "
                                                    "Gradebook) and name that file")
    bom = text.startswith(BOM)
    text = text.removeprefix(BOM)
    first = text.split("\n", 1)[0]
    # Canvas writes ";" where the user chose it (or Excel's locale asks for it): the header tells which
    delimiter = ";" if first.count(";") > first.count(",") else ","
    newline = "\r\n" if first.endswith("\r") else "\n"
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if not rows or [cell.strip() for cell in rows[0][:2]] != ["Student", "ID"]:
        raise CourseError(f"{path} is not a Canvas gradebook export: its first row should begin with the columns "
                          f"Student, ID. Download it from Canvas: Grades → Export → Export Entire Gradebook.")
    return rows, delimiter, newline, bom


def assignment_columns(header: list[str]) -> dict[int, str]:
    """Column index -> assignment name, for the columns named ``<name> (<id>)`` after the identity columns."""
    return {i: m[1] for i, name in enumerate(header)
            if name.strip() not in IDENTITY and (m := ASSIGNMENT.match(name.strip()))}


def lesson_columns(header: list[str], lessons: list[str], chosen: dict[str, str]) -> dict[str, int]:
    """Each lesson's column: the one ``chosen`` names (a header, with or without its id), else the one assignment
    whose name holds the lesson's name. None or several is an error that says how to choose."""
    assignments = assignment_columns(header)
    found = {}
    for lesson in lessons:
        if lesson in chosen:
            want = chosen[lesson].strip()
            matches = [i for i in assignments if want in (header[i].strip(), assignments[i])]
            how = f"--column {lesson}={want!r} names"
        else:
            # whole words: lesson "01-x" is not in "101 x"
            matches = [i for i, name in assignments.items() if f" {_words(lesson)} " in f" {_words(name)} "]
            how = f"the name {lesson!r} is in"
        listed = ", ".join(repr(header[i].strip()) for i in (matches or assignments)) or "(none)"
        if not matches:
            raise CourseError(f"{how} no assignment column of the gradebook (its assignments: {listed}). Create the "
                              f"assignment in Canvas and export the gradebook again, or name its column: "
                              f"--column {lesson}='<column header>'.")
        if len(matches) > 1:
            raise CourseError(f"{how} several assignment columns: {listed}. Say which: "
                              f"--column {lesson}='<column header>'.")
        found[lesson] = matches[0]
    return found


def read_grades(path: Path) -> list[dict[str, str]]:
    text = _read_text(path, "grades.csv", "grade the submissions first (handwritten grade <zip>), or name the "
                                          "grades.csv with --grades")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix(BOM), newline="")))
    missing = [name for name in NEEDED if rows and name not in rows[0]] if rows else []
    if "lms_id" in missing and len(missing) == 1:
        raise CourseError(f"{path} has no lms_id column: it was written before the LMS's ids were kept. Grade the "
                          f"LMS zip again (handwritten grade <zip>): what was graded is kept, and only the CSV is "
                          f"written again.")
    if missing:
        raise CourseError(f"{path} is not a grades.csv of handwritten grade: it has no column "
                          f"{', '.join(missing)}.")
    if not rows:
        raise CourseError(f"{path} has no grades: grade the submissions first (handwritten grade <zip>).")
    return rows


def fill(gradebook: Path, grades: Path, out: Path, chosen: dict[str, str] | None = None) -> Filled:
    """Write ``out``: the Canvas export ``gradebook`` with the graded scores of ``grades`` (a ``grades.csv``) in
    each lesson's column (``chosen``: lesson -> column header, where the lesson's name is not in it)."""
    if Path(out).resolve() == Path(gradebook).resolve():
        raise CourseError(f"--out {out} is the gradebook itself: write the import to a new file, so that the "
                          f"export stays as Canvas gave it.")
    rows, delimiter, newline, bom = read_gradebook(gradebook)
    results = read_grades(grades)
    chosen = chosen or {}
    unknown = sorted(set(chosen) - {r["lesson"] for r in results})
    if unknown:
        raise CourseError(f"--column names {', '.join(unknown)}, a lesson with no row in {grades}: "
                          f"check the lesson's name (as in grades.csv's lesson column).")
    header = rows[0]
    columns = lesson_columns(header, sorted({r["lesson"] for r in results}), chosen)
    id_at = [cell.strip() for cell in header].index("ID")
    students = {}
    for n, row in enumerate(rows[1:], 1):
        canvas_id = row[id_at].strip() if len(row) > id_at else ""
        if canvas_id:  # the rows without an ID are Points Possible and the posting policy's: left as they are
            if canvas_id in students:
                raise CourseError(f"{gradebook}: the ID {canvas_id} is on two rows: export the gradebook again "
                                  f"from Canvas, unedited.")
            students[canvas_id] = n
    points = next((row for row in rows[1:] if row and row[0].strip() == "Points Possible"), None)
    done, filled = set(), Filled()
    for r in results:
        who = f"{r['student']} ({r['lesson']})"
        lms_id = r["lms_id"].strip()
        if not lms_id:
            filled.notes.append(f"{who}: no LMS id (its file was not named by an LMS download): not exported; enter "
                                f"it in Canvas by hand")
            continue
        if lms_id not in students:
            filled.notes.append(f"{who}: LMS id {lms_id} is not in the gradebook (a dropped student, or another "
                                f"course's export?): not exported")
            continue
        if (lms_id, r["lesson"]) in done:
            raise CourseError(f"{grades}: LMS id {lms_id} has two rows for {r['lesson']}: grade the LMS zip again.")
        done.add((lms_id, r["lesson"]))
        if r["status"] != "graded":
            filled.notes.append(f"{who}: not graded ({r.get('notes', '')}): its cell is left as it was")
            continue
        row, column = rows[students[lms_id]], columns[r["lesson"]]
        row.extend([""] * (column + 1 - len(row)))
        row[column] = r["score"]
        filled.rows += 1
    for lesson, column in sorted(columns.items()):
        worth = points[column].strip() if points and len(points) > column else ""
        maxima = {r["max_score"] for r in results if r["lesson"] == lesson and r["status"] == "graded"}
        try:
            differs = bool(worth) and any(float(worth) != float(m) for m in maxima)
        except ValueError:
            differs = False
        by_hand = sum(r["lesson"] == lesson and r["status"] == "graded" and r.get("manual_points_to_grade", "0")
                      not in ("", "0") for r in results)
        if by_hand:  # the questionnaires' points come from nbgrader's formgrader, later: an import now lacks them
            filled.notes.append(f"{lesson}: {by_hand} score(s) are autograded points only; points still to grade "
                                f"by hand (manual_points_to_grade) are not in them")
        if differs:
            filled.notes.append(f"{lesson}: Canvas's {header[column].strip()!r} is worth {worth} points, its "
                                f"autograded tests {', '.join(sorted(maxima))}: the scores are exported as graded "
                                f"points; set the assignment's points in Canvas to match")
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter, lineterminator=newline).writerows(rows)
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, (BOM if bom else "") + text.getvalue())
    except OSError as error:
        raise CourseError(f"cannot write {out} ({error.strerror}): choose another --out.") from None
    return filled
