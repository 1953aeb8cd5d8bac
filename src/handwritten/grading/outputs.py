"""What a graded notebook's outputs may hold: each output is cut to a stated size before the graded notebook
and its feedback are written."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer

CUT = "... output cut here: too much of it ..."


class LimitOutputSize(NbGraderPreprocessor):
    """nbgrader's LimitOutput bounds the number of lines; this bounds characters, so one 100 MB line
    does not end up in the graded notebook and the feedback."""

    max_chars = Integer(100_000, help="characters kept of each output").tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and len(output.get("text", "")) > self.max_chars:
                output["text"] = output["text"][:self.max_chars] + "\n" + CUT + "\n"
            for mime, value in output.get("data", {}).items():
                if isinstance(value, str) and len(value) > self.max_chars:
                    output["data"][mime] = value[:self.max_chars] + "\n" + CUT
        return cell, resources
