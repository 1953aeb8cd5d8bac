"""Feedback without the hidden tests: students see what failed and why, not the test code, and a
summary on top with one line for every lost point."""

from __future__ import annotations

import nbformat
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor

from .cells import nbgrader_meta

BEGIN, END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"


class HideHiddenTests(NbGraderPreprocessor):
    """Cut the hidden-test region out of every test cell, and cut tracebacks in those cells
    down to their last line (a traceback quotes the hidden code around a failure).

    Unlike nbgrader's ClearHiddenTests, this never raises: a student who typed the marker
    into a cell of their own must not break everyone's feedback.
    """

    def preprocess_cell(self, cell, resources, index):
        if not (utils.is_grade(cell) and BEGIN in cell.source):
            return cell, resources
        kept, hidden = [], False
        for line in cell.source.split("\n"):
            if BEGIN in line:
                hidden = True
            elif END in line:
                hidden = False
            elif not hidden:
                kept.append(line)
        cell.source = "\n".join(kept).rstrip() + "\n# (hidden tests: not shown)"
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources


def lost_reason(cell) -> str:
    """One line on why a test cell lost its points: the last line of its error, never its code."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            message = str(output.get("evalue", "")).strip().splitlines()
            return f"{output.get('ename', 'Error')}: {message[0] if message else ''}".strip().rstrip(":")
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            return "it wrote to stderr (a warning or progress bar), which fails a test cell"
    return "the checks did not pass (see this test's output)"


class LostPoints(NbGraderPreprocessor):
    """Open the feedback with one line for every test that lost points, saying why (runs after
    nbgrader's GetGrades, which puts each cell's score in its metadata)."""

    def preprocess(self, nb, resources):
        lines = []
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            if cell.cell_type == "code" and utils.is_grade(cell) and meta.get("score") is not None:
                lost = float(meta.get("points") or 0) - float(meta.get("score") or 0)
                if lost > 0:
                    reason = lost_reason(cell).replace("|", "\\|").replace("\n", " ")
                    lines.append(f"| `{meta['grade_id']}` | {lost:g} | {reason} |")
        summary = ("**Every autograded point earned.**" if not lines else
                   "**Where points were lost** (each test's full output is below):\n\n"
                   "| test | points lost | why |\n|---|---|---|\n" + "\n".join(lines))
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(summary))
        return nb, resources
