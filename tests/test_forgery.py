"""Students who want the points without the work: every way their code can reach what runs a test, tried.

Each cheat below hands in lesson 04 with a wrong ``corr2d`` (zeros of the right shape), plus code that, were the
test cells run in the student's kernel after it, takes the ``corr2d`` tests' points anyway: it edits the setup
cell, inserts a cell before it, or reaches the tests through IPython's machinery, the tracer, closures and gc,
the checks' functions and data, torch itself, a thread, or the check's own frames. The leaks print what they can
find of the hidden tests. Graded by the real ``handwritten grade`` in the sandbox, with the test cells in the grader
(the default), not one of them collects a point and no hidden test's code reaches a notebook or its feedback.

``HANDWRITTEN_FORGERY=kernel`` grades the same batch with the test cells in the kernel (``tests_run_in="kernel"``,
as the grader ran them before) and asserts the opposite: every cheat steals, every leak leaks. That is the proof
each case is a real attack; it is not part of ``make test``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import nbformat
import pytest

from handwritten.grading import Course
from handwritten.grading.cases import graded_tests, submission
from handwritten.grading.sandbox import bwrap_problem

from conftest import copy_course, without_demos

CONV = "04-convolutions-by-hand"
MODE = os.environ.get("HANDWRITTEN_FORGERY", "grader")
TIMEOUT = 20  # seconds per cell: what the hanging corr2d costs
CORR2D_TESTS = {"corr2d_test", "corr2d_hidden"}
WRONG = "def corr2d(X, K):\n    return torch.zeros(X.shape[0] - K.shape[0] + 1, X.shape[1] - K.shape[1] + 1)\n"
HIDDEN = "check.corr2d_hidden(corr2d, seed=1989)"  # lesson 04's hidden corr2d test, as the instructor wrote it
IMPORT = "from handwritten.checks import conv as check"
NOOP_MODULE = """import types
class _Anything(types.ModuleType):
    def __getattr__(self, name):
        return lambda *args, **kwargs: print("✓")
