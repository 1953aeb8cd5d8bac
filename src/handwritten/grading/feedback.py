"""Feedback without the hidden tests: students see what failed and why, not the test code, and a
summary on top with one line for every lost point.

Feedback pages are opened by students and instructors in their browsers, and hold what a student's code and
markdown wrote: none of it may run. ``SanitizeOutputs`` leaves out scripts and widgets and cleans HTML outputs,
``FeedbackExporter`` cleans the HTML of markdown, and its page carries a Content-Security-Policy that forbids every
script (MathJax included: formulas show as TeX) and every request for anything outside the page.
"""

from __future__ import annotations

import re

import bleach
import nbformat
from bleach.css_sanitizer import CSSSanitizer
from jinja2 import BytecodeCache, pass_context
from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool

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


# Scripts, frames, forms and plugins are never allowed; style only inline (the page's own CSS is inline), images
# only from the page itself. A <meta> policy cannot say frame-ancestors, which a file opened locally does not need.
POLICY = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
          "base-uri 'none'; form-action 'none'")
META = f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
TAGS = frozenset({"a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details",
                  "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
                  "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub",
                  "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul"})
ATTRIBUTES = {"a": {"href", "name"}, "img": {"src", "alt", "width", "height"}, "ol": {"start"},
              "td": {"colspan", "rowspan", "align"}, "th": {"colspan", "rowspan", "align"}}
SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.I | re.S)
# what a feedback page shows of an output; anything else (scripts, widgets, unknown types) is left out
SHOWN = frozenset({"text/plain", "text/html", "text/markdown", "text/latex", "image/png", "image/jpeg",
                   "image/svg+xml"})


def _allowed(tag: str, name: str, value: str) -> bool:
    if name in ("class", "id", "title", "style"):
        return True
    return name in ATTRIBUTES.get(tag, ()) and not (tag == "a" and value.strip().lower().startswith("data:"))


def clean(html) -> str:
    """``html`` with only the tags and attributes of text, tables and images, links only to http(s) and mailto,
    images only from data: (what markdown and the usual HTML outputs use), and no script or style text."""
    html = html.decode() if isinstance(html, bytes) else str(html)
    return bleach.clean(SCRIPT_OR_STYLE.sub("", html), tags=TAGS, attributes=_allowed, strip=True,
                        protocols={"http", "https", "mailto", "data"}, css_sanitizer=CSSSanitizer())


class SanitizeOutputs(NbGraderPreprocessor):
    """Leave out of the feedback every output type a browser would run (JavaScript, widget views, and any type the
    page does not show), and clean HTML outputs (``clean``). An SVG is shown as an image, in which a browser runs
    no script."""

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data is None:
                continue
            left_out = sorted(set(data) - SHOWN)
            for mime in left_out:
                del data[mime]
            if "text/html" in data:
                data["text/html"] = clean(data["text/html"])
                output.get("metadata", {}).get("text/html", {}).pop("isolated", None)  # in a frame, it would not show
            if left_out and not data:
                data["text/plain"] = f"[{', '.join(left_out)}: not shown in feedback]"
        return cell, resources


class CompiledTemplates(BytecodeCache):
    """The feedback page's templates, compiled once per process: nbgrader makes a new exporter, with a new Jinja
    environment, for every notebook's feedback, which compiled them all again (about half a second a notebook).
    Jinja checks each kept template against its source's checksum before using it."""

    def __init__(self):
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket):
        if bucket.key in self._code:
            bucket.bytecode_from_string(self._code[bucket.key])

    def dump_bytecode(self, bucket):
        self._code[bucket.key] = bucket.bytecode_to_string()


COMPILED = CompiledTemplates()
NO_ALT = re.compile(r"<img\b(?![^>]*\salt=)", re.I)
RENDERED: dict[tuple, str] = {}  # markdown cells' HTML, by source and rendering settings
RENDERED_MAX = 5_000  # a lesson has about 100 markdown cells; students' own cells are many more, and rarely alike
RENDERED_SOURCE_MAX = 20_000  # characters: a lesson's longest cell is a few thousand; longer ones are not kept


class FeedbackExporter(HTMLExporter):
    """nbgrader's feedback page, with the HTML of markdown (cells, outputs, comments) cleaned (``clean``), SVG always
    shown as an image, and a policy that forbids scripts (``POLICY``) first in its head."""

    sanitize_html = Bool(True, help="always on: feedback shows what a student wrote").tag(config=False)
    skip_svg_encoding = Bool(False, help="always off: an SVG inlined in the page could run scripts").tag(config=False)

    @pass_context
    def markdown2html(self, context, source):
        if context.get("cell", {}).get("attachments") or len(source) > RENDERED_SOURCE_MAX:
            return clean(super().markdown2html(context, source))
        # the lesson's markdown is the same in every notebook of a class: rendered (a new Markdown parser, its
        # rules compiled each time) and cleaned once per process, not once per notebook
        path = context.get("resources", {}).get("metadata", {}).get("path", "")
        key = (source, path, self.embed_images, self.anchor_link_text, self.exclude_anchor_links,
               repr(sorted(self.lexer_options.items())))
        if key not in RENDERED:
            if len(RENDERED) >= RENDERED_MAX:
                RENDERED.clear()
            RENDERED[key] = clean(super().markdown2html(context, source))
        return RENDERED[key]

    def default_filters(self):
        yield from super().default_filters()
        yield "clean_html", clean

    def _create_environment(self):
        environment = super()._create_environment()
        environment.bytecode_cache = COMPILED
        return environment

    def from_notebook_node(self, nb, resources=None, **kw):
        # HTMLExporter.from_notebook_node without its last step, which parses the whole page again (300 KB, the CSS
        # inlined) with BeautifulSoup to give images alt text and the lab template's cells tab stops: a fifth of a
        # second a notebook. This page is the classic template's, with no such cells; the alt text is added here.
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name", None))
        self.register_filter("highlight_code", self.filters.get("highlight_code",
                                                                Highlight2HTML(pygments_lexer=lexer, parent=self)))
        resources = self._init_resources(resources)
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata,
                                                                       parent=self, resources=resources))
        output, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        output = NO_ALT.sub(r'<img alt="No description has been provided for this image"', output)
        head = re.search(r"<head(\s[^>]*)?>", output, re.I)
        at = head.end() if head else 0  # without a <head>, a leading <meta> still lands in the implied one
        return output[:at] + "\n" + META + "\n" + output[at:], resources
