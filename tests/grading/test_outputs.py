"""What a graded notebook's outputs may hold (``handwritten.grading.outputs``) and what its feedback page may run
(``handwritten.grading.feedback``): every kind of output cut to its bound, the notebook's total, the grader's own
record of what was cut (never the notebook's text), and feedback HTML with no student script in it
(tests/test_adversarial_outputs.py grades such notebooks whole, and opens their feedback in Chromium)."""

from __future__ import annotations

import html
import json
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from nbgrader.utils import determine_grade
from traitlets.config import Config

from handwritten.grading.collect import Submission
from handwritten.grading.feedback import POLICY, FeedbackExporter, SanitizeOutputs
from handwritten.grading.grade import incidents
from handwritten.grading.outputs import CUT, LimitOutputLines, LimitOutputSize, cut_note, cuts_path, read_cuts
from handwritten.grading.sandbox import Ending

CONV = "04-convolutions-by-hand"
N = 1_000  # the bound of one output in these tests


def limit(outputs, workdir=None, **bounds):
    """The outputs of one test cell after LimitOutputSize, and the record it wrote (or kept in resources)."""
    cell = new_code_cell("pass", outputs=outputs)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": 2, "solution": False, "locked": True}
    resources = {"metadata": {"path": str(workdir)}} if workdir else {}
    preprocessor = LimitOutputSize(**{"max_chars": N, "max_image_chars": 5 * N, "max_total": 100 * N, **bounds})
    nb, resources = preprocessor.preprocess(new_notebook(cells=[cell]), resources)
    return nb.cells[0], resources["handwritten_cuts"]


def size(output) -> int:
    return len(json.dumps(output))


