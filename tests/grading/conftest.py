"""Fixtures of the grading tests (tests/conftest.py has those of every test)."""

from __future__ import annotations

import shutil

import pytest

from handwritten.grading import Course
from handwritten.grading.course import CONFIG

from conftest import ROOT


@pytest.fixture
def course(tmp_path) -> Course:
    """A course folder holding nothing but the course config."""
    (tmp_path / CONFIG).parent.mkdir(parents=True)
    shutil.copy(ROOT / CONFIG, tmp_path / CONFIG)
    return Course(tmp_path)
