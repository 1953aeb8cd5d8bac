"""The self-checks, proven fast and in-process: the instructor's answers pass every test cell (as
graded and as a student's own run), and every grader fixture (autograders/<lesson>/cases.toml),
run as nbgrader grades it, fails exactly the tests it names, with the message it names; the checks
reach student code only through the seam, ``_core.call``. test_grading.py proves the fixtures
through the real nbgrader."""

from __future__ import annotations

import contextlib
import io
import os
import sys

import nbformat
import pytest
import torch

from handwritten.checks import _core
from handwritten.checks import conv as check
from handwritten.grading import Course
from handwritten.grading.cases import load_cases, solution_sources
from handwritten.reference import convolution

from conftest import LESSONS, ROOT

COURSE = Course(ROOT)


def _cells(lesson):
    """The setup cell, the instructor's code answers by grade id, and the test cells."""
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    answers = solution_sources(COURSE, lesson)
    solutions = {c.metadata.nbgrader["grade_id"]: answers[c.metadata.nbgrader["grade_id"]]
                 for c in code if c.metadata.get("nbgrader", {}).get("solution")}
    tests = [(c.metadata.nbgrader["grade_id"], c.source) for c in code
             if c.metadata.get("nbgrader", {}).get("grade")]
    return code[0].source, solutions, tests


STUDENT = "<student's cell>"  # the file name the answers are compiled under: how the seam test knows their code


def run_tests(lesson, replacements=None, *, graded=True, outside_the_seam=None):
    """Run the lesson's setup cell, its solution cells (with replacements) and every test cell,
    hidden parts included, in one namespace: {test id: None or the failure}. ``graded``: as
    nbgrader runs them when it grades (``NBGRADER_EXECUTION=autograde``: the checks train less),
    else as a student's own run of the notebook does. With a list as
    ``outside_the_seam``, every time student code starts running while no ``_core.call`` is under
    way, its name and the test it ran in are added to that list."""
    setup, answers, tests = _cells(lesson)
    edited = setup.replace("env.setup()", "env.setup(load_data=False)")
    assert edited != setup, "the setup cell no longer calls env.setup(): update this test"
    ns: dict = {}
    with _grading(graded), contextlib.redirect_stdout(io.StringIO()):
        exec(edited, ns)
        for grade_id, source in answers.items():
            exec(compile((replacements or {}).get(grade_id, source), STUDENT, "exec"), ns)
    results = {}
    for grade_id, source in tests:
        try:
            with _grading(graded), contextlib.redirect_stdout(io.StringIO()), _watch(outside_the_seam, grade_id):
                exec(source, ns)
            results[grade_id] = None
        except Exception as error:  # noqa: BLE001 - any failure is a failed test
            results[grade_id] = f"{type(error).__name__}: {error}"
    return results


@contextlib.contextmanager
def _grading(graded: bool):
    """NBGRADER_EXECUTION set as nbgrader sets it while grading (or unset), then put back."""
    saved = os.environ.pop("NBGRADER_EXECUTION", None)
    if graded:
        os.environ["NBGRADER_EXECUTION"] = "autograde"
    try:
        yield
    finally:
        os.environ.pop("NBGRADER_EXECUTION", None)
        if saved is not None:
            os.environ["NBGRADER_EXECUTION"] = saved


@contextlib.contextmanager
def _watch(found, test):
    """Note every start of student code outside the seam while the block runs (if ``found`` is a list)."""
    if found is None:
        yield
        return

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename == STUDENT and not _core.in_student_code():
            found.append((test, frame.f_code.co_qualname))

    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(None)


@pytest.mark.parametrize("lesson", LESSONS)
def test_checks_reach_student_code_only_through_the_seam(lesson):
    found = []
    results = run_tests(lesson, outside_the_seam=found)
    assert not any(results.values()), results
    assert found == [], f"student code run outside _core.call: {sorted(set(found))}"


def test_the_seam_watch_sees_a_direct_call():
    found = []
    namespace = {}
    exec(compile("def corr2d(X, K):\n    return X", STUDENT, "exec"), namespace)
    with _watch(found, "a test"):
        namespace["corr2d"](1, 2)
        _core.call("corr2d", namespace["corr2d"], 1, 2)
    assert found == [("a test", "corr2d")]


