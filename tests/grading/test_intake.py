"""Reading a submission (``handwritten.grading.intake``): only a regular file within bounds is read, never through
a link, and a submission's graded cells are the release's before nbgrader sees them, so that its points and its
questions for the instructor are the lesson's whatever the student did to the notebook."""

from __future__ import annotations

import copy
import importlib
import json
import os
import re

import nbformat
import pytest

from handwritten.grading import intake
from handwritten.grading.cases import graded_tests, submission
from handwritten.grading.cells import grade_ids, nbgrader_meta
from handwritten.grading.collect import Submission
from handwritten.grading.intake import MAX_DEPTH, MAX_NOTEBOOK_BYTES, Refused, load_notebook, normalise, read_bytes
from handwritten.grading.release import release

grading = importlib.import_module("handwritten.grading.grade")
CONV = "04-convolutions-by-hand"
LINK = "a symbolic link, not a file: not graded"


def cell(grade_id, **meta):
    return {"cell_type": "code", "id": "added-" + re.sub(r"\W", "", str(grade_id)), "source": "", "outputs": [],
            "execution_count": None, "metadata": {"nbgrader": {"grade_id": grade_id, **meta}}}


def test_grade_ids_that_are_not_text_are_no_grade_ids():
    cells = [cell("a"), cell(["b"]), cell({"c": 1}), cell(None), "not a cell", cell("setup")]
    assert grade_ids(cells) == {"a"}
    assert nbgrader_meta(cells[1]) == {} and nbgrader_meta(cells[0])["grade_id"] == "a"
    assert grade_ids({"cells": "not a list"}) == set()


def test_only_a_regular_file_is_read(tmp_path):
    secret = tmp_path / "secret.ipynb"
    secret.write_text('{"cells": []}')
    (tmp_path / "link.ipynb").symlink_to(secret)
    os.mkfifo(tmp_path / "pipe.ipynb")
    (tmp_path / "folder.ipynb").mkdir()
    huge = tmp_path / "huge.ipynb"
    huge.write_text("{}")
    os.truncate(huge, MAX_NOTEBOOK_BYTES + 1)
    for name, why in [("link", LINK), ("pipe", "a named pipe, not a file: not graded"),
                      ("folder", "a folder, not a file: not graded"),
                      ("huge", f"larger than 50 MB ({MAX_NOTEBOOK_BYTES + 1:,} bytes): not graded"),
                      ("missing", "cannot be read (No such file or directory)")]:
        with pytest.raises(Refused) as refused:
            load_notebook(tmp_path / f"{name}.ipynb")
        assert str(refused.value) == why
    assert load_notebook(secret) == {"cells": []}


def test_a_link_or_pipe_swapped_in_after_the_check_is_still_refused(tmp_path, monkeypatch):
    """``problem`` looks at the entry before it is opened; the file opened is checked again (no link followed,
    a pipe opened without waiting for a writer), so replacing it in between gains nothing."""
    secret = tmp_path / "secret.ipynb"
    secret.write_text('{"cells": []}')
    (tmp_path / "link.ipynb").symlink_to(secret)
    os.mkfifo(tmp_path / "pipe.ipynb")
    monkeypatch.setattr(intake, "problem", lambda path: "")
    with pytest.raises(Refused, match=LINK):
        read_bytes(tmp_path / "link.ipynb")
    with pytest.raises(Refused, match="a named pipe"):
        read_bytes(tmp_path / "pipe.ipynb")
    grown = tmp_path / "grown.ipynb"
    grown.write_text("x" * 11)
    with pytest.raises(Refused, match="larger than"):
        read_bytes(grown, limit=10)


