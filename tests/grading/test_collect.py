"""Collecting a class's notebooks (``handwritten.grading.collect``): the folder and LMS-zip layouts, whose
each notebook is, resubmissions, renamed notebooks, and what a source can hold that is not a notebook to trust
(links, pipes, folders, huge or deep files, unsafe zip entries, zip bombs, names that clean up alike), without
grading anything."""

from __future__ import annotations

import json
import os
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from handwritten.grading import CourseError
from handwritten.grading.collect import MAX_ZIP_BYTES, MAX_ZIP_NOTEBOOKS, collect, extract_zip, safe_id
from handwritten.grading.intake import MAX_NOTEBOOK_BYTES

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
    assert {s.lms_id for s in found.submissions} == {""}  # a folder's names carry no LMS id
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
    # the LMS's user id is kept, _LATE_ or not: what an export back to Canvas matches students by
    assert {s.student: s.lms_id for s in found.submissions} == {"alice": "123", "bob": "124"}
    assert sum("older copy" in p for p in found.problems) == 2
    assert any("<student>_..._<lesson>.ipynb" in p for p in found.problems)


def test_two_lms_students_of_one_name_are_two_students(tmp_path):
    touch(tmp_path / f"smithjo_123_456_{NB}.ipynb")
    touch(tmp_path / f"smithjo_123_458_{NB}-1.ipynb")              # the first one's resubmission
    touch(tmp_path / f"smithjo_LATE_124_457_{NB}.ipynb")           # another Jo Smith
    touch(tmp_path / f"ada_125_459_{NB}.ipynb")
    found = collect(tmp_path, LESSONS)
    assert {s.student: (s.lms_id, s.path.name) for s in found.submissions} == {
        "smithjo-123": ("123", f"smithjo_123_458_{NB}-1.ipynb"),
        "smithjo-124": ("124", f"smithjo_LATE_124_457_{NB}.ipynb"), "ada": ("125", f"ada_125_459_{NB}.ipynb")}
    assert found.problems == [f"smithjo_123_456_{NB}.ipynb: older copy of smithjo_123_458_{NB}-1.ipynb, not graded"]


def test_student_ids_are_safe_folder_names(tmp_path):
    touch(tmp_path / "Jean-Luc Picard!" / f"{NB}.ipynb")
    assert collect(tmp_path, LESSONS).submissions[0].student.startswith("Jean-Luc_Picard~")


def test_names_already_safe_keep_their_id_and_no_two_names_share_one(tmp_path):
    names = ["alice", "alice.", ".alice", "alice_", "al ice", "al_ice", "al/ice", "..", "", "Jean-Luc_Picard", "é",
             os.fsdecode(b"c\xffrol")]
    ids = [safe_id(name) for name in names]
    assert ids[0] == "alice" and ids[5] == "al_ice" and ids[9] == "Jean-Luc_Picard"
    assert len(set(ids)) == len(names) and all(i.isascii() for i in ids)
    assert all(i and i not in (".", "..") and "/" not in i and not i.startswith(".") for i in ids)
    for name in ("alice", "alice.", "al ice", "al_ice"):
        touch(tmp_path / name / f"{NB}.ipynb")
    touch(tmp_path / f"bob_123_456_{NB}.ipynb")                  # Canvas: the login before the first "_"
    touch(tmp_path / os.fsdecode(b"c\xffrol") / "Untitled.ipynb")   # a name that is not UTF-8, in a problem line
    found = collect(tmp_path, LESSONS)
    assert len(found.submissions) == 5   # alice. is not an older copy of alice
    assert {"alice", "al_ice", "bob"} <= {s.student for s in found.submissions}
    assert found.problems[0].startswith("c\ufffdrol/Untitled.ipynb: not named after any lesson")
    found.problems[0].encode("utf-8")


def lesson_notebook(ids) -> str:
    return json.dumps({"cells": [{"cell_type": "code", "source": "", "metadata": {"nbgrader": {"grade_id": g}}}
                                 for g in ids]})


