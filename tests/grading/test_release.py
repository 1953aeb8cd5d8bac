"""Releasing (``handwritten.grading.release``): ``lessons/`` regenerated from ``solutions/``, and the
check grading makes before every run, which generates again only what would change: a lesson whose
sources, release or gradebook copy moved since it was last released."""

from __future__ import annotations

import nbformat
import pytest
from nbgrader.apps import NbGraderAPI

from handwritten.grading.release import release, up_to_date

CONV = "04-convolutions-by-hand"


@pytest.fixture
def generated(monkeypatch) -> list[str]:
    """The lessons nbgrader generates from now on, in order."""
    calls: list[str] = []
    original = NbGraderAPI.generate_assignment

    def generate(self, assignment, *args, **kwargs):
        calls.append(assignment)
        return original(self, assignment, *args, **kwargs)

    monkeypatch.setattr(NbGraderAPI, "generate_assignment", generate)
    return calls


@pytest.mark.filterwarnings("ignore:.*not in session")
def test_grading_releases_again_only_what_changed(course_copy, generated):
    assert release(course_copy, [CONV], if_changed=True) == []        # lessons/ as committed: nothing changes
    assert generated == [CONV] and up_to_date(course_copy, CONV)
    assert release(course_copy, [CONV], if_changed=True) == []
    assert generated == [CONV]                                        # same sources, same gradebook: skipped
    assert release(course_copy, [CONV]) == [] and generated == [CONV, CONV]  # `handwritten release` always does

    source = course_copy.notebook("source", CONV)
    nb = nbformat.read(source, as_version=4)
    nb.cells[0].source += "\n\nA sentence added to the instructor's notebook."
    nbformat.write(nb, source)
    assert not up_to_date(course_copy, CONV)
    assert release(course_copy, [CONV], if_changed=True) == [f"{CONV}/{CONV}.ipynb"]
    assert generated[-1] == CONV and len(generated) == 3

    (course_copy.root / "autograders" / "gradebook.db").unlink()      # a new gradebook: it needs the lesson
    assert not up_to_date(course_copy, CONV)
    release(course_copy, [CONV], if_changed=True)
    assert len(generated) == 4 and up_to_date(course_copy, CONV)

    release_copy = course_copy.notebook("release", CONV)
    release_copy.write_text(release_copy.read_text().replace("A sentence added", "A sentence edited"))
    assert release(course_copy, [CONV], if_changed=True) == [f"{CONV}/{CONV}.ipynb"]  # put back as generated
    assert len(generated) == 5
