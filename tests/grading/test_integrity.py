"""The integrity scan, statically: each tampering pattern is flagged with its reason and line, and
the honest notebook (the released one with the instructor's answers typed in) is not flagged."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from handwritten.grading import Course
from handwritten.grading.cases import student_notebook, submission
from handwritten.grading.integrity import scan

from conftest import ROOT

CONV = "04-convolutions-by-hand"


@pytest.fixture(scope="module")
def course():
    return Course(ROOT)


def as_dict(nb) -> dict:
    return json.loads(nbformat.writes(nb))


def flags_for(course, code: str) -> list[str]:
    released = as_dict(student_notebook(course, CONV))
    return scan(as_dict(submission(course, CONV, {"corr2d": code})), released)


def test_honest_submission_has_no_flags(course):
    released = as_dict(student_notebook(course, CONV))
    assert scan(as_dict(submission(course, CONV)), released) == []
    assert scan(released, released) == []


@pytest.mark.parametrize("code,reason", [
    ("import torch\ntorch.allclose = lambda *a, **k: True", "replaces torch.allclose"),
    ("import numpy as np\nnp.testing.assert_allclose = print", "replaces np.testing.assert_allclose"),
    ("from torch import nn\nnn.functional.conv2d = None", "replaces nn.functional.conv2d"),
    ("import builtins\nbuiltins.len = lambda x: 0", "replaces builtins.len"),
    ("__builtins__.print = None", "replaces __builtins__.print"),
    ("import handwritten.checks.conv as c\nc.corr2d = print", "replaces c.corr2d"),
    ("import torch\nsetattr(torch, 'allclose', max)", "setattr on torch"),
    ("import sys\nsys.modules['torch'] = None", "touches sys.modules"),
    ("import ctypes", "ctypes"),
    ("import gc\ngc.get_objects()", "uses gc"),
    ("__import__('ctypes')", "ctypes"),
    ("open('/etc/passwd').read()", "outside its working folder"),
    ("open('../../../../x.ipynb').read()", "outside its working folder"),
    ("import pathlib\npathlib.Path('/work').read_text()", "outside its working folder"),
    ("path = 'autograders/gradebook.db'", "the grader's files"),
    ("def check(f):\n    pass", "redefines 'check'"),
    ("check = None", "redefines 'check'"),
    ("__handwritten_guard__ = print", "reaches the grader's guard"),
    ("# ### BEGIN HIDDEN TESTS", "hidden-tests marker"),
])
def test_tampering_is_flagged_with_its_line(course, code, reason):
    lines = ["x = 1", *code.splitlines()]
    found = [flag for flag in flags_for(course, "\n".join(lines)) if reason in flag]
    assert found and all(flag.startswith("cell corr2d") for flag in found), found
    if "hidden-tests" not in reason:  # the line named is the line that does it
        line = int(re.search(r", line (\d+): ", found[0]).group(1))
        assert 2 <= line <= len(lines) and lines[line - 1].strip(), (found, lines)


def test_edited_and_deleted_locked_cells_are_flagged(course):
    released = as_dict(student_notebook(course, CONV))
    nb = as_dict(submission(course, CONV))
    test = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "corr2d_test")
    test["source"] = "pass"
    nb["cells"] = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") != "pool2d_test"]
    assert scan(nb, released) == ["cell corr2d_test: a locked cell was edited (it is graded as released)",
                                  "cell pool2d_test: a locked cell was deleted (it is restored and graded)"]


def test_magics_and_syntax_errors_do_not_break_the_scan(course):
    assert flags_for(course, "%timeit 1 + 1\n!ls\ndef corr2d(X, K):\n    return X") == []
    assert flags_for(course, "def corr2d(X, K) return X") == []


def test_a_cell_too_deep_to_parse_is_flagged_and_the_rest_still_scanned(course):
    code = "def corr2d(X, K):\n    return X\nx = " + " + ".join(["1"] * 20_000) + "\n"
    with pytest.raises(RecursionError):
        compile(code, "<cell>", "exec")  # what used to end the whole notebook as "grading failed"
    released = as_dict(student_notebook(course, CONV))
    nb = submission(course, CONV, {"corr2d": code})
    nb.cells.append(nbformat.v4.new_code_cell("import ctypes"))
    flags = scan(as_dict(nb), released)
    assert "cell corr2d: the cell is nested too deeply to be scanned" in flags
    assert any("ctypes" in flag for flag in flags)