"""

# name -> (where the code goes, the code): "corr2d" appends it to the wrong corr2d's cell, "setup" replaces the
# setup cell's import of the checks, "before-setup" is a cell inserted before the setup cell
CHEATS = {
    "setup-cell-edited": ("setup", NOOP_MODULE + "check = _Anything('check')"),
    "cell-before-setup": ("before-setup", NOOP_MODULE + "import sys\nimport handwritten.checks\n"
                          "sys.modules['handwritten.checks.conv'] = handwritten.checks.conv = _Anything('conv')\n"),
    "input-transformer": ("corr2d", "get_ipython().input_transformers_cleanup.append(\n"
                          "    lambda lines: [] if any(line.startswith('check.') for line in lines) else lines)\n"),
    "ast-transformer": ("corr2d", "import ast\nclass _Drop(ast.NodeTransformer):\n"
                        "    def visit_Expr(self, node):\n"
                        "        if ast.unparse(node).startswith('check.'):\n"
                        "            return ast.copy_location(ast.Pass(), node)\n"
                        "        return node\n"
                        "get_ipython().ast_transformers.append(_Drop())\n"),
    "pre-run-cell-hook": ("corr2d", "import handwritten.checks.conv as _real\n"
                          "def _patch(info):\n"
                          "    _real.corr2d = _real.corr2d_hidden = lambda *a, **k: print('✓')\n"
                          "get_ipython().events.register('pre_run_cell', _patch)\n"),
    "displayhook-replaced": ("corr2d", "import handwritten.checks.conv as _real\n"
                             "_ip = get_ipython()\n"
                             "class _Hook(type(_ip.displayhook)):\n"
                             "    def set_parent(self, parent):  # the kernel calls it as each cell starts\n"
                             "        _real.corr2d = _real.corr2d_hidden = lambda *a, **k: print('✓')\n"
                             "        super().set_parent(parent)\n"
                             "_hook = _Hook.__new__(_Hook)\n"
                             "_hook.__dict__.update(_ip.displayhook.__dict__)\n"
                             "_ip.displayhook = _hook\n"),
    "custom-exception-handler": ("corr2d", "get_ipython().set_custom_exc((AssertionError,), "
                                 "lambda shell, etype, value, tb, tb_offset=None: None)\n"),
    "showtraceback-replaced": ("corr2d", "get_ipython().showtraceback = lambda *a, **k: None\n"),
    "run-cell-replaced": ("corr2d", "_ip = get_ipython()\n"
                          "_run_cell, _run_cell_async = _ip.run_cell, _ip.run_cell_async\n"
                          "def _blank(raw):\n"
                          "    return 'pass' if raw.lstrip('# \\n').startswith(('check.', 'Self', 'Hidden')) "
                          "or '\\ncheck.' in raw else raw\n"
                          "_ip.run_cell = lambda raw_cell, *a, **k: _run_cell(_blank(raw_cell), *a, **k)\n"
                          "async def _run_async(raw_cell, *a, **k):\n"
                          "    return await _run_cell_async(_blank(raw_cell), *a, **k)\n"
                          "_ip.run_cell_async = _run_async\n"),
    "execute-handler-replaced": ("corr2d", "import inspect\n_kernel = get_ipython().kernel\n"
                                 "_execute = _kernel.shell_handlers['execute_request']\n"
                                 "async def _handler(*args):\n"
                                 "    content = args[-1]['content']\n"
                                 "    if '\\ncheck.' in '\\n' + content.get('code', ''):\n"
                                 "        content['code'] = 'pass'\n"
                                 "    done = _execute(*args)\n"
                                 "    return await done if inspect.isawaitable(done) else done\n"
                                 "_kernel.shell_handlers['execute_request'] = _handler\n"),
    "settrace": ("corr2d", "import inspect, sys\nimport handwritten.checks._core as _c\n"
                 "_lines, _first = inspect.getsourcelines(_c.compare)\n"
                 "_target = _first + next(i for i, line in enumerate(_lines) if line.strip() == 'return')\n"
                 "def _jump(frame, event, arg):\n"
                 "    if event == 'line' and frame.f_lineno != _target:\n"
                 "        try:\n            frame.f_lineno = _target\n        except ValueError:\n            pass\n"
                 "    return _jump\n"
                 "sys.settrace(lambda frame, event, arg: _jump if frame.f_code is _c.compare.__code__ else None)\n"),
    "setprofile": ("corr2d", "import sys\nimport handwritten.checks.conv as _real\n"
                   "def _profile(frame, event, arg):\n"
                   "    _real.corr2d = _real.corr2d_hidden = lambda *a, **k: print('✓')\n"
                   "sys.setprofile(_profile)\n"),
    "gc-snapshot": ("corr2d", "import gc\nimport handwritten.checks.conv as _real\n"
                    "_noop = lambda *a, **k: print('✓')\n"
                    "for _o in gc.get_objects():\n"
                    "    if type(_o) is dict and _o.get('corr2d_hidden') is _real.corr2d_hidden:\n"
                    "        _o['corr2d'] = _o['corr2d_hidden'] = _noop\n"),
    "closure-snapshot": ("corr2d", "import handwritten.checks.conv as _real\n"
                         "_noop = lambda *a, **k: print('✓')\n"
                         "for _cell in __handwritten_guard__.__closure__ or ():\n"
                         "    _kept = _cell.cell_contents\n"
                         "    if type(_kept) is dict:\n"
                         "        for _owner, _values in list(_kept.values()) if all(type(v) is tuple for v in "
                         "_kept.values()) else []:\n"
                         "            if _owner is _real:\n"
                         "                _values['corr2d'] = _values['corr2d_hidden'] = _noop\n"
                         "_real.corr2d = _real.corr2d_hidden = _noop\n"),
    "code-swapped": ("corr2d", "import handwritten.checks.conv as _real\n"
                     "def _noop(*a, **k):\n    print('✓')\n"
                     "_real.corr2d.__code__ = _real.corr2d_hidden.__code__ = _noop.__code__\n"),
    "kwdefaults-changed": ("corr2d", "import handwritten.checks._core as _c\n"
                           "_c.compare.__kwdefaults__.update(rtol=1e30, atol=1e30)\n"),
    "module-class-replaced": ("corr2d", "import types\nimport handwritten.checks.conv as _real\n"
                              "class _Fake(types.ModuleType):\n"
                              "    def __getattribute__(self, name):\n"
                              "        if name in ('corr2d', 'corr2d_hidden'):\n"
                              "            return lambda *a, **k: print('✓')\n"
                              "        return types.ModuleType.__getattribute__(self, name)\n"
                              "_real.__class__ = _Fake\n"),
    "reference-data-changed": ("corr2d", "import handwritten.reference.convolution as _ref\n"
                               "_ref.corr2d = lambda X, K: torch.zeros(X.shape[0] - K.shape[0] + 1, "
                               "X.shape[1] - K.shape[1] + 1)\n"),
    "tensor-new-attribute": ("corr2d", "torch.Tensor.double = lambda self, *a, **k: "
                             "torch.zeros(tuple(self.shape), dtype=torch.float64)\n"),
    "torch-function-mode": ("corr2d", "from torch.overrides import TorchFunctionMode\n"
                            "class _Yes(TorchFunctionMode):\n"
                            "    def __torch_function__(self, func, types, args=(), kwargs=None):\n"
                            "        if func is torch.allclose:\n            return True\n"
                            "        return func(*args, **(kwargs or {}))\n"
                            "_Yes().__enter__()\n"),
    "background-thread": ("corr2d", "import threading, time\nimport handwritten.checks.conv as _real\n"
                          "def _keep():\n    while True:\n"
                          "        _real.corr2d = _real.corr2d_hidden = lambda *a, **k: print('✓')\n"
                          "        time.sleep(0.0002)\n"
                          "threading.Thread(target=_keep, daemon=True).start()\n"),
    "detects-grading": ("corr2d", "import os, sys\n_wrong = corr2d\n"
                        "def corr2d(X, K):\n"
                        "    frame = sys._getframe(1)\n"
                        "    while os.environ.get('NBGRADER_EXECUTION') and frame is not None:\n"
                        "        if isinstance(frame.f_locals.get('expected'), torch.Tensor):\n"
                        "            return frame.f_locals['expected'].clone()\n"
                        "        frame = frame.f_back\n"
                        "    return _wrong(X, K)\n"),
}

# cheats that did not steal with the tests in the kernel either: nbgrader records the error an IPython kernel
# reports even when nothing is shown, and the setup cell is locked (nbgrader puts the course's back)
NOT_IN_KERNEL_EITHER = {"custom-exception-handler", "showtraceback-replaced", "setup-cell-edited"}

# name -> code of a cell added at the end of the notebook: it prints whatever it found of the hidden tests
LEAKS = {
    "history-leak": "print(*get_ipython().history_manager.input_hist_raw, sep='\\n')\n",
    "hook-leak": None,  # a post_run_cell hook in corr2d's cell records each cell's source; the last cell prints it
    "notebook-file-leak": "import pathlib\nfor _p in pathlib.Path('.').rglob('*'):\n"
                          "    if _p.is_file() and _p.stat().st_size < 10**7:\n"
                          "        print(_p, _p.read_bytes().decode(errors='replace'))\n",
}
# name -> a corr2d that breaks its kernel, or the line to the grader, in the middle of its test
RIGHT = "    return torch.nn.functional.conv2d(X[None, None], K[None, None])[0, 0]\n"
BROKEN = {
    "dies-mid-test": "def corr2d(X, K):\n    import os\n    os._exit(1)\n",
    "hangs-mid-test": "def corr2d(X, K):\n    while True:\n        pass\n",
    "floods-mid-test": "def corr2d(X, K):\n    print('x' * 10**7)\n" + RIGHT,
    "huge-answer": "def corr2d(X, K):\n    return torch.zeros(10**8, dtype=torch.uint8)\n",
}
HOOK = "_seen = []\nget_ipython().events.register('post_run_cell', lambda result: _seen.append(result.info.raw_cell))\n"

if bwrap_problem() is not None:
    if os.environ.get("CI"):
        pytest.fail(f"bubblewrap is needed for the forgery suite ({bwrap_problem()})", pytrace=False)
    pytest.skip(f"bubblewrap unavailable ({bwrap_problem()}): `make sandbox` installs it", allow_module_level=True)


def up_to_corr2d(nb):
    """The notebook with every code cell after corr2d's hidden test emptied, but its test cells: what a cheat needs.
    (Those tests fail at once without the exercises they test, and a cheat that slows its kernel slows little else.)"""
    last = next(i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                == "corr2d_hidden")
    for cell in nb.cells[last + 1:]:
        if cell.cell_type == "code" and not cell.get("metadata", {}).get("nbgrader", {}).get("locked"):
            cell.source = ""
    return nb


def cheats(course: Course) -> dict[str, nbformat.NotebookNode]:
    nbs = {}
    for name, (where, code) in CHEATS.items():
        nb = up_to_corr2d(submission(course, CONV, {"corr2d": WRONG + (code if where == "corr2d" else "")}))
        setup = next(c for c in nb.cells if c.cell_type == "code" and IMPORT in c.source)
        if where == "setup":
            setup.source = setup.source.replace(IMPORT, code)
        elif where == "before-setup":
            nb.cells.insert(nb.cells.index(setup), nbformat.v4.new_code_cell(code))
        nbs[name] = nb
    for name, code in BROKEN.items():
        nbs[name] = without_demos(submission(course, CONV, {"corr2d": code}))
    # deeper than the integrity scan can walk (about 600 additions), yet one IPython refuses at once with a
    # RecursionError (at 3,000 it raised out of IPython's own checks, and the cell hung until its time limit)
    deep = "x = " + " + ".join(["1"] * 1_000) + "\n"
    nbs["deep-expression"] = without_demos(submission(course, CONV, {"corr2d_multi_in": deep}))
    for name, code in LEAKS.items():
        nb = up_to_corr2d(submission(course, CONV, {"corr2d": WRONG + (HOOK if code is None else "")}))
        nb.cells.append(nbformat.v4.new_code_cell(code or "print(*_seen, sep='\\n')\n"))
        nbs[name] = nb
    return nbs


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    base = tmp_path_factory.mktemp("forgery")
    course = Course(copy_course(base / "course"))
    if MODE == "kernel":
        with open(course.root / "autograders" / "nbgrader_config.py", "a") as config:
            config.write('\nc.SandboxedExecute.tests_run_in = "kernel"\n')
    source = base / "submissions"
    for student, nb in cheats(course).items():
        target = source / student / f"{CONV}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    out = base / "grades.csv"
    done = subprocess.run([sys.executable, "-m", "handwritten.cli", "--course", str(course.root), "grade", str(source),
                           "--out", str(out), "--workers", "2", "--timeout", str(TIMEOUT)],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(out, newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return {"rows": rows, "course": course, "tests": graded_tests(course, CONV)}


def leaked(batch, student: str) -> str:
    """What the leak's last cell printed (it is the student's cell: the feedback shows it)."""
    course = batch["course"]
    nb = nbformat.read(course.path("autograded") / student / CONV / f"{CONV}.ipynb", as_version=4)
    return "".join(str(o.get("text", "")) for o in nb.cells[-1].get("outputs", []))


@pytest.mark.parametrize("student", sorted(CHEATS))
def test_no_cheat_collects_a_point(batch, student):
    row = batch["rows"][student]
    assert row["status"] == "graded", row["notes"]
    stolen = sum(float(row[t]) for t in CORR2D_TESTS)
    if MODE == "kernel":
        print(f"{student}: stole {stolen:g} points")
        assert (stolen > 0) != (student in NOT_IN_KERNEL_EITHER), f"{student} stole {stolen:g} in the kernel"
    else:
        assert stolen == 0, f"{student} collected {stolen:g} points for a wrong corr2d"
        assert float(row["score"]) == 0, (student, row["score"])  # and nothing for the exercises it left out


@pytest.mark.parametrize("student", sorted(LEAKS))
def test_no_hidden_test_leaks(batch, student):
    found = HIDDEN in leaked(batch, student)
    assert found == (MODE == "kernel"), f"{student}: the hidden test's code {'did not leak' if not found else 'leaked'}"


def test_a_cell_too_deep_to_parse_is_graded_not_lost(batch):
    row, tests = batch["rows"]["deep-expression"], batch["tests"]
    assert row["status"] == "graded", row["notes"]
    assert "nested too deeply to be scanned" in row["integrity_flags"]
    assert {t for t in tests if float(row[t]) != tests[t]} == {"multi_in_test", "multi_in_hidden"}


def test_a_kernel_that_dies_hangs_or_floods_mid_test_is_recorded_and_the_grader_goes_on(batch):
    rows, tests = batch["rows"], batch["tests"]
    dies = rows["dies-mid-test"]
    assert dies["status"] == "error" and dies["notes"].startswith("the kernel died while running the notebook"), dies
    hangs = rows["hangs-mid-test"]
    assert hangs["status"] == "graded" and "time limit" in hangs["notes"], hangs
    for student in ("hangs-mid-test", "huge-answer"):  # they lose corr2d's tests and nothing else
        row = rows[student]
        assert row["status"] == "graded", row
        assert {t for t in tests if float(row[t]) != tests[t]} == CORR2D_TESTS, (student, row)
    assert float(rows["floods-mid-test"]["score"]) == sum(tests.values()), rows["floods-mid-test"]