def test_links_are_never_followed(tmp_path):
    """A notebook that is a link (to the instructor's solutions, to another student's notebook) is its student's
    submission, refused with the reason; a linked folder is not looked into."""
    secret = touch(tmp_path / "solutions" / f"{NB}.ipynb", lesson_notebook(["a", "b"]))
    source = tmp_path / "class"
    honest = touch(source / "honest" / f"{NB}.ipynb")
    (source / "linker").mkdir()
    (source / "linker" / f"{NB}.ipynb").symlink_to(secret)
    (source / "copier").mkdir()
    (source / "copier" / f"{NB}.ipynb").symlink_to(honest)
    (source / "nameless").mkdir()
    (source / "nameless" / "Untitled.ipynb").symlink_to(secret)    # would be matched by its cell ids if read
    (source / "folder-link").symlink_to(source / "honest")
    (source / "nested").mkdir()
    (source / "nested" / NB).symlink_to(secret.parent)           # nbgrader's nesting, as a link
    found = collect(source, LESSONS, {NB: {"a", "b"}})
    rows = {s.student: s.problem for s in found.submissions}
    assert rows == {"honest": "", "linker": "a symbolic link, not a file: not graded",
                    "copier": "a symbolic link, not a file: not graded"}
    assert sorted(found.problems) == ["folder-link: a symbolic link to a folder: not looked into",
                                      "nameless/Untitled.ipynb: a symbolic link, not a file: not graded",
                                      f"nested/{NB}: a symbolic link to a folder: not looked into"]


def test_a_pipe_folder_or_huge_file_named_like_a_notebook_is_refused_unread(tmp_path):
    touch(tmp_path / "honest" / f"{NB}.ipynb")
    (tmp_path / "piper").mkdir()
    os.mkfifo(tmp_path / "piper" / f"{NB}.ipynb")
    os.mkfifo(tmp_path / "piper" / "Untitled.ipynb")                # read to match its cells, it would block
    (tmp_path / "folder" / f"{NB}.ipynb").mkdir(parents=True)
    huge = touch(tmp_path / "huge" / f"{NB}.ipynb")
    os.truncate(huge, MAX_NOTEBOOK_BYTES + 1)                        # sparse: no disk used
    done = {}
    worker = threading.Thread(target=lambda: done.update(found=collect(tmp_path, LESSONS, {NB: {"a"}})), daemon=True)
    worker.start()
    worker.join(30)
    assert "found" in done, "collect blocked on a named pipe"
    rows = {s.student: s.problem for s in done["found"].submissions}
    assert rows == {"honest": "", "piper": "a named pipe, not a file: not graded",
                    "folder": "a folder, not a file: not graded",
                    "huge": f"larger than 50 MB ({MAX_NOTEBOOK_BYTES + 1:,} bytes): not graded"}
    assert done["found"].problems == ["piper/Untitled.ipynb: a named pipe, not a file: not graded"]


