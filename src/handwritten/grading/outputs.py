"""What a graded notebook's outputs may hold. Before the graded notebook and its feedback are written, every output
(a stream, each MIME type of a display or result, an error's message and traceback) is cut to a stated size, and all
of a notebook's outputs together to another (``LimitOutputSize``). An image, JSON or other encoded data over its bound
is replaced by a note, never cut into something broken.

What was cut is the grader's to report, not the notebook's: the preprocessors count their cuts, and the count is
written as ``autograded/<student>/<lesson>.cuts.json`` (``cuts_path``), beside the kernel's working folder like the
sandbox's ending. A row's "output was cut" note comes from that record (``read_cuts``, ``cut_note``), so a student
who prints the grader's markers gets no such note.
"""

from __future__ import annotations

import contextlib
import html
import json
from pathlib import Path

import nbformat
from nbgrader.preprocessors import LimitOutput, NbGraderPreprocessor
from traitlets import Integer

from ..files import write_atomic

CUT = "... output cut here: too much of it ..."
RECORD = "handwritten_cuts"  # the count of cuts in ``resources``, from one preprocessor to the next
KINDS = {"lines": "cut to nbgrader's line limit", "cut": "over the limit of one output",
         "past_total": "past the limit of the whole notebook"}
SMALL = 1_000  # characters kept of what grading reads in an output past the notebook's limit (a score, an error)


def cuts_path(workdir: Path) -> Path:
    """Where the grader's count of cut outputs for the notebook graded in ``workdir`` is written: beside that folder,
    which is the only one of the course the sandboxed kernel sees."""
    workdir = Path(workdir).resolve()
    return workdir.with_name(workdir.name + ".cuts.json")


def read_cuts(workdir: Path) -> dict[str, int]:
    """How many outputs of each kind (``KINDS``) were cut in the last notebook graded in ``workdir`` ({} if none, or
    if its record is missing or unreadable)."""
    try:
        data = json.loads(cuts_path(workdir).read_text(encoding="utf-8"))
        return {kind: int(data[kind]) for kind in KINDS if int(data.get(kind, 0)) > 0}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def cut_note(cuts: dict[str, int]) -> str:
    """A row's note on ``read_cuts``, or ""."""
    parts = [f"{count:,} output{'s' * (count > 1)} {KINDS[kind]}" for kind, count in cuts.items() if count]
    return f"output was cut to the grader's limits ({'; '.join(parts)})" if parts else ""


def _record(resources: dict) -> dict[str, int]:
    return resources.setdefault(RECORD, dict.fromkeys(KINDS, 0))


def _size(value) -> int:
    return len(value) if isinstance(value, str) else len(json.dumps(value, default=str))


def _bytes(value) -> int:
    """The bytes ``value`` takes in the graded notebook (JSON) or the feedback (escaped HTML), whichever is more:
    a character can take six (an emoji, a quote, a control character)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return max(len(json.dumps(text, ensure_ascii=False).encode("utf-8", "replace")),
               len(html.escape(text).encode("utf-8", "replace")))


def _cut(text, limit: int) -> tuple[str, bool]:
    text = "".join(text) if isinstance(text, list) else str(text)
    return (text, False) if len(text) <= limit else (text[:max(limit, 0)] + "\n" + CUT + "\n", True)


class LimitOutputLines(LimitOutput):
    """nbgrader's LimitOutput (``c.LimitOutput.max_lines`` and ``max_traceback`` still apply), counting the outputs it
    cuts for the grader's record."""

    def preprocess_cell(self, cell, resources, cell_index):
        before = {id(o): _shape(o) for o in cell.get("outputs", [])}
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        after = {id(o): _shape(o) for o in cell.get("outputs", [])}
        _record(resources)["lines"] += sum(after.get(key) != shape for key, shape in before.items())
        return cell, resources


def _shape(output) -> tuple:
    return output.get("text"), len(output.get("traceback", []))