@pytest.mark.parametrize("graded", [True, False], ids=["graded", "self-check"])
@pytest.mark.parametrize("lesson", LESSONS)
def test_instructor_answers_pass_every_test(lesson, graded):
    assert run_tests(lesson, graded=graded) == {grade_id: None for grade_id, _ in _cells(lesson)[2]}


CASES = [(lesson, case) for lesson in LESSONS for case in load_cases(COURSE, lesson)]


@pytest.mark.parametrize("lesson,case", CASES, ids=[f"{lesson}:{c.kind}:{c.name}" for lesson, c in CASES])
def test_grader_fixture(lesson, case):
    results = run_tests(lesson, case.cells)
    failed = {grade_id for grade_id, error in results.items() if error}
    assert failed == set(case.fails), f"{case.name} ({case.why}) failed {sorted(failed)}"
    for grade_id in failed:
        assert case.expected_message(grade_id) in results[grade_id], results[grade_id]


# (mutants, alternatives) each lesson must have at least; lessons not listed need (6, 2).
MINIMUM_FIXTURES = {"03-what-is-torch-nn": (7, 3), "04-convolutions-by-hand": (38, 8), "05-cnns": (27, 5),
                    "07-build-your-own-framework": (33, 4)}


@pytest.mark.parametrize("lesson", LESSONS)
def test_enough_fixtures(lesson):
    cases = load_cases(COURSE, lesson)
    mutants, alternatives = MINIMUM_FIXTURES.get(lesson, (6, 2))
    assert sum(c.kind == "mutant" for c in cases) >= mutants
    assert sum(c.kind == "alternative" for c in cases) >= alternatives


def test_checks_print_only_to_stdout(capfd):
    def corr2d(X, K):
        return convolution.corr2d(X, K)

    check.corr2d(corr2d)
    check.corr2d_hidden(corr2d, seed=3)
    out, err = capfd.readouterr()
    assert "public checks passed" in out and "Hidden tests run when your work is graded" in out
    assert err == ""


def test_visible_check_never_claims_hidden_tests_passed(capsys):
    check.pool2d(convolution.pool2d)
    out = capsys.readouterr().out
    assert "public checks passed" in out and "hidden tests passed" not in out


def test_references_in_place_restores_the_students_names():
    namespace = {"corr2d": "the student's"}
    exec("def corr2d_multi_in(X, K):\n    return corr2d", namespace)
    fn = namespace["corr2d_multi_in"]
    with _core.references_in_place(fn, corr2d="reference", corr2d_multi_in="reference too"):
        assert fn(None, None) == "reference"
    assert namespace["corr2d"] == "the student's"
    assert namespace["corr2d_multi_in"] is fn


def test_references_in_place_restores_after_a_failure():
    namespace = {}
    exec("def f():\n    return g()", namespace)
    with pytest.raises(AssertionError), _core.references_in_place(namespace["f"], g=lambda: 1):
        raise AssertionError("a failing check")
    assert "g" not in namespace


def test_checks_survive_a_monkeypatched_allclose(monkeypatch):
    monkeypatch.setattr(torch, "allclose", lambda *args, **kwargs: True)

    def wrong(X, K):
        return convolution.corr2d(X, K) + 1

    with pytest.raises(AssertionError, match="wrong values"):
        check.corr2d(wrong)


@pytest.mark.parametrize("got,expected,fragment", [
    ((3, 3), (2, 2), "as large as the input"),
    ((3, 2), (2, 2), "One too many rows"),
    ((2, 1), (2, 2), "One too few columns"),
    ((7, 8), (8, 7), "swapped"),
])
def test_dimension_hints(got, expected, fragment):
    assert fragment in _core.dimension_hint(got, expected, input_shape=(3, 3))


def test_numpy_output_gets_a_clear_message():
    with pytest.raises(AssertionError, match="torch.from_numpy"):
        check.corr2d(lambda X, K: convolution.corr2d(X, K).numpy())


def test_student_exceptions_propagate_unchanged():
    def unfinished(X, K):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        check.corr2d(unfinished)
