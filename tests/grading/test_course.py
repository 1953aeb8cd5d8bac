"""Where a course lives (``handwritten.grading.course``): found from any folder inside it, its config (a
Python file) loaded once and handed out as copies, its notebooks' paths built in one place."""

from __future__ import annotations

import pickle

import pytest

from handwritten.grading import Course, CourseError
from handwritten.grading.course import CONFIG


def counting_loads(course: Course):
    """Make the config count its own runs (in loads.txt of the course folder); return that file."""
    counter = course.root / "loads.txt"
    with open(course.root / CONFIG, "a") as f:
        f.write(f"\nwith open({str(counter)!r}, 'a') as counter:\n    counter.write('x')\n")
    return counter


def test_the_config_is_loaded_once_and_copies_are_the_callers(course):
    loads = counting_loads(course)
    for _ in range(5):
        course.path("source"), course.notebook("release", "x"), course.db_url  # noqa: B018
        course.api({"Execute": {"timeout": 7}})
    assert loads.read_text() == "x"
    mine = course.config()
    mine.Execute.timeout = 1
    assert course.config().Execute.timeout == 300 and course.api().config.Execute.timeout == 300
    assert course.api({"Execute": {"timeout": 7}}).config.Execute.timeout == 7
    assert loads.read_text() == "x"
    again = pickle.loads(pickle.dumps(course))  # as a worker process gets it: it loads the config itself
    assert again == course and again.path("release") == course.root / "lessons"
    assert loads.read_text() == "xx"


def test_found_from_a_folder_inside_it_or_refused_with_what_to_do(course, tmp_path_factory):
    inside = course.root / "lessons" / "deep"
    inside.mkdir(parents=True)
    assert Course.find(inside) == course
    assert Course.find(inside, db="sqlite:///x.db").db_url == "sqlite:///x.db?timeout=300"
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    with pytest.raises(CourseError, match="No course found at or above .* pass --course"):
        Course.find(elsewhere)
    with pytest.raises(CourseError, match="is not a course folder"):
        Course(elsewhere)


def test_gradebook_urls(course):
    assert Course(course.root, "postgresql://u:p@h/db").db_url == "postgresql+psycopg://u:p@h/db"
    assert Course(course.root, "sqlite:///g.db?timeout=5").db_url == "sqlite:///g.db?timeout=5"
    with pytest.raises(CourseError, match="Unsupported gradebook URL"):
        Course(course.root, "mysql://h/db").db_url  # noqa: B018


def test_a_lessons_notebook_in_each_folder(course):
    lesson = "04-convolutions-by-hand"
    assert course.notebook("source", lesson) == course.root / "solutions" / lesson / f"{lesson}.ipynb"
    assert course.notebook("release", lesson) == course.root / "lessons" / lesson / f"{lesson}.ipynb"
    assert course.notebook("autograded", lesson, "ada") == (
        course.root / "autograders" / "autograded" / "ada" / lesson / f"{lesson}.ipynb")
    (course.root / "solutions" / lesson).mkdir(parents=True)
    (course.root / "solutions" / "notes").mkdir()
    course.notebook("source", lesson).write_text("{}")
    assert course.assignments() == [lesson]


def test_nbgraders_alembic_is_found_beside_this_python_when_its_folder_is_not_on_path(monkeypatch):
    import shutil
    import sys
    from pathlib import Path

    from handwritten.grading.course import tools_on_path

    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # `.venv/bin/handwritten grade` run from a script
    assert shutil.which("alembic") is None
    tools_on_path()
    assert shutil.which("alembic") == str(Path(sys.executable).parent / "alembic")