class LimitOutputSize(NbGraderPreprocessor):
    """Bounds the characters of every output, and of all of a notebook's outputs together, so that no output a
    student's code makes (one 100 MB line, a 40 MB image, thousands of displays, a huge error) ends up in the graded
    notebook and the feedback. Past the notebook's bound, an output is left out; the outputs grading reads (an error,
    a stderr stream, a result: nbgrader's ``determine_grade``) are kept, cut short, so no score changes. Writes the
    count of what it cut (``cuts_path``)."""

    # 100,000 characters is some 1,500 lines of text, far more than a lesson's cell shows, and a notebook with a
    # few dozen outputs that size still opens quickly in a browser.
    max_chars = Integer(100_000, help="characters kept of each output's text (a stream, a text MIME type, an "
                                      "error's message and traceback together)").tag(config=True)
    # Images get their own bound: the lessons' feature-map figure, drawn from random maps (its worst case), is a PNG
    # of 127,500 characters of base64, over the bound of text. 1,000,000 characters is about 750 KB of image.
    max_image_chars = Integer(1_000_000, help="characters of an image (base64, or SVG text) kept; a larger image "
                                              "is replaced by a note").tag(config=True)
    # A lesson draws at most a dozen figures: under 2,000,000 bytes at that size. 5,000,000 leaves room for a
    # student's own figures and prints, and keeps a graded notebook and its feedback to a few MB. Counted in bytes,
    # not characters, so that emoji or quotes (six bytes each, escaped) cannot multiply it.
    max_total = Integer(5_000_000, help="bytes of all of a notebook's outputs together, as the graded notebook or "
                                        "the feedback writes them; later outputs are left out").tag(config=True)

    def preprocess(self, nb, resources):
        self._left, self._full = self.max_total, False
        record = _record(resources)
        nb, resources = super().preprocess(nb, resources)
        path = resources.get("metadata", {}).get("path")
        if path:  # the grader's only source for a row's note: without it, the row says nothing of cuts
            with contextlib.suppress(OSError):
                write_atomic(cuts_path(Path(path)), json.dumps(record) + "\n")
        return nb, resources

    def preprocess_cell(self, cell, resources, cell_index):
        if "outputs" not in cell:
            return cell, resources
        record, kept, left_out, graded = _record(resources), [], 0, set()
        for output in cell.outputs:
            record["cut"] += self._cut_output(output)
            size = sum(_bytes(value) for key, value in output.items() if key != "output_type")
            if not self._full and size <= self._left:
                self._left -= size
                kept.append(output)
                continue
            self._full = True
            record["past_total"] += 1
            kind = output.get("output_type"), output.get("name", "")
            if kind in (("error", ""), ("stream", "stderr"), ("execute_result", "")) and kind not in graded:
                graded.add(kind)  # the first of each is all nbgrader's determine_grade reads
                kept.append(_stub(output))
            else:
                left_out += 1
        if left_out:
            kept.append(nbformat.v4.new_output("stream", name="stdout", text=(
                f"[{left_out:,} more output{'s' * (left_out > 1)} not kept: this notebook's outputs reached the "
                f"grader's limit of {self.max_total:,} bytes]\n")))
        cell.outputs = kept
        return cell, resources

    def _cut_output(self, output) -> bool:
        """Cut ``output`` to ``max_chars`` (``max_image_chars`` for an image); whether anything was cut."""
        cut = False
        if output.get("output_type") == "stream":
            output["text"], cut = _cut(output.get("text", ""), self.max_chars)
        elif output.get("output_type") == "error":
            left = self.max_chars
            for key in ("ename", "evalue"):
                output[key], was = _cut(output.get(key, ""), left)
                cut, left = cut or was, left - len(output[key])
            lines = []
            for line in output.get("traceback", []):
                line, was = _cut(line, left)
                lines.append(line)
                left -= len(line)
                if was:
                    cut = True
                    break
            output["traceback"] = lines
        data = output.get("data", {})
        for mime in list(data):
            value = data[mime]  # text/plain may hold a note by now
            size = _size(value)
            if mime.startswith("text/"):
                data[mime], was = _cut(value, self.max_chars)
                cut = cut or was
            elif size > (self.max_image_chars if mime.startswith("image/") else self.max_chars):
                del data[mime]  # cut, an image or JSON would be broken: a note says what was there
                note = f"[{mime} of {size:,} characters not kept: over the grader's limit for one output]"
                data["text/plain"] = (data.get("text/plain", "") + "\n" + note).lstrip("\n")
                cut = True
        if _size(output.get("metadata", {})) > self.max_chars:
            output["metadata"], cut = {}, True
        return cut


def _stub(output):
    """What grading reads of ``output`` (past the notebook's limit), cut to ``SMALL``."""
    kind = output["output_type"]
    if kind == "error":
        return nbformat.v4.new_output("error", ename=_cut(output.get("ename", ""), SMALL)[0],
                                      evalue=_cut(output.get("evalue", ""), SMALL)[0], traceback=[])
    if kind == "stream":
        return nbformat.v4.new_output("stream", name="stderr", text=_cut(output.get("text", ""), SMALL)[0])
    text = _cut(output.get("data", {}).get("text/plain", ""), SMALL)[0]
    return nbformat.v4.new_output("execute_result", data={"text/plain": text},
                                  execution_count=output.get("execution_count"))
