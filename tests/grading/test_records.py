"""One record per graded submission (``handwritten.grading.records``): a status that is a value and
notes that are a list, both kept across runs; records of the previous version (whose status held its
notes) are graded again, never a crash; a record is written whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handwritten.grading import Result, Status, records

CONV = "04-convolutions-by-hand"


def test_status_and_notes_survive_a_record(course):
    result = Result("ada", CONV, score=3, max_score=4, tests={"t": 3.0}, feedback=Path("/f.html"), digest="d",
                    notes=["1 duplicated cell id(s) ignored (split or copied cells)", "feedback failed: x"])
    records.save(course, result)
    kept = records.load(course, "ada", CONV)
    assert kept.status is Status.GRADED and kept.graded and kept.kept
    assert kept.notes == result.notes and kept.feedback == Path("/f.html") and kept.tests == {"t": 3.0}
    data = json.loads(records.path(course, "ada", CONV).read_text())
    assert data["status"] == "graded" and data["notes"] == result.notes
    records.save(course, Result.error("bo", CONV, "not a readable notebook (no cells)"))
    failed = records.load(course, "bo", CONV)
    assert failed.status is Status.ERROR and not failed.graded
    assert failed.notes == ["not a readable notebook (no cells)"]
    records.forget(course, "bo", CONV)
    assert records.load(course, "bo", CONV) is None


@pytest.mark.parametrize("old", [
    {"status": "graded; 1 duplicated cell id(s) ignored (split or copied cells)"},
    {"status": "error: the kernel died while running the notebook (a cell crashed or exited Python)"},
    {"status": "graded", "notes": "not a list"},
    {"status": "graded", "a_field_from_elsewhere": 1},
])
def test_a_record_this_version_cannot_read_means_grade_again(course, old):
    path = records.path(course, "ada", CONV)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"student": "ada", "assignment": CONV, "score": 1.0, "digest": "d"} | old))
    assert records.load(course, "ada", CONV) is None


def test_a_plain_graded_record_of_the_previous_version_is_kept(course):
    """Its status said everything: no notes."""
    path = records.path(course, "ada", CONV)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"student": "ada", "assignment": CONV, "status": "graded", "score": 1.0,
                                "digest": "d", "feedback": None, "kept": False}))
    kept = records.load(course, "ada", CONV)
    assert kept.status is Status.GRADED and kept.notes == [] and kept.digest == "d"


def test_a_record_is_whole_or_the_previous_one(course, monkeypatch):
    records.save(course, Result("ada", CONV, score=1, digest="first"))
    path = records.path(course, "ada", CONV)

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", full)
    with pytest.raises(OSError):
        records.save(course, Result("ada", CONV, score=2, digest="second"))
    monkeypatch.undo()
    assert records.load(course, "ada", CONV).digest == "first"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no half-written file left behind