def test_every_kind_of_output_is_cut_to_its_bound():
    huge = 50 * N
    cell, record = limit([
        new_output("stream", name="stdout", text="x" * huge),
        new_output("display_data", data={"text/plain": "y" * huge, "text/html": "<b>" * huge}),
        new_output("display_data", data={"image/png": "A" * huge, "text/plain": "<Figure>"}),
        new_output("display_data", data={"application/json": {"rows": ["j" * 100] * (huge // 100)}}),
        new_output("display_data", data={"text/plain": "meta"}, metadata={"m": "z" * huge}),
        new_output("error", ename="ValueError", evalue="e" * huge,
                   traceback=["frame"] * 5 + ["ValueError: " + "e" * huge]),
    ])
    stream, text, image, data, meta, error = cell.outputs
    assert stream.text.startswith("x" * N) and stream.text.endswith(CUT + "\n") and len(stream.text) < N + 100
    assert all(len(value) < N + 100 for value in text.data.values())
    assert "image/png" not in image.data  # not cut into broken base64: a note says what was there
    assert image.data["text/plain"] == f"<Figure>\n[image/png of {huge:,} characters not kept: over the grader's " \
                                       f"limit for one output]"
    assert list(data.data) == ["text/plain"] and "application/json of" in data.data["text/plain"]
    assert meta.metadata == {}
    assert error.ename == "ValueError" and size(error) < N + 300 and error.traceback[-1].endswith(CUT + "\n")
    assert record == {"lines": 0, "cut": 6, "past_total": 0}
    assert determine_grade(cell) == (0, 2)  # the error still fails the test


def test_an_image_within_its_own_bound_is_kept_whole():
    png = "iVBORw0KGgo" + "A" * (3 * N)  # over the bound of text, under that of an image
    cell, record = limit([new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})])
    assert cell.outputs[0].data["image/png"] == png and record["cut"] == 0


def test_the_notebooks_total_bounds_many_small_outputs():
    displays = [new_output("display_data", data={"text/plain": "y" * 100}) for _ in range(500)]
    cell, record = limit(displays, max_total=10 * N)
    kept = [o for o in cell.outputs if o.output_type == "display_data"]
    assert sum(len(o.data["text/plain"]) for o in kept) <= 10 * N
    assert len(cell.outputs) == len(kept) + 1 and len(kept) < 100
    assert cell.outputs[-1].text == f"[{500 - len(kept)} more outputs not kept: this notebook's outputs reached the " \
                                    f"grader's limit of {10 * N:,} bytes]\n"
    assert record == {"lines": 0, "cut": 0, "past_total": 500 - len(kept)}


def test_the_total_counts_bytes_as_written_not_characters():
    text = "\"😀<" * 300  # 900 characters: 2,100 bytes of JSON, 4,200 of escaped HTML
    cell, record = limit([new_output("stream", name="stdout", text=text) for _ in range(100)], max_total=50 * N)
    kept = [o.text for o in cell.outputs if o.text == text]
    assert 0 < len(kept) <= 50 * N // 4_200  # not the 55 that 900 characters each would let in
    assert sum(len(html.escape(t).encode()) for t in kept) <= 50 * N
    assert record["past_total"] == 100 - len(kept)


@pytest.mark.parametrize("last,grade", [
    (new_output("stream", name="stderr", text="a warning\n" * 10_000), 0),
    (new_output("error", ename="AssertionError", evalue="wrong", traceback=[]), 0),
    (new_output("execute_result", data={"text/plain": "0.5"}, execution_count=3), 0.5),
    (new_output("stream", name="stdout", text="fine\n"), 2),
])
def test_what_grading_reads_is_kept_past_the_total(last, grade):
    filler = [new_output("stream", name="stdout", text="x" * N) for _ in range(20)]
    before = determine_grade(nbformat.from_dict({**limit([])[0], "outputs": filler + [last]}))
    cell, record = limit(filler + [last] * 3, max_total=5 * N)
    assert determine_grade(cell) == before == (grade, 2)
    assert record["past_total"] > 3 and sum(size(o) for o in cell.outputs) < 12 * N


def test_markers_a_student_prints_are_not_cuts(tmp_path):
    printed = f"... Output truncated ...\n{CUT}\n"
    cell, record = limit([new_output("stream", name="stdout", text=printed)], tmp_path / "s" / CONV)
    assert cell.outputs[0].text == printed
    assert read_cuts(tmp_path / "s" / CONV) == {} and not any(record.values())


def test_the_record_is_written_beside_the_working_folder_and_replaces_the_last_one(tmp_path):
    workdir = tmp_path / "autograded" / "s" / CONV
    workdir.mkdir(parents=True)
    limit([new_output("stream", name="stdout", text="x" * 2 * N)] * 2, workdir)
    assert cuts_path(workdir) == tmp_path / "autograded" / "s" / f"{CONV}.cuts.json"  # not in the kernel's folder
    assert read_cuts(workdir) == {"cut": 2}
    assert cut_note(read_cuts(workdir)) == ("output was cut to the grader's limits "
                                            "(2 outputs over the limit of one output)")
    limit([new_output("stream", name="stdout", text="short")], workdir)  # graded again: nothing cut this time
    assert read_cuts(workdir) == {}


def test_nbgraders_line_limit_is_counted():
    cells = [new_code_cell(outputs=[new_output("stream", name="stdout", text="line\n" * n)]) for n in (50, 5)]
    nb, resources = LimitOutputLines(max_lines=10).preprocess(new_notebook(cells=cells), {})
    assert "... Output truncated ..." in nb.cells[0].outputs[0].text
    assert resources["handwritten_cuts"]["lines"] == 1


def test_a_rows_note_on_cuts_comes_from_the_record_not_the_notebook(course):
    graded = course.notebook("autograded", CONV, "s")
    graded.parent.mkdir(parents=True)
    nb = new_notebook(cells=[new_code_cell(outputs=[new_output("stream", name="stdout", text=f"{CUT}\n")])])
    nbformat.write(nb, graded)
    student = Submission("s", CONV, graded)
    assert incidents(course, student, Ending()) == []
    cuts_path(graded.parent).write_text(json.dumps({"cut": 1, "past_total": 3}))
    assert incidents(course, student, Ending()) == [
        "output was cut to the grader's limits (1 output over the limit of one output; "
        "3 outputs past the limit of the whole notebook)"]


PAYLOADS = {
    "text/html": "<h3>kept</h3><script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
                 "<iframe srcdoc=\"<script>parent.document.title='pwned'</script>\"></iframe>"
                 "<svg onload=\"document.title='pwned'\"></svg><a href=\"javascript:document.title='pwned'\">a</a>",
    "application/javascript": "document.title='pwned'",
    "application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2, "version_minor": 0},
}
MARKDOWN = ("# A heading\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nif a < b:\n    pass\n```\n\n"
            "<script>document.title='pwned'</script>\n\n<img src=x onerror=\"document.title='pwned'\">\n")


def feedback_html(tmp_path) -> str:
    nb = new_notebook(cells=[new_markdown_cell(MARKDOWN), new_code_cell("show()", outputs=[
        new_output("display_data", data=PAYLOADS, metadata={"text/html": {"isolated": True}}),
        new_output("display_data", data={"image/svg+xml": "<svg onload=\"document.title='pwned'\"></svg>"}),
        new_output("display_data", data={"application/javascript": "document.title='pwned'"}),
        new_output("display_data", data={"text/markdown": "<script>document.title='pwned'</script>\n\n*kept*"}),
    ])])
    nb, resources = SanitizeOutputs().preprocess(nb, {})
    html, _ = FeedbackExporter(template_name="classic").from_notebook_node(nb, resources)
    return html


def test_the_feedback_holds_no_student_script_and_its_policy_forbids_scripts(tmp_path):
    html = feedback_html(tmp_path)
    body = html[html.index("<body"):]
    assert re.findall(r"<script|<iframe|\son\w+=|=[\"']?javascript:|srcdoc", body) == []
    assert "<h3>kept</h3>" in html and "<em>kept</em>" in html  # what is safe of a student's HTML still shows
    assert "<table>" in html and "A heading" in html and "&lt;" in html  # and their markdown, tables and code
    assert "application/javascript: not shown in feedback" in html
    assert "data:image/svg+xml;base64," in html and "<svg" not in html  # an SVG is only ever an image
    assert all(' alt="' in tag for tag in re.findall(r"<img[^>]*>", html)), "an image without alt text"
    head = html[:html.index("</head>")]
    assert head.index(f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">') < head.index("<style")
    assert "script-src 'none'" in POLICY and "default-src 'none'" in POLICY


def test_the_feedback_cannot_be_configured_back_into_running_scripts(tmp_path):
    exporter = FeedbackExporter(config=Config({"HTMLExporter": {"sanitize_html": False, "skip_svg_encoding": True}}))
    assert exporter.sanitize_html and not exporter.skip_svg_encoding


def test_the_feedback_templates_and_markdown_are_rendered_once_per_process(tmp_path, monkeypatch):
    """nbgrader makes a new exporter for every notebook's feedback: the second page reuses the compiled templates
    and the rendered markdown, and is the same page."""
    from jinja2 import Environment
    from nbconvert.exporters import HTMLExporter

    compiled, rendered = [], []
    real_compile, real_markdown = Environment.compile, HTMLExporter.markdown2html
    monkeypatch.setattr(Environment, "compile", lambda self, *a, **k: compiled.append(a) or real_compile(self, *a, **k))
    monkeypatch.setattr(HTMLExporter, "markdown2html",
                        lambda self, context, source: rendered.append(source) or real_markdown(self, context, source))
    first = feedback_html(tmp_path)
    after_first = len(compiled), len(rendered)
    second = feedback_html(tmp_path)
    assert (len(compiled), len(rendered)) == after_first  # nothing again (the first may have found them done)
    strip = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|cell-id=[0-9a-f]+")  # random ids
    assert strip.sub("", first) == strip.sub("", second) and "A heading" in second
