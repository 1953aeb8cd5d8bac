"""Feedback without the hidden tests: students see what failed and why, not the test code."""

from __future__ import annotations

from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor

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