@pytest.mark.parametrize("text,why", [
    ('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}", f"nests more than {MAX_DEPTH} levels deep"),
    ('{"cells": [' + '{"a": ' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1) + "]}",
     f"nests more than {MAX_DEPTH} levels deep"),
    ("[1, 2]", "no cells"),
    ('{"cells": {"0": {}}}', "no cells"),
    ('{"cells": [1]}', "cell 1 is not a notebook cell"),
    ('{"cells": [{"metadata": []}]}', "cell 1 is not a notebook cell"),
    ('{"cells": [{"source": "x"}, {"source": ["a", 1]}]}', "cell 2 is not a notebook cell"),
    (b"\xff\xfe{}", "not UTF-8 text"),
    ("", "Expecting value"),
])
def test_an_unreadable_notebook_is_refused_with_its_reason(tmp_path, text, why):
    path = tmp_path / "x.ipynb"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(Refused) as refused:
        load_notebook(path)
    assert str(refused.value).startswith("not a readable notebook (") and why in str(refused.value)


def released_cell(nb, grade_id):
    return next(c for c in nb["cells"] if nbgrader_meta(c).get("grade_id") == grade_id)


def test_graded_cells_are_the_releases(course_copy):
    released = json.loads(course_copy.notebook("release", CONV).read_text())
    nb = copy.deepcopy(released)
    bonus = cell("bonus", grade=True, points=100, solution=False, locked=False)
    empty = {**cell(None), "id": "empty", "metadata": {"nbgrader": {}}}             # a plain cell: no flag
    nb["cells"] += [bonus, cell(["corr2d_test"], grade=True, points=50), empty]
    released_cell(nb, "corr2d_test")["metadata"]["nbgrader"]["points"] = 100   # tampered points
    question = released_cell(nb, "q1_receptive_field")
    question.update(cell_type="code", outputs=[], execution_count=None, source="# my answer")
    test = released_cell(nb, "corr2d_test")
    test["cell_type"] = "markdown"
    del test["outputs"], test["execution_count"]
    flags = normalise(nb, released)
    count = len(released["cells"])
    assert flags == ["cell corr2d_test: a code cell of the release was made markdown: put back",
                     "cell q1_receptive_field: a markdown cell of the release was made code: put back",
                     f"cell {count + 1}: grade id 'bonus' is not in the released notebook (it claimed points): "
                     f"graded as a plain cell",
                     f"cell {count + 2}: nbgrader metadata whose grade id is not text: graded as a plain cell"]
    assert ["nbgrader" in c["metadata"] for c in nb["cells"][count:]] == [False, False, False]
    assert [(c["cell_type"], c["metadata"]) for c in nb["cells"][:count]] == [
        (c["cell_type"], c["metadata"]) for c in released["cells"]]
    assert question["source"] == "# my answer" and "outputs" not in question and test["outputs"] == []
    nbformat.validate(nbformat.from_dict(nb))


@pytest.mark.filterwarnings("ignore:.*not in session")  # nbgrader's gradebook, on every new submission
def test_the_points_to_grade_are_the_releases_whatever_cells_were_added(course_copy):
    """nbgrader fails a whole notebook on a graded cell it does not know (this test shows it, on nbgrader's
    sanitizing alone: no kernel); normalised, it grades the release's points and manual questions."""
    release(course_copy, [CONV])
    nb = json.loads(nbformat.writes(submission(course_copy, CONV)))
    nb["cells"].append(cell("bonus", grade=True, points=100, solution=False, locked=False, schema_version=3))
    released_cell(nb, "q1_receptive_field")["cell_type"] = "code"
    released_cell(nb, "q1_receptive_field").update(outputs=[], execution_count=None)
    released = json.loads(course_copy.notebook("release", CONV).read_text())
    sub = Submission("ada", CONV, course_copy.root / "unused.ipynb")
    no_execution = course_copy.api({"Autograde": {"autograde_preprocessors": [
        "nbgrader.preprocessors.SaveAutoGrades"]}})
    grading.place(course_copy, sub, nb)
    outcome = no_execution.autograde(CONV, "ada", force=True, create=True)
    assert not outcome["success"] and "KeyError: 'grade_id'" in outcome["log"], outcome["log"][-2000:]
    assert len(normalise(nb, released)) == 2
    grading.place(course_copy, sub, nb)
    outcome = no_execution.autograde(CONV, "ada", force=True, create=True)
    assert outcome["success"], outcome["log"][-2000:]
    result = grading.scores(course_copy, "ada", CONV)
    assert result.max_score == sum(graded_tests(course_copy, CONV).values()) == 28
    assert result.manual_max == 5
