"""A test cell run in the grader (handwritten.grading.trusted), against a student's namespace reached only
through the kernel agent's text interface: its outputs are what nbgrader scores."""

from __future__ import annotations

import pytest
import torch
from nbclient.exceptions import DeadKernelError

from handwritten.checks import _agent
from handwritten.grading.trusted import KernelLost, KernelTimedOut, course_namespace, run_test_cell, setup_imports

SETUP = """try:
    from handwritten import env
except ModuleNotFoundError as error:
    raise
course = env.setup()
import torch
import os
from handwritten.checks import conv as check
"""
GOOD = "def corr2d(X, K):\n    return torch.nn.functional.conv2d(X[None, None], K[None, None])[0, 0]\n"
WRONG = "def corr2d(X, K):\n    return torch.zeros(X.shape[0] - K.shape[0] + 1, X.shape[1] - K.shape[1] + 1)\n"


def student(source: str):
    namespace = {"torch": torch}
    exec(source, namespace)
    return lambda text: _agent.serve(text, namespace)


def test_the_setup_cells_course_imports_and_nothing_else():
    names = course_namespace(SETUP + "import subprocess\nfrom evil import x\ncheck = 'forged'\n")
    assert names["check"].__name__ == "handwritten.checks.conv" and names["torch"] is torch
    assert {"os", "subprocess", "x", "course"}.isdisjoint(names)  # only the course's modules and libraries
    assert setup_imports("x = (" * 500 + ")" * 500) == []  # unparsable: nothing, and no crash


def test_a_passing_cell_prints_its_line_and_a_failing_one_raises_its_message():
    course = course_namespace(SETUP)
    outputs = run_test_cell("check.corr2d(corr2d)", course, student(GOOD))
    assert [o["output_type"] for o in outputs] == ["stream"] and outputs[0]["text"].startswith("✓ corr2d")
    outputs = run_test_cell("check.corr2d(corr2d)", course, student(WRONG))
    assert [(o["output_type"], o.get("ename")) for o in outputs] == [("error", "AssertionError")]
    assert "wrong values" in outputs[0]["evalue"]


def test_unfinished_and_missing_work_fail_as_they_would_in_the_kernel():
    course = course_namespace(SETUP)
    unfinished = student("def corr2d(X, K):\n    raise NotImplementedError()")
    outputs = run_test_cell("check.corr2d(corr2d)", course, unfinished)
    assert outputs[-1]["ename"] == "NotImplementedError"
    outputs = run_test_cell("check.corr2d(corr2d)", course, student(""))
    assert (outputs[-1]["ename"], outputs[-1]["evalue"]) == ("NameError", "name 'corr2d' is not defined")


def test_a_lost_kernel_ends_the_cell_and_a_dead_one_the_notebook():
    course = course_namespace(SETUP)

    def times_out(text):
        raise KernelLost(KernelTimedOut())

    def dies(text):
        raise KernelLost(DeadKernelError("dead"))

    # the check catches every Exception its student code raises; a lost kernel still ends the cell
    outputs = run_test_cell("check.corr2d(corr2d)", course, times_out)
    assert [o.get("ename") for o in outputs] == ["CellTimeoutError"]
    with pytest.raises(DeadKernelError):
        run_test_cell("check.corr2d(corr2d)", course, dies)
