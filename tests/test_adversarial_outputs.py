"""Outputs a student's code can make, graded in one batch beside two honest students, through the real
`handwritten grade` with two workers.

Each huge output (a 40 MB PNG, thousands of displays, a 40 MB JSON, a 40 MB error) comes after a correct corr2d:
the notebook is graded and keeps its points, its row says the output was cut, and its graded notebook and feedback
stay under a stated size. A student who prints the grader's own markers gets no such note. A student's scripts
(in HTML, JavaScript, SVG and markdown) never run when the feedback is opened in Chromium, and the feedback still
shows its scores and where points were lost. The honest students get exactly what a clean run gives them.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from handwritten.grading import Course
from handwritten.grading.cases import graded_tests, load_cases, solution_sources, submission
from handwritten.grading.outputs import CUT, LimitOutputSize

from conftest import copy_course, without_demos

CONV = "04-convolutions-by-hand"
BIG = 20_000_000  # characters of each huge output: four times the notebook's bound; 20 to 40 MB of graded notebook
# A graded notebook holds the lesson (about 50 KB) and at most LimitOutputSize's total of outputs; its feedback
# adds the page's CSS (about 150 KB) and HTML around each output.
NOTEBOOK_BOUND = LimitOutputSize.max_total.default_value + 1_000_000
FEEDBACK_BOUND = LimitOutputSize.max_total.default_value + 2_000_000
WRONG = "def corr2d(X, K):\n    return torch.zeros(X.shape[0] - K.shape[0] + 1, X.shape[1] - K.shape[1] + 1)\n"
HUGE = {
    "huge-png": f"display({{'image/png': 'iVBORw0KGgo' + 'A' * {BIG}}}, raw=True)\n",
    "many-displays": f"for _ in range({BIG // 50_000}):\n    display({{'text/plain': 'y' * 50_000}}, raw=True)\n",
    "huge-json": f"display({{'application/json': {{'rows': ['j' * 1_000] * {BIG // 1_000}}}}}, raw=True)\n",
    "huge-error": f"raise ValueError('e' * {BIG})\n",
}
MARKERS = f"print('... Output truncated ...')\nprint({CUT!r})\n"
SCRIPTS = """from IPython.display import HTML, Javascript, display
display(HTML("<script>document.title = 'pwned: script'</script>"))
display(HTML("<img src=x onerror=\\"document.title = 'pwned: onerror'\\">"))
display(HTML("<svg onload=\\"document.title = 'pwned: inline svg'\\"></svg>"))
display(HTML("<iframe srcdoc=\\"<script>parent.document.title = 'pwned: srcdoc'</script>\\"></iframe>"))
display(HTML("<a id=js-link href=\\"javascript:document.title = 'pwned: link'\\">a link</a>"))
display(HTML("<script>document.title = 'pwned: isolated'</script>"), metadata={'isolated': True})
display(Javascript("document.title = 'pwned: javascript'"))
display({'image/svg+xml': '<svg xmlns="http://www.w3.org/2000/svg" onload="document.title = \\'pwned: svg\\'">'
         '<script>document.title = "pwned: svg script"</script></svg>'}, raw=True)
display({'text/markdown': '<script>document.title = "pwned: markdown output"</script>'}, raw=True)
display({'application/vnd.jupyter.widget-view+json': {'model_id': 'x', 'version_major': 2, 'version_minor': 0}},
        raw=True)
