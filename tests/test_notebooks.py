"""Every notebook: committed clean, the instructor version runs top to bottom on a fresh kernel,
the student version fails only where the student has work to do, and lessons/ is exactly what
`handwritten release` generates from solutions/."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

from handwritten.grading import release

from conftest import LESSONS, ROOT

NOTEBOOKS = [ROOT / kind / lesson / f"{lesson}.ipynb" for kind in ("solutions", "lessons") for lesson in LESSONS]


def execute(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def errors(nb):
    return [(cell.get("id"), output.ename, output.evalue) for cell in nb.cells if cell.cell_type == "code"
            for output in cell.outputs if output.output_type == "error"]


def nbgrader_meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_committed_without_outputs_or_widget_state(path):
    raw = json.loads(path.read_text())
    assert "widgets" not in raw["metadata"]
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, cell.get("id")


@pytest.mark.parametrize("lesson", LESSONS)
def test_source_notebook_is_well_formed_for_nbgrader(lesson):
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    nbformat.validate(nb)
    ids = [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c)]
    assert len(ids) == len(set(ids)), "duplicate grade ids"
    untested = None
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type != "code" or not meta:
            continue
        if meta.get("solution"):
            assert untested is None, f"exercise {untested} has no test cell before the next exercise"
            assert "### BEGIN SOLUTION" in cell.source, meta["grade_id"]
            untested = meta["grade_id"]
        if meta.get("grade"):
            assert meta.get("locked") and meta.get("points", 0) > 0, meta["grade_id"]
            untested = None
    assert untested is None, f"exercise {untested} has no test cell"


@pytest.mark.parametrize("lesson", LESSONS)
def test_instructor_notebook_runs_clean(lesson, tmp_path):
    nb = execute(ROOT / "solutions" / lesson / f"{lesson}.ipynb", tmp_path)
    assert errors(nb) == []
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade") and cell.cell_type == "code":
            text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            assert "✓" in text, f"test cell {cell.id} printed no ✓"
            assert not any(o.get("name") == "stderr" for o in cell.outputs), cell.id


@pytest.mark.parametrize("lesson", LESSONS)
def test_student_notebook_fails_only_with_not_implemented(lesson, tmp_path):
    nb = execute(ROOT / "lessons" / lesson / f"{lesson}.ipynb", tmp_path)
    found = errors(nb)
    assert found, "the student notebook ran without a single unfinished exercise"
    assert {ename for _, ename, _ in found} == {"NotImplementedError"}, found
    failing = {cell_id for cell_id, _, _ in found}
    visible_tests = [c.id for c in nb.cells if nbgrader_meta(c).get("grade") and c.cell_type == "code"
                     and "check." in c.source]
    assert set(visible_tests) <= failing, "a visible self-check passed on an unfinished exercise"


def test_lessons_are_exactly_what_release_generates_every_time(course_copy):
    release(course_copy)
    for lesson in LESSONS:
        generated = (course_copy.root / "lessons" / lesson / f"{lesson}.ipynb").read_bytes()
        committed = (ROOT / "lessons" / lesson / f"{lesson}.ipynb").read_bytes()
        assert generated == committed, f"lessons/{lesson} is stale: run `make release` and commit it"
    assert sorted(p.name for p in (ROOT / "lessons").iterdir() if p.is_dir()) == LESSONS
    assert release(course_copy) == [], "releasing again changed lessons/: the release is not deterministic"
