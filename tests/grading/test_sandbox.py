"""The sandbox of a graded kernel (``handwritten.grading.sandbox``): what the kernel is started with
(checked without starting one), and how it ended, handed back to the grader as a record beside its
working folder: from an executor in another process as well as in this one, and out of the kernel's
reach (tests/test_adversarial.py grades hostile notebooks through all of it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config

from handwritten.grading.sandbox import (
    Ending,
    Sandbox,
    SandboxedExecute,
    bwrap_args,
    bwrap_problem,
    ending_path,
    read_ending,
    thread_env,
)

GB = 1024**3


def setenvs(args: list[str]) -> dict[str, str]:
    return {args[i + 1]: args[i + 2] for i, word in enumerate(args) if word == "--setenv"}


def test_graded_kernels_get_one_blas_thread_and_no_secrets(monkeypatch, tmp_path):
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "HANDWRITTEN_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NBGRADER_DB_URL", "postgresql://grader:secret@db/course")
    args = bwrap_args(tmp_path, tmp_path / "run")
    env = setenvs(args)
    assert "--clearenv" in args
    assert {env[n] for n in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")} == {"1"}
    assert "NBGRADER_DB_URL" not in env and not any("secret" in v for v in env.values())
    assert env["NBGRADER_EXECUTION"] == "autograde" and env["HOME"] == "/tmp"
    assert args[-2:] == ["--chdir", str(Path(tmp_path))]
    assert str(ending_path(tmp_path)) not in args  # the kernel's ending is out of its reach


def test_threads_follow_the_course_setting_or_an_explicit_one(monkeypatch):
    monkeypatch.setenv("HANDWRITTEN_THREADS", "2")
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert thread_env() == {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "3"}


@pytest.mark.parametrize("ending,reason", [
    (Ending(), ""),
    (Ending(past_wall=True), ""),                                    # a note on a graded notebook, not a death
    (Ending(exit_status=1), ""),                                     # os._exit(1): no limit explains it
    (Ending(exit_status=-signal.SIGKILL), "was killed (SIGKILL) while running the notebook: it ran out of memory "
                                          "(the sandbox allows 2 GB)"),
    (Ending(exit_status=128 + signal.SIGSEGV), "was killed (SIGSEGV)"),  # bubblewrap reports signal n as 128 + n
    (Ending(exit_status=1, stderr="...\nMemoryError\n"), "died while running the notebook: it ran out of memory "
                                                         "(the sandbox allows 2 GB) and could not go on"),
    (Ending(out_of_memory=True), "died while running the notebook: it ran out of memory"),
    (Ending(exit_status=-signal.SIGXCPU), "used up its CPU time (900 s)"),
])
def test_how_a_kernel_ended_says_which_limit_killed_it(ending, reason):
    found = ending.killed(Sandbox())
    assert (reason in found) if reason else found == ""


def test_an_unreadable_or_missing_record_says_nothing(tmp_path):
    work = tmp_path / "ada" / "lesson"
    work.mkdir(parents=True)
    assert read_ending(work) == Ending()
    ending_path(work).write_text("{ half a record")
    assert read_ending(work) == Ending()
    assert ending_path(work) == tmp_path / "ada" / "lesson.ending.json"


def notebook(work: Path, *cells: str) -> Path:
    work.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = work / "lesson.ipynb"
    nbformat.write(nb, path)
    return path


FORGE = """
import json, os
forged = json.dumps({{"exit_status": None, "out_of_memory": False, "past_wall": False, "stderr": "forged"}})
for target in ("../lesson.ending.json", {target!r}):
    try:
        open(target, "w").write(forged)
    except OSError:
        pass
"""
EXECUTE_ELSEWHERE = """
import sys
import nbformat
from traitlets.config import Config
from handwritten.grading.sandbox import SandboxedExecute

path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
executor = SandboxedExecute(config=Config({"Sandbox": {"mode": sys.argv[2]}}), timeout=120)
try:
    executor.preprocess(nb, {"metadata": {"path": str(__import__("pathlib").Path(path).parent)}})
except Exception as error:
    print(type(error).__name__)
"""


def test_the_ending_comes_back_from_another_process_and_the_kernel_cannot_forge_it(tmp_path):
    if bwrap_problem() is not None:
        if os.environ.get("CI"):
            pytest.fail(f"bubblewrap is needed ({bwrap_problem()})")
        pytest.skip(f"bubblewrap unavailable ({bwrap_problem()})")
    work = tmp_path / "autograded" / "ada" / "lesson"
    path = notebook(work, FORGE.format(target=str(ending_path(work))), "import os\nos._exit(3)")
    done = subprocess.run([sys.executable, "-c", EXECUTE_ELSEWHERE, str(path), "bwrap"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "DeadKernelError" in done.stdout, done.stdout + done.stderr
    ending = read_ending(work)
    assert ending.exit_status == 3 and ending.stderr != "forged", ending
    assert not ending.out_of_memory and not ending.past_wall
    assert json.loads(ending_path(work).read_text())["exit_status"] == 3


def test_the_wall_time_limit_is_reported_from_this_process_too(tmp_path):
    work = tmp_path / "autograded" / "ada" / "lesson"
    path = notebook(work, "import time", "time.sleep(60)", "print('after the limit')")
    executor = SandboxedExecute(config=Config({"Sandbox": {"mode": "limits", "wall_seconds": 8}}), timeout=120)
    nb, _ = executor.preprocess(nbformat.read(path, as_version=4), {"metadata": {"path": str(work)}})
    assert nb.cells[1].outputs[-1]["ename"] == "CellTimeoutError"  # cut at the notebook's limit, not the cell's
    ending = read_ending(work)
    assert ending.past_wall and ending.exit_status is None, ending
    # the next notebook run in the same folder says only what happened to it
    notebook(tmp_path / "other", "1 + 1")
    executor.preprocess(nbformat.read(tmp_path / "other" / "lesson.ipynb", as_version=4),
                        {"metadata": {"path": str(work)}})
    assert read_ending(work) == Ending()