"""
MARKDOWN = ("## A student's note\n\n<script>document.title = 'pwned: markdown'</script>\n\n"
            "<img src=x onerror=\"document.title = 'pwned: markdown onerror'\">\n")


def students(course: Course, mutant) -> dict[str, nbformat.NotebookNode]:
    good = solution_sources(course, CONV)["corr2d"] + "\n"

    def corr2d(code: str):
        return without_demos(submission(course, CONV, {"corr2d": code}))

    nbs = {"honest": corr2d(good), "honest-mutant": without_demos(submission(course, CONV, mutant.cells)),
           "markers": corr2d(good + MARKERS)}
    nbs |= {name: corr2d(good + code) for name, code in HUGE.items()}
    nbs["scripts"] = corr2d(WRONG + SCRIPTS)  # wrong, so its feedback opens with where points were lost
    nbs["scripts"].cells.append(nbformat.v4.new_markdown_cell(MARKDOWN))
    return nbs


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    base = tmp_path_factory.mktemp("outputs")
    course = Course(copy_course(base / "course"))
    mutant = next(c for c in load_cases(course, CONV) if c.kind == "mutant")
    source = base / "submissions"
    for student, nb in students(course, mutant).items():
        target = source / student / f"{CONV}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    out = base / "grades.csv"
    done = subprocess.run([sys.executable, "-m", "handwritten.cli", "--course", str(course.root), "grade", str(source),
                           "--out", str(out), "--workers", "2", "--timeout", "30"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(out, newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return {"rows": rows, "course": course, "mutant": mutant, "tests": graded_tests(course, CONV)}


def graded(batch, student: str) -> Path:
    return batch["course"].path("autograded") / student / CONV / f"{CONV}.ipynb"


def test_every_student_is_graded(batch):
    assert sorted(batch["rows"]) == sorted(["honest", "honest-mutant", "markers", "scripts", *HUGE])
    assert {row["status"] for row in batch["rows"].values()} == {"graded"}
    assert all(Path(row["feedback"]).is_file() for row in batch["rows"].values())


def test_honest_students_get_what_a_clean_run_gives(batch):
    rows, tests = batch["rows"], batch["tests"]
    assert (rows["honest"]["notes"], rows["honest"]["integrity_flags"]) == ("", "")
    assert {t: float(rows["honest"][t]) for t in tests} == tests
    mutant = rows["honest-mutant"]
    assert {t for t in tests if float(mutant[t]) != tests[t]} == set(batch["mutant"].fails)


@pytest.mark.parametrize("student", HUGE)
def test_a_huge_output_is_cut_and_the_row_says_so(batch, student):
    row = batch["rows"][student]
    assert float(row["score"]) == sum(batch["tests"].values()), row["notes"]  # its corr2d is right: every point
    assert row["notes"].startswith("output was cut"), row["notes"]
    notebook, feedback = graded(batch, student).stat().st_size, Path(row["feedback"]).stat().st_size
    print(f"{student}: graded notebook {notebook:,} bytes, feedback {feedback:,} bytes")
    assert notebook < NOTEBOOK_BOUND and feedback < FEEDBACK_BOUND, (notebook, feedback)


def test_an_image_over_the_bound_is_replaced_by_a_note_not_cut(batch):
    outputs = [o for c in nbformat.read(graded(batch, "huge-png"), 4).cells for o in c.get("outputs", [])]
    notes = [o.data["text/plain"] for o in outputs if "data" in o and "image/png" not in o.data]
    assert not [o for o in outputs if "image/png" in o.get("data", {})]
    assert any("image/png" in note and f"{BIG + 11:,}" in note for note in notes), notes


def test_a_student_printing_the_graders_markers_gets_no_note(batch):
    row = batch["rows"]["markers"]
    assert (row["notes"], float(row["score"])) == ("", sum(batch["tests"].values()))
    printed = "".join(o.get("text", "") for c in nbformat.read(graded(batch, "markers"), 4).cells
                      for o in c.get("outputs", []))
    assert "... Output truncated ..." in printed and CUT in printed  # printed, and kept as printed


class Active(HTMLParser):
    """What in a page can run: its scripts, its event handlers, its javascript: links, its frames."""

    def __init__(self):
        super().__init__()
        self.found, self._in_script = [], False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        if tag in ("iframe", "object", "embed", "frame"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name == "srcdoc" or (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.found.append(f"<script>{data.strip()[:80]}")

    def handle_endtag(self, tag):
        self._in_script = False


def active(html: str) -> list[str]:
    parser = Active()
    parser.feed(html)
    return parser.found


def test_the_feedback_carries_no_student_script_and_forbids_scripts(batch):
    html = Path(batch["rows"]["scripts"]["feedback"]).read_text()
    assert [found for found in active(html) if "pwned" in found or "<script>" not in found] == []
    head = html[:html.index("</head>")]
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', head)
    assert policy and "script-src 'none'" in policy.group(1), head[:2000]
    first_script = head.lower().find("<script")
    assert first_script == -1 or head.index("Content-Security-Policy") < first_script  # the policy comes first


PAGE_SPY = """window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective));"""


def open_quietly(page, url: str) -> dict:
    """Open ``url``; what ran: its title, the errors and console lines it raised, the CSP violations it reported."""
    seen = {"errors": [], "console": [], "dialogs": []}
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on("console", lambda message: seen["console"].append(message.text))
    page.on("dialog", lambda dialog: (seen["dialogs"].append(dialog.message), dialog.dismiss()))
    page.add_init_script(PAGE_SPY)
    page.goto(url, wait_until="load")
    page.wait_for_timeout(1000)  # an <img>'s onerror and an iframe's load come after the page's
    links = page.locator("#js-link")
    if links.count():
        links.first.click()
        page.wait_for_timeout(200)
    seen |= {"title": page.title(), "violations": page.evaluate("window.__violations")}
    return seen


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_the_feedback_runs_no_student_script_in_chromium(batch, tmp_path):
    from playwright.sync_api import expect
    from test_lab import chromium_page

    feedback = Path(batch["rows"]["scripts"]["feedback"])
    html = feedback.read_text()
    policy = html[:html.index("</head>")]  # the feedback's own <head>, with its policy, before every payload
    bare = tmp_path / "payloads.html"
    payloads = [o["data"]["text/html"] for c in nbformat.read(graded(batch, "scripts"), 4).cells
                for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    bare.write_text(policy + "</head><body>" + "".join(payloads) + MARKDOWN + "</body></html>")
    with chromium_page("the feedback's policy against scripts was") as page:
        seen = open_quietly(page, feedback.as_uri())
        print("the feedback in Chromium:", seen)
        assert (seen["title"], seen["errors"], seen["dialogs"]) == (CONV, [], []), seen
        expect(page.get_by_text("Where points were lost")).to_be_visible()
        expect(page.locator("h4", has_text="(Score:")).to_be_visible()
        expect(page.locator("table").filter(has_text="corr2d_test")).to_be_visible()
        assert page.evaluate("getComputedStyle(document.body).fontSize") == "14px"  # the template's inline CSS
    with chromium_page("the feedback's policy against scripts was") as page:
        seen = open_quietly(page, bare.as_uri())  # the student's HTML as it was, under the policy alone
        print("the payloads under the policy alone:", seen)
        assert (seen["title"], seen["errors"], seen["dialogs"]) == (CONV, [], []), seen
        assert "script-src-elem" in seen["violations"] or "script-src" in seen["violations"], seen
