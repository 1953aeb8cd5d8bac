"""A notebook's nbgrader cells, read the same way everywhere: from nbformat's nodes (where
``nbgrader.utils.is_grade`` and its siblings apply too) and from plain JSON, which a broken or hostile
submission may be."""

from __future__ import annotations

import json
from pathlib import Path


def nbgrader_meta(cell) -> dict:
    """A cell's nbgrader metadata: ``{}`` for a plain cell, a cell without metadata, or one whose grade id is not
    text (a submission's JSON can hold a list there; nbgrader cannot grade it, and it would not fit in a set)."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    found = meta.get("nbgrader") if isinstance(meta, dict) else None
    if not isinstance(found, dict) or not isinstance(found.get("grade_id", ""), str):
        return {}
    return found


SETUP_ID = "setup"  # the grade id of every lesson's first code cell, locked like a test cell


def grade_ids(cells) -> set[str]:
    """The nbgrader ids of these cells (a notebook's ``cells``) that tell its lesson: the setup cell's id is
    every lesson's."""
    cells = cells if isinstance(cells, list) else []
    return {nbgrader_meta(cell).get("grade_id") for cell in cells} - {None, SETUP_ID}


def read_cells(path: Path) -> list:
    """The cells of a notebook file, as plain JSON."""
    return json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
