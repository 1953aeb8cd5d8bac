"""Run a graded notebook's test cells in the grader, where the student's code cannot reach them.

The notebook's own cells run in the student's sandboxed kernel as always; its test cells (hidden ones too) never
do. ``SandboxedExecute`` hands each one here: its code runs in this process, with the names the course's setup
cell imports (``check``, ``torch``) bound here, and every other name (``corr2d``) a ``Remote`` reference to the
student's object in the kernel. The checks call student code only through ``_core.call``, which sends the call
to the kernel's agent and gets data back (``wire``: tensors and numbers, no pickle), then compare here. What the
cell printed and raised becomes its outputs, as if the kernel had run it: nbgrader scores those.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import os
import warnings
from collections.abc import Callable

import nbformat

from ..checks._remote import MissingName, Session

IMPORTABLE = ("handwritten", "torch", "numpy", "math", "timeit", "time", "random", "itertools", "functools",
              "collections")


class KernelTimedOut(Exception):
    """The student's kernel did not answer a test cell's request within the cell's time limit."""


class KernelLost(BaseException):  # noqa: N818 - not an error of the check: it must pass every `except Exception`
    """The kernel died or timed out under a request: it ends the test cell, whatever the check was doing."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


def setup_imports(setup_source: str) -> list[ast.stmt]:
    """The import statements of the lesson's setup cell (also those inside its ``try``), of the course's
    modules and libraries only: what binds ``check`` and the libraries a test cell names."""
    try:
        tree = ast.parse(setup_source)
    except (SyntaxError, ValueError, RecursionError):
        return []
    found, stack = [], list(tree.body)
    while stack:
        node = stack.pop(0)
        if isinstance(node, ast.Try):
            stack[:0] = node.body
        elif isinstance(node, ast.Import) and all(a.name.split(".")[0] in IMPORTABLE for a in node.names):
            found.append(node)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in IMPORTABLE:
            found.append(node)
    return found


def course_namespace(setup_source: str) -> dict:
    """The names a test cell may use from the course: what the setup cell's imports bind, imported here."""
    namespace = {"__builtins__": builtins, "__name__": "__test_cell__"}
    for node in setup_imports(setup_source):
        with contextlib.suppress(ImportError):
            exec(compile(ast.Module([node], []), "<setup cell>", "exec"), namespace)  # noqa: S102 (course imports)
    return namespace


class StudentNames(dict):
    """A test cell's local names: any name the course does not bind is the student's, in the kernel."""

    def __init__(self, course: dict, session: Session):
        super().__init__()
        self._course, self._session = course, session

    def __missing__(self, name: str):
        if name in self._course or hasattr(builtins, name):
            raise KeyError(name)  # then Python looks in the course's names and the builtins
        self[name] = self._session.name(name)
        return self[name]


def _error(ename: str, evalue: str) -> dict:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                  traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


def run_test_cell(source: str, course: dict, send: Callable[[str], str],
                  clock: Callable[[], float | None] | None = None) -> list:
    """Run one test cell's ``source`` here, reaching the student's kernel only through ``send``; its outputs.
    ``send`` raises ``KernelLost`` when the kernel dies or times out. ``clock()`` reads the CPU seconds the kernel's
    processes have used (None where it cannot)."""
    session = Session(send, clock)
    printed = io.StringIO()
    outputs, error = [], None
    previous = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "autograde"  # the checks' graded sizes, as in the kernel
    try:
        with session.running(), contextlib.redirect_stdout(printed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(source, "<test cell>", "exec"), dict(course), StudentNames(course, session))  # noqa: S102
    except KernelLost as lost:
        if not isinstance(lost.cause, KernelTimedOut):
            raise lost.cause from None  # the kernel died: nbgrader records the notebook's end, as for any cell
        error = _error("CellTimeoutError", "")
        error.traceback = ["\x1b[0;31mCellTimeoutError\x1b[0m: No reply from kernel before timeout"]  # nbgrader's
    except Exception as raised:  # noqa: BLE001 - a failed check, or anything else: the cell's error output
        error = _error("NameError" if isinstance(raised, MissingName) else type(raised).__name__, str(raised))
    finally:
        if previous is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = previous
    if printed.getvalue():
        outputs.append(nbformat.v4.new_output("stream", name="stdout", text=printed.getvalue()))
    if error is not None:
        outputs.append(error)
    return outputs
