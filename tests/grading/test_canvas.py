"""grades.csv back into Canvas: the instructor's gradebook export (canvas_export.csv, shaped like Canvas's: a UTF-8
byte-order mark, a posting-policy row and a Points Possible row before the students, quotes and commas in names, a
student with no submission, Canvas's test student) filled in place, and every bad input refused with what to do."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from handwritten import cli
from handwritten.grading import CourseError, Result
from handwritten.grading.canvas import fill
from handwritten.grading.grade import write_csv

EXPORT = Path(__file__).with_name("canvas_export.csv")
CONV, CNN = "04-convolutions-by-hand", "05-cnns"


def rows_of(path: Path, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""), delimiter=delimiter))


@pytest.fixture
def grades(tmp_path) -> Path:
    path = tmp_path / "grades.csv"
    write_csv([Result("ada", CONV, score=20, max_score=25, lms_id="123"),
               Result("ada", CNN, score=27.5, max_score=30, lms_id="123"),
               Result("obrienbo", CONV, score=0, max_score=25, lms_id="124"),  # graded, zero: a score
               Result.error("obrienbo", CNN, "not a readable notebook (no cells)", lms_id="124"),
               Result("gone", CONV, score=25, max_score=25, lms_id="999"),
               Result("folder", CONV, score=25, max_score=25)], path)
    return path


def test_scores_fill_the_export_and_nothing_else_changes(grades, tmp_path):
    out = tmp_path / "import.csv"
    filled = fill(EXPORT, grades, out)
    before, after = rows_of(EXPORT), rows_of(out)
    assert out.read_bytes().startswith(b"\xef\xbb\xbf") and b"\r\n" not in out.read_bytes()  # as Canvas wrote it
    assert filled.rows == 3
    # Ada: both lessons; Bo: his zero, and his unreadable notebook left as it was (empty), not a zero; Marie
    # (no submission) keeps the 18 entered in Canvas; the Points Possible, posting and test student rows stay
    changed = {(r, c): after[r][c] for r in range(len(before)) for c in range(len(before[r]))
               if after[r][c] != before[r][c]}
    assert changed == {(3, 5): "20", (3, 6): "27.5", (4, 5): "0"}
    assert [len(row) for row in after] == [len(row) for row in before]
    assert after[3][:5] == ["Lovelace, Ada", "123", "s001", "ada", "Section A, Monday"]
    assert after[4][0] == 'O\'Brien, "Bo"'
    assert any("999 is not in the gradebook" in n and n.startswith("gone") for n in filled.notes)
    assert any(n.startswith("folder") and "no LMS id" in n for n in filled.notes)
    assert any(n.startswith(f"obrienbo ({CNN}): not graded") for n in filled.notes)
    assert not any("worth" in n for n in filled.notes)  # 25 and 30 points on both sides


def test_semicolons_crlf_no_bom_and_the_old_muted_row_are_kept(grades, tmp_path):
    text = EXPORT.read_text(encoding="utf-8-sig").replace("Manual Posting", "Muted")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    gradebook = tmp_path / "export.csv"
    with open(gradebook, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter=";", lineterminator="\r\n").writerows(rows)
    out = tmp_path / "import.csv"
    fill(gradebook, grades, out)
    data = out.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf") and data.count(b"\r\n") == len(rows)
    after = rows_of(out, ";")
    assert after[1][5] == "Muted" and after[3][5:7] == ["20", "27.5"]


def test_points_that_differ_from_canvas_are_reported(tmp_path):
    grades = tmp_path / "grades.csv"
    write_csv([Result("ada", CONV, score=20, max_score=24, lms_id="123"),
               Result("ada", CNN, score=20, max_score=30, manual_max=4, lms_id="123")], grades)
    notes = fill(EXPORT, grades, tmp_path / "import.csv").notes
    assert any("worth 25.00 points" in n and "24" in n for n in notes)
    assert any(n.startswith(f"{CNN}: 1 score(s) are autograded points only") for n in notes)
    assert not any(n.startswith(f"{CONV}: 1 score(s)") for n in notes)


def test_a_lesson_with_no_column_or_several_says_how_to_choose(grades, tmp_path):
    text = EXPORT.read_text(encoding="utf-8-sig")
    (none := tmp_path / "none.csv").write_text(text.replace("Lesson 04: Convolutions by Hand", "Lesson 4"))
    with pytest.raises(CourseError, match=r"no assignment column.*--column 04-convolutions-by-hand="):
        fill(none, grades, tmp_path / "out.csv")
    (two := tmp_path / "two.csv").write_text(text.replace("Reading quiz (1003)",
                                                      '"04 Convolutions by hand, retake (1003)"'))
    with pytest.raises(CourseError, match=r"several assignment columns: 'Lesson 04.*retake.*Say which"):
        fill(two, grades, tmp_path / "out.csv")
    # the instructor's choice settles both, by full header or by name alone
    fill(none, grades, tmp_path / "a.csv", {CONV: "Lesson 4 (1001)"})
    fill(two, grades, tmp_path / "b.csv", {CONV: "04 Convolutions by hand, retake"})
    assert rows_of(tmp_path / "a.csv")[3][5] == "20"
    assert rows_of(tmp_path / "b.csv")[3][5:8] == ["", "27.5", "20"]
    with pytest.raises(CourseError, match=r"--column 04-convolutions-by-hand='Quiz 9' names no assignment column"):
        fill(EXPORT, grades, tmp_path / "c.csv", {CONV: "Quiz 9"})
    with pytest.raises(CourseError, match=r"--column names 06-inside-a-cnn, a lesson with no row"):
        fill(EXPORT, grades, tmp_path / "c.csv", {"06-inside-a-cnn": "05 CNNs"})


def test_a_lesson_name_matches_whole_words_only(tmp_path):
    grades = tmp_path / "grades.csv"
    write_csv([Result("ada", "01-x", score=1, max_score=1, lms_id="123")], grades)
    (gradebook := tmp_path / "export.csv").write_text("Student,ID,SIS User ID,SIS Login ID,Section,101 X (7),01 X (8)\n"
                                                      "A,123,,,,,\n")
    fill(gradebook, grades, tmp_path / "out.csv")
    assert rows_of(tmp_path / "out.csv")[1][5:] == ["", "1"]


@pytest.mark.parametrize("damage, message", [
    (lambda text: text.replace("Student,ID", "Name,ID"), "not a Canvas gradebook export.*Export Entire Gradebook"),
    (lambda text: text.replace('"Curie, Marie",125', '"Curie, Marie",124'), "ID 124 is on two rows"),
])
def test_a_gradebook_that_is_not_canvas_export_is_refused(grades, tmp_path, damage, message):
    (gradebook := tmp_path / "export.csv").write_text(damage(EXPORT.read_text(encoding="utf-8-sig")))
    with pytest.raises(CourseError, match=message):
        fill(gradebook, grades, tmp_path / "out.csv")


def test_unreadable_inputs_and_outputs_are_refused(grades, tmp_path):
    (latin := tmp_path / "latin.csv").write_bytes(EXPORT.read_text(encoding="utf-8-sig").replace("Ada", "Adé")
                                                  .encode("latin-1"))
    with pytest.raises(CourseError, match="not UTF-8 text.*CSV UTF-8"):
        fill(latin, grades, tmp_path / "out.csv")
    with pytest.raises(CourseError, match="cannot read the Canvas gradebook .*Export Entire Gradebook"):
        fill(tmp_path / "missing.csv", grades, tmp_path / "out.csv")
    with pytest.raises(CourseError, match=r"cannot read grades.csv .*grade the submissions first .*--grades"):
        fill(EXPORT, tmp_path / "missing.csv", tmp_path / "out.csv")
    with pytest.raises(CourseError, match="is the gradebook itself"):
        fill(EXPORT, grades, EXPORT)
    (blocked := tmp_path / "blocked").write_text("a file, not a folder")
    with pytest.raises(CourseError, match="cannot write .*choose another --out"):
        fill(EXPORT, grades, blocked / "out.csv")


def test_a_grades_csv_it_cannot_use_is_refused(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("student,lesson,status,notes,score,max_score,feedback\nada,05-cnns,graded,,1,2,\n")
    with pytest.raises(CourseError, match="no lms_id column.*Grade the LMS zip again"):
        fill(EXPORT, old, tmp_path / "out.csv")
    (other := tmp_path / "other.csv").write_text("name,points\nada,1\n")
    with pytest.raises(CourseError, match="not a grades.csv.*student, lesson"):
        fill(EXPORT, other, tmp_path / "out.csv")
    (empty := tmp_path / "empty.csv").write_text("")
    with pytest.raises(CourseError, match="has no grades"):
        fill(EXPORT, empty, tmp_path / "out.csv")
    twice = tmp_path / "twice.csv"
    write_csv([Result("ada", CONV, score=1, max_score=25, lms_id="123"),
               Result("ada2", CONV, score=2, max_score=25, lms_id="123")], twice)
    with pytest.raises(CourseError, match="LMS id 123 has two rows for 04-convolutions-by-hand"):
        fill(EXPORT, twice, tmp_path / "out.csv")


def test_the_command_writes_beside_the_export_and_reports(grades, tmp_path, capsys, monkeypatch):
    gradebook = tmp_path / "2026-12-06T1530_Grades-DL101.csv"
    gradebook.write_bytes(EXPORT.read_bytes())
    assert cli.main(["canvas", str(gradebook), "--grades", str(grades)]) == 0
    printed = capsys.readouterr().out
    assert "gone (04-convolutions-by-hand): LMS id 999 is not in the gradebook" in printed
    assert f"3 score(s) from {grades} written into {tmp_path / (gradebook.stem + '-import.csv')}" in printed
    assert cli.main(["canvas", str(gradebook), "--grades", str(grades), "--column", "06-inside-a-cnn=X"]) == 2
    assert "handwritten canvas: --column names 06-inside-a-cnn" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["canvas", str(gradebook), "--column", "05-cnns"])
    assert "expected LESSON=COLUMN" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # outside any course, and no --grades
    assert cli.main(["canvas", str(gradebook)]) == 2
    assert "Or name the grades.csv to export: --grades PATH." in capsys.readouterr().err


def test_more_identity_and_custom_columns_are_kept_and_never_taken_for_a_lesson(tmp_path):
    # some institutions' exports add Root Account, Student Number or Integration ID, and a course its own notes column
    grades = tmp_path / "grades.csv"
    write_csv([Result("ada", CNN, score=3, max_score=30, lms_id="123")], grades)
    (gradebook := tmp_path / "export.csv").write_text(
        "Student,ID,SIS User ID,SIS Login ID,Root Account,Student Number,Section,Notes 05-cnns,05 CNNs (1002)\n"
        "    Points Possible,,,,,,,,30.00\n"
        "Ada,123,s1,ada,example.edu,0042,S,see 05-cnns,\n")
    fill(gradebook, grades, tmp_path / "out.csv")
    assert rows_of(tmp_path / "out.csv")[2] == ["Ada", "123", "s1", "ada", "example.edu", "0042", "S", "see 05-cnns",
                                                "3"]
