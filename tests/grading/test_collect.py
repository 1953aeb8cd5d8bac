"""Collecting a class's notebooks (``handwritten.grading.collect``): the folder and LMS-zip layouts, whose
each notebook is, resubmissions, renamed notebooks and unsafe zips, without grading anything."""

from __future__ import annotations

import json
import zipfile

import pytest

from handwritten.grading import CourseError
from handwritten.grading.collect import collect

LESSONS = ["04-convolutions-by-hand", "05-cnns"]
NB = "04-convolutions-by-hand"


def touch(path, text="{}"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_folder_layouts(tmp_path):
    touch(tmp_path / "alice" / f"{NB}.ipynb")
    touch(tmp_path / "bob" / NB / f"{NB}.ipynb")                  # nbgrader's own nesting
    touch(tmp_path / "bob" / "05-cnns.ipynb")
    touch(tmp_path / "carol" / ".ipynb_checkpoints" / f"{NB}-checkpoint.ipynb")
    touch(tmp_path / "dave" / "Untitled.ipynb")
    found = collect(tmp_path, LESSONS)
    assert [(s.student, s.assignment) for s in found.submissions] == [
        ("alice", NB), ("bob", NB), ("bob", "05-cnns")]
    assert len(found.problems) == 1 and "Untitled.ipynb" in found.problems[0]


def test_a_notebook_under_another_name_is_matched_by_its_cell_ids(tmp_path):
    cells = [{"cell_type": "code", "source": "", "metadata": {"nbgrader": {"grade_id": g}}} for g in ("a", "b", "c")]
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "Untitled (final).ipynb").write_text(json.dumps({"cells": cells[:2]}))
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "notes.ipynb").write_text(json.dumps({"cells": cells[2:]}))  # a third of either
    (tmp_path / "bob" / "broken.ipynb").write_text("{ not json")
    ids = {NB: {"a", "b", "c"}, "05-cnns": {"c", "x", "y"}}
    collected = collect(tmp_path, LESSONS, ids)
    found = [(s.student, s.assignment, s.renamed) for s in collected.submissions]
    assert found == [("alice", NB, "Untitled (final).ipynb")]
    assert len(collected.problems) == 2 and all("not those of one lesson" in p for p in collected.problems)


def test_lms_names_and_resubmissions(tmp_path):
    touch(tmp_path / f"alice_123_456_{NB}.ipynb")
    touch(tmp_path / f"alice_123_457_{NB}-2.ipynb")
    touch(tmp_path / f"alice_123_458_{NB}-1.ipynb")
    touch(tmp_path / f"bob_LATE_124_459_{NB} (1).ipynb")
    touch(tmp_path / f"{NB}.ipynb")                                # whose?
    found = collect(tmp_path, LESSONS)
    chosen = {s.student: s.path.name for s in found.submissions}
    assert chosen == {"alice": f"alice_123_457_{NB}-2.ipynb", "bob": f"bob_LATE_124_459_{NB} (1).ipynb"}
    assert sum("older copy" in p for p in found.problems) == 2
    assert any("<student>_..._<lesson>.ipynb" in p for p in found.problems)


def test_student_ids_are_safe_folder_names(tmp_path):
    touch(tmp_path / "Jean-Luc Picard!" / f"{NB}.ipynb")
    assert collect(tmp_path, LESSONS).submissions[0].student == "Jean-Luc_Picard"


def test_zip_is_extracted_and_cleaned_up(tmp_path):
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"alice/{NB}.ipynb", "{}")
        zf.writestr("__MACOSX/alice/._x.ipynb", "")
    found = collect(archive, LESSONS)
    assert [s.student for s in found.submissions] == ["alice"] and found.problems == []
    workdir = found.workdir.name
    found.workdir.cleanup()
    assert not (tmp_path / workdir).exists()


def test_unsafe_or_broken_zip_is_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr(f"../../alice_1_2_{NB}.ipynb", "{}")
    with pytest.raises(CourseError, match="unsafe path"):
        collect(evil, LESSONS)
    broken = touch(tmp_path / "broken.zip", "not a zip")
    with pytest.raises(CourseError, match="not a readable zip"):
        collect(broken, LESSONS)
    with pytest.raises(CourseError, match="neither a folder"):
        collect(tmp_path / "missing", LESSONS)
