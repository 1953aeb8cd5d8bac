"""The grader fixtures, ``autograders/<lesson>/cases.toml`` (``handwritten.grading.cases``): every committed
file passes the schema, a broken one is refused with its file and line, and fixtures are packed so that
one submission proves several."""

from __future__ import annotations

import re

import pytest

from handwritten.grading import Course, CourseError
from handwritten.grading.cases import Case, load_cases, pack

from conftest import LESSONS, ROOT

CONV = "04-convolutions-by-hand"
MUTANT = '''
[[mutant]]
name = "flipped"
why = "true convolution"
fails = ["corr2d_test", "corr2d_hidden"]
message = "convolution, not cross-correlation"
[mutant.cells]
corr2d = """
def corr2d(X, K):
    message = "a line of code that looks like a key"
    return X
"""
'''
ALTERNATIVE = '''
[[alternative]]
name = "unfold"
why = "vectorised"
[alternative.cells]
corr2d = "def corr2d(X, K):\\n    return X"
'''


def refused(course: Course, text: str) -> tuple[int, str]:
    """Write ``text`` as lesson 04's cases.toml; the line and the message of the error loading it."""
    path = course.root / "autograders" / CONV / "cases.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with pytest.raises(CourseError) as error:
        load_cases(course, CONV)
    found = re.match(rf"{re.escape(str(path))}:(\d+): (.*)", str(error.value), re.S)
    assert found, str(error.value)
    return int(found.group(1)), found.group(2)


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_committed_cases_file_passes_the_schema(lesson):
    cases = load_cases(Course(ROOT), lesson)
    assert {c.kind for c in cases} == {"mutant", "alternative"}
    for case in cases:
        assert case.name and case.why and case.cells
        if case.kind == "mutant":
            assert case.fails and all(case.expected_message(test) for test in case.fails)


def test_a_valid_file_loads(course):
    path = course.root / "autograders" / CONV / "cases.toml"
    path.parent.mkdir(parents=True)
    path.write_text(MUTANT + ALTERNATIVE)
    mutant, alternative = load_cases(course, CONV)
    assert (mutant.kind, mutant.fails, mutant.expected_message("corr2d_test")) == (
        "mutant", ("corr2d_test", "corr2d_hidden"), "convolution, not cross-correlation")
    assert (alternative.kind, alternative.fails, list(alternative.cells)) == ("alternative", (), ["corr2d"])


def test_a_misspelt_message_key_is_refused_at_its_line(course):
    text = ALTERNATIVE + MUTANT.replace('message = "convolution', 'mesage = "convolution')
    line, message = refused(course, text)
    assert text.splitlines()[line - 1].startswith("mesage = ")  # not the line of code that sets `message`
    assert "mutant 'flipped': unknown key 'mesage'" in message


@pytest.mark.parametrize("edit,key,expected", [
    (('message = "convolution, not cross-correlation"', 'message = " "'), "fails", "no message for 'corr2d_test'"),
    (('message = "convolution, not cross-correlation"', '[mutant.messages]\ncorr2d_test = "one"'), "fails",
     "no message for 'corr2d_hidden'"),
    (('message = "convolution, not cross-correlation"', 'message = "x"\n[mutant.messages]\nconv_test = "y"'),
     "conv_test", "messages names 'conv_test', which is not in fails"),
    (('fails = ["corr2d_test", "corr2d_hidden"]', 'fails = []'), "fails", "needs 'fails'"),
    (('fails = ["corr2d_test", "corr2d_hidden"]\n', ''), "[[mutant]]", "needs 'fails'"),
    (('why = "true convolution"', 'why = ""'), "why", "needs a non-empty 'why'"),
    (('name = "flipped"\n', ''), "[[mutant]]", "needs a non-empty 'name'"),
    (('[mutant.cells]\ncorr2d = """', 'note = """'), "note", "unknown key 'note'"),
])
def test_each_rule_of_a_mutant_is_enforced_at_its_line(course, edit, key, expected):
    old, new = edit
    assert old in MUTANT
    text = ALTERNATIVE + MUTANT.replace(old, new)
    line, message = refused(course, text)
    assert expected in message
    assert text.splitlines()[line - 1].startswith(key), (line, key, message)


def test_an_alternative_fails_nothing_and_names_are_unique(course):
    text = MUTANT + ALTERNATIVE.replace('why = "vectorised"', 'why = "vectorised"\nfails = ["corr2d_test"]')
    line, message = refused(course, text)
    assert text.splitlines()[line - 1].startswith("fails") and "it fails nothing" in message
    text = MUTANT + MUTANT.replace("true convolution", "again")
    line, message = refused(course, text)
    assert line == len(MUTANT.splitlines()) + 3 and "a second case named 'flipped'" in message
    line, message = refused(course, MUTANT + '\n[[mutants]]\nname = "x"\n')
    assert line == len(MUTANT.splitlines()) + 2 and "unknown table 'mutants'" in message
    line, message = refused(course, MUTANT + "\n[[mutant]\n")
    assert line == len(MUTANT.splitlines()) + 2 and "not valid TOML" in message


def test_packs_keep_apart_what_would_collide():
    a = Case("mutant", "a", "", {"corr2d": "x"}, ("t1",))
    b = Case("mutant", "b", "", {"pool2d": "y"}, ("t2",))
    same_cell = Case("mutant", "c", "", {"corr2d": "z"}, ("t3",))
    same_test = Case("mutant", "d", "", {"conv": "w"}, ("t2",))
    assert [[c.name for c in g] for g in pack([a, b, same_cell, same_test])] == [["a", "b"], ["c", "d"]]


def test_a_lesson_without_fixtures_has_none(course):
    assert load_cases(course, "99-no-such-lesson") == []