def test_a_notebook_too_deep_or_with_odd_ids_does_not_stop_collecting(tmp_path):
    touch(tmp_path / "deep" / "Untitled.ipynb", '{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    cells = json.loads(lesson_notebook(["a", "b", "c"]))
    cells["cells"][2]["metadata"]["nbgrader"]["grade_id"] = ["c"]   # unhashable
    touch(tmp_path / "listed" / "Untitled.ipynb", json.dumps(cells))
    found = collect(tmp_path, LESSONS, {NB: {"a", "b", "c"}})
    assert [(s.student, s.assignment) for s in found.submissions] == [("listed", NB)]
    assert found.problems == ["deep/Untitled.ipynb: not named after any lesson (04-convolutions-by-hand, 05-cnns), "
                              "and its cells are not those of one lesson"]


def test_a_readable_copy_is_graded_before_one_that_cannot_be_read(tmp_path):
    touch(tmp_path / "alice" / f"{NB}.ipynb")
    (tmp_path / "alice" / f"{NB}-2.ipynb").symlink_to(tmp_path / "alice" / f"{NB}.ipynb")
    found = collect(tmp_path, LESSONS)
    assert [(s.path.name, s.problem) for s in found.submissions] == [(f"{NB}.ipynb", "")]
    assert found.problems == [f"alice/{NB}-2.ipynb: a symbolic link, not a file: not graded "
                              f"(alice/{NB}.ipynb is graded instead)"]


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


def link_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, str]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile's, writing the second entry of one name
def test_unsafe_zip_entries_are_refused_one_by_one(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr(f"../../alice_1_2_{NB}.ipynb", "{}")
        zf.writestr(f"/abs/{NB}.ipynb", "{}")
        zf.writestr("../outside.txt", "x")
        zf.writestr(*link_entry(f"linky/{NB}.ipynb", "/etc/passwd"))
        zf.writestr(*link_entry("folder", "/"))
        zf.writestr(f"honest/{NB}.ipynb", "{}")
        zf.writestr(f"honest/{NB}.ipynb", "{}")                    # a second entry of the same name
    found = collect(evil, LESSONS)
    assert [(s.student, s.problem) for s in found.submissions] == [
        ("honest", ""), ("linky", "a symbolic link in the zip: not extracted")]
    assert sorted(found.problems) == [
        "../../alice_1_2_04-convolutions-by-hand.ipynb: a path out of the zip's folder in the zip: not extracted",
        "../outside.txt: a path out of the zip's folder in the zip: not extracted",
        "/abs/04-convolutions-by-hand.ipynb: an absolute path in the zip: not extracted",
        "folder: a symbolic link in the zip: not extracted",
        f"honest/{NB}.ipynb: a second entry of the same name: not extracted (honest/{NB}.ipynb is graded instead)"]
    root = found.workdir.name
    assert not any(p.is_symlink() for p in Path(root).rglob("*"))
    found.workdir.cleanup()


def test_broken_zip_or_missing_source_is_refused(tmp_path):
    broken = touch(tmp_path / "broken.zip", "not a zip")
    with pytest.raises(CourseError, match="not a readable zip"):
        collect(broken, LESSONS)
    with pytest.raises(CourseError, match="neither a folder"):
        collect(tmp_path / "missing", LESSONS)


def zeros(zf: zipfile.ZipFile, name: str, size: int) -> None:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as entry:
        for _ in range(size // 2**20):
            entry.write(bytes(2**20))
        entry.write(bytes(size % 2**20))


def test_a_zip_bomb_costs_its_bound_not_the_disk(tmp_path):
    """The bounds are counted in bytes written: a header that lies about a size changes nothing."""
    assert MAX_NOTEBOOK_BYTES == 50 * 2**20 and MAX_ZIP_BYTES == 2**30 and MAX_ZIP_NOTEBOOKS == 10_000
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zeros(zf, f"bomb/{NB}.ipynb", MAX_NOTEBOOK_BYTES + 2**20)   # the default bound: ~60 KB zipped
        zf.writestr(f"honest/{NB}.ipynb", "{}")
    assert archive.stat().st_size < 200_000
    into = tmp_path / "out"
    into.mkdir()
    assert extract_zip(archive, into) == [(f"bomb/{NB}.ipynb", "larger than 50 MB when extracted: not extracted")]
    assert [str(p.relative_to(into)) for p in into.rglob("*.ipynb")] == [f"honest/{NB}.ipynb"]


def test_a_zip_is_bounded_in_total_and_in_notebooks(tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for student in "abcdef":
            zf.writestr(f"{student}/{NB}.ipynb", "x" * 400)
        zf.writestr("notes.txt", "x" * 10_000)                      # not a notebook: not extracted, not counted
    for bounds, refused in [({"max_entry": 399}, "abcdef"), ({"max_bytes": 1000}, "cdef"),
                            ({"max_notebooks": 4}, "ef")]:
        into = tmp_path / str(bounds)
        into.mkdir()
        got = extract_zip(archive, into, **bounds)
        assert [name[0] for name, _ in got] == list(refused), (bounds, got)
        assert sorted(p.parent.name for p in into.rglob("*.ipynb")) == sorted(set("abcdef") - set(refused))
        assert not (into / "notes.txt").exists()
