"""The sandbox of a graded kernel (``handwritten.grading.sandbox``): what the kernel is started with
(checked without starting one), and how it ended, handed back to the grader as a record beside its
working folder: from an executor in another process as well as in this one, and out of the kernel's
reach; what the kernel leaves in its folder, what it writes to its own stdout and stderr, how much memory and
space it gets however it asks, a kernel that stops answering (tests/test_adversarial.py and
tests/test_adversarial_kernel.py grade hostile notebooks through all of it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from nbclient.util import run_sync
from traitlets.config import Config

from handwritten.grading import sandbox, workdir
from handwritten.grading.sandbox import (
    Ending,
    Sandbox,
    SandboxedExecute,
    bwrap_args,
    bwrap_problem,
    ending_path,
    reach_problem,
    read_ending,
    thread_env,
)

GB, MB = 1024**3, 1024**2
WATCHED = {"memory_limit": 2 * GB, "memory_peak": GB // 4}
MEMORY_ERROR = "a cell ran out of memory (the sandbox's limit)"  # grade.py's note of a cell's MemoryError


def needs_bwrap():
    if bwrap_problem() is not None:
        if os.environ.get("CI"):
            pytest.fail(f"bubblewrap is needed ({bwrap_problem()})")
        pytest.skip(f"bubblewrap unavailable ({bwrap_problem()})")


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
    (Ending(exit_status=1, **WATCHED), ""),                          # os._exit(1): no limit explains it
    (Ending(exit_status=1, stderr="...\nMemoryError\n", **WATCHED), ""),  # what the kernel wrote is no evidence
    (Ending(exit_status=-signal.SIGKILL, out_of_memory=True, **WATCHED),
     "was killed (SIGKILL) while running the notebook: it ran out of memory (the sandbox allows 2 GB)"),
    (Ending(exit_status=128 + signal.SIGKILL, **WATCHED), "the kernel was killed (SIGKILL) while running the notebook"),
    (Ending(exit_status=-signal.SIGKILL, memory_limit=2 * GB),  # no cgroup: the kill is the likeliest sign
     "was killed (SIGKILL) while running the notebook: it ran out of memory (the sandbox allows 2 GB)"),
    (Ending(exit_status=128 + signal.SIGSEGV, **WATCHED), "was killed (SIGSEGV)"),  # bubblewrap: signal n is 128 + n
    (Ending(exit_status=-signal.SIGSEGV, memory_limit=2 * GB),
     "was killed (SIGSEGV) while running the notebook: perhaps out of memory (no memory cgroup watched it here)"),
    (Ending(out_of_memory=True, **WATCHED), "died while running the notebook: it ran out of memory"),
    (Ending(exit_status=1, out_of_memory=True, **WATCHED), "died while running the notebook: it ran out of memory "
                                                           "(the sandbox allows 2 GB) and could not go on"),
    (Ending(exit_status=-signal.SIGXCPU, **WATCHED), "used up its CPU time (900 s)"),
])
def test_how_a_kernel_ended_says_which_limit_killed_it(ending, reason):
    found = ending.killed(Sandbox())
    assert (reason in found) if reason else found == ""
    if not ending.out_of_memory and ending.memory_peak:
        assert "memory" not in found


def test_a_memory_error_stands_only_where_the_grader_saw_the_memory_full():
    found = ["a cell ran past the time limit and was interrupted", MEMORY_ERROR]
    raised = Ending(**WATCHED).confirm(found, MEMORY_ERROR)  # `raise MemoryError` by hand, at 0.25 GB of 2 GB
    assert raised[0] == found[0] and "out of memory" not in raised[1]
    assert raised[1] == ("a cell raised MemoryError below the sandbox's memory limit "
                         "(the kernel's memory peaked at 0.25 GB of the 2 GB allowed)")
    assert Ending(out_of_memory=True, **WATCHED).confirm(found, MEMORY_ERROR) == found
    unwatched = Ending(memory_limit=2 * GB).confirm(found, MEMORY_ERROR)[1]
    assert unwatched.startswith(MEMORY_ERROR) and "as the cell reported it" in unwatched
    assert Ending(out_of_memory=True, **WATCHED).confirm([], MEMORY_ERROR) == [
        "the kernel ran out of memory (the kernel's memory peaked at 0.25 GB of the 2 GB allowed)"]


def test_the_kernel_writes_only_its_own_bounded_tmpfs(tmp_path):
    work, run = tmp_path / "autograded" / "ada" / "lesson", Path("/tmp/handwritten-kernel-x")
    private = bwrap_args(work, run, disk=64 * MB, private=True, folders=("data",),
                         files=((7, str(work / "a.csv"), 0o644),))
    pairs = list(zip(private, private[1:]))
    assert ("--tmpfs", str(work)) in pairs and ("--tmpfs", "/tmp") in pairs and ("--tmpfs", str(run)) in pairs
    for target in (str(work), "/tmp"):
        assert private[private.index(target) - 3:private.index(target)] == ["--size", str(64 * MB), "--tmpfs"]
    assert ["--dir", str(work / "data")] == private[private.index(str(work / "data")) - 1:][:2]
    assert ["--perms", "0644", "--file", "7", str(work / "a.csv")] == private[private.index("7") - 3:][:5]
    assert "--bind" not in private and str(ending_path(work)) not in private
    assert private[-4:] == ["--remount-ro", "/", "--chdir", str(work)]  # the rest of its root is read-only
    shared = bwrap_args(work, run, disk=64 * MB)
    assert ("--bind", str(work)) in list(zip(shared, shared[1:])) and shared[-4:-2] == ["--remount-ro", "/"]


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
    needs_bwrap()
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
    assert replace(read_ending(work), memory_peak=0, memory_limit=0, data_peak=0) == Ending()


def execute(work: Path, *cells: str, timeout: int = 60, **sandbox) -> tuple[nbformat.NotebookNode, Ending]:
    """Run ``cells`` as a notebook in ``work`` under the sandbox; the executed notebook and its ending."""
    path = notebook(work, *cells)
    executor = SandboxedExecute(config=Config({"Sandbox": sandbox}), timeout=timeout)
    try:
        nb, _ = executor.preprocess(nbformat.read(path, as_version=4), {"metadata": {"path": str(work)},
                                                                         "unique_key": "lesson"})
    except Exception as error:  # noqa: BLE001 - the kernel died: nbgrader's run fails, the ending stays
        print(type(error).__name__)
        nb = executor.nb
    return nb, read_ending(work)


def out(cell) -> str:
    return "".join(str(o.get("text", "")) + str(o.get("evalue", "")) for o in cell.outputs)


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.lstat().st_mode, p.read_bytes() if p.is_file() and not p.is_symlink() else b"")
            for p in sorted(root.rglob("*"))}


LEAVES_LINKS = """
import os
os.symlink({secret!r}, 'solution.txt')
os.symlink(os.path.dirname({secret!r}), 'course')
os.symlink({secret!r}, 'lesson.ipynb')  # the graded notebook's own name
open('kept.txt', 'w').write('mine')
open('big.bin', 'wb').write(bytes(3 * 1024**2))
"""


@pytest.mark.parametrize("mode", ["bwrap", "bwrap-shared", "limits"])
def test_links_the_kernel_leaves_are_never_followed_and_its_files_come_back_bounded(tmp_path, mode, monkeypatch):
    if mode.startswith("bwrap"):
        needs_bwrap()
    if mode == "bwrap-shared":  # the grader cannot reach into the sandbox: it binds the real folder, then sweeps it
        monkeypatch.setattr(sandbox, "reach_problem", lambda: "no /proc here")
        mode = "bwrap"
    course = tmp_path / "course"
    course.mkdir()
    secret = course / "solution.ipynb"
    secret.write_text("the instructor's notebook")
    secret.chmod(0o600)
    before = tree(course)
    work = tmp_path / "autograded" / "ada" / "lesson"
    cells = [LEAVES_LINKS.format(secret=str(secret))]
    if mode == "limits":  # without bubblewrap the kernel can also leave hard links and pipes
        cells.append(f"os.link({str(secret)!r}, 'hard.txt')\nos.mkfifo('pipe')")
    nb, ending = execute(work, *cells, mode=mode, kept=2 * MB)
    left = {p.name: p for p in work.iterdir()}
    assert set(left) == {"kept.txt"} and left["kept.txt"].read_text() == "mine", left  # no link, nothing over 2 MB
    assert not any(p.is_symlink() for p in work.rglob("*"))
    assert tree(course) == before  # its bytes and its mode
    said = ", ".join(ending.not_kept)
    for name in ("solution.txt (a link)", "course (a link)", "lesson.ipynb (a link)",
                 "1 file(s) of 3.0 MB over the 2 MB"):
        assert name in said, said
    if mode == "limits":
        assert "hard.txt (a hard link)" in said and "pipe (a pipe)" in said


def test_the_kernels_stdout_and_stderr_go_to_the_log_bounded(tmp_path, capfd):
    mode = "bwrap" if bwrap_problem() is None else "limits"
    marker = "kernel-fd-marker-7f3a"
    nb, ending = execute(tmp_path / "autograded" / "ada" / "lesson",
                         f"import os, subprocess\nos.write(1, b'{marker}-1\\n')\nos.write(2, b'{marker}-2\\n')\n"
                         f"subprocess.run(['echo', '{marker}-sub'])\nos.write(1, b'x' * 1_000_000)\n"
                         f"os.write(1, b'\\n{marker}-last\\n')", mode=mode, kernel_log=64 * 1024)
    captured = capfd.readouterr()
    assert marker not in captured.out  # never this process's stdout (the terminal, for `handwritten grade`)
    log = captured.err
    # fds 1 and 2 reach the grader through two threads of ipykernel's: each keeps its own order, not their order
    written = sum(len(f"{marker}-{end}\n") for end in ("1", "2", "sub")) + 1_000_000 + len(f"\n{marker}-last\n")
    assert f"  | {marker}-last" in log and f"of the {written} bytes" in log, log[:300]
    assert len(log) < 64 * 1024 + 10_000, len(log)


def test_memory_however_allocated_is_bounded_and_the_ending_says_what_the_grader_saw(tmp_path, monkeypatch):
    if sandbox.memory_problem() is not None:
        pytest.skip(sandbox.memory_problem())
    mode = "bwrap" if bwrap_problem() is None else "limits"
    bomb = ("import mmap\nm = mmap.mmap(-1, 2 * 1024**3, flags=mmap.MAP_SHARED)\n"
            "for i in range(0, len(m), 4096):\n    m[i] = 1\n")
    nb, ending = execute(tmp_path / "bomb", "x = 1", bomb, "print('after')", mode=mode, memory=GB)
    assert ending.out_of_memory and ending.memory_peak >= ending.memory_limit == GB, ending
    assert "ran out of memory (the sandbox allows 1 GB)" in ending.killed(Sandbox(memory=GB))
    # the data limit's MemoryError, seen in the kernel's data at the cell's end (its resident memory stays lower),
    # found among the processes below the kernel's where no cgroup lists them
    monkeypatch.setattr(sandbox, "cgroup_procs", lambda name: [])
    nb, ending = execute(tmp_path / "data", "blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 1024**2))",
                         "import os\nos._exit(1)", mode=mode, memory=GB)
    assert ending.out_of_memory and ending.data_peak >= 0.9 * GB and ending.exit_status == 1, ending
    # a cell's own word is no evidence: a MemoryError raised by hand, "MemoryError" on stderr before exiting
    nb, ending = execute(tmp_path / "raised", "raise MemoryError('by hand')", "print('after')", mode=mode)
    assert out(nb.cells[1]) == "after\n" and not ending.out_of_memory and ending.memory_limit == 2 * GB
    assert "out of memory" not in " ".join(ending.confirm([MEMORY_ERROR], MEMORY_ERROR))
    nb, ending = execute(tmp_path / "claimed", "import os, sys\nsys.stderr.write('MemoryError\\n')\n"
                         "os.write(2, b'MemoryError\\n')\nraise MemoryError", "os._exit(1)", mode=mode)
    assert ending.exit_status == 1 and not ending.out_of_memory and ending.killed(Sandbox()) == "", ending


def test_the_sandboxs_tmp_is_bounded(tmp_path):
    needs_bwrap()
    filler = ("written = 0\ntry:\n    while written < 512 * 1024**2:\n"
              "        open(f'{folder}/f{written}', 'wb').write(bytes(16 * 1024**2))\n        written += 16 * 1024**2\n"
              "except OSError as error:\n    print(written // 1024**2, error.errno)\n")
    nb, ending = execute(tmp_path / "autograded" / "ada" / "lesson", filler.replace("{folder}", "/tmp"),
                         filler.replace("{folder}", "."), filler.replace("{folder}", "/dev/shm"),
                         "open('/x', 'w')", mode="bwrap", disk=64 * MB, kept=MB)
    for cell in nb.cells[:3]:  # no space left on the device (errno 28) by 64 MB
        written, errno = map(int, out(cell).split())
        assert 32 <= written <= 64 and errno == 28, out(cell)
    assert "Read-only file system" in out(nb.cells[3])
    assert sum(p.stat().st_size for p in (tmp_path / "autograded").rglob("*") if p.is_file()) <= MB + 10_000


def test_a_kernel_that_stops_answering_ends_the_notebook_at_once(tmp_path):
    start = time.monotonic()
    nb, ending = execute(tmp_path / "hook", "get_ipython().displayhook = lambda *a, **k: None", "1 + 1",
                         "print('never')", "2 + 2", timeout=3, mode="limits", answer_seconds=3)
    assert time.monotonic() - start < 25  # each later cell waited its whole limit and 30 s more: 106 s
    assert ending.stopped_answering and ending.not_run == 2 and ending.timeouts == 1, ending
    assert nb.cells[1].outputs[-1]["ename"] == "CellTimeoutError"
    assert [c.outputs[0]["ename"] for c in nb.cells[2:]] == ["KernelStoppedAnswering"] * 2
    # a cell that is merely slow is interrupted, answers, and the notebook goes on
    nb, ending = execute(tmp_path / "slow", "import time\ntime.sleep(60)", "print('after')", timeout=3, mode="limits")
    assert out(nb.cells[1]) == "after\n" and not ending.stopped_answering and ending.timeouts == 1


def test_the_grader_reaches_into_the_sandbox_where_it_can():
    needs_bwrap()
    if os.environ.get("CI") or os.geteuid() == 0:
        assert reach_problem() is None


def test_the_sweep_and_the_copy_back_follow_no_link_and_keep_little(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("the instructor's")
    before = tree(outside)

    def leave(folder: Path) -> None:  # what a kernel can leave
        folder.mkdir()
        (folder / "nbgrader.csv").write_text("nbgrader's own")
        (folder / "link").symlink_to(outside / "secret")
        (folder / "folder-link").symlink_to(outside)
        os.link(outside / "secret", folder / "hard")
        os.mkfifo(folder / "pipe")
        deep = folder.joinpath(*["d"] * 20)
        deep.mkdir(parents=True)
        (deep / "x").write_text("deep")
        (folder / "many").mkdir()
        for i in range(1005):
            (folder / "many" / f"{i:04}").write_text("x")

    leave(tmp_path / "swept")
    removed = ", ".join(workdir.sweep(tmp_path / "swept", {"nbgrader.csv"}, 1000))
    left = {str(p.relative_to(tmp_path / "swept")) for p in (tmp_path / "swept").rglob("*")}
    assert "nbgrader.csv" in left and not {"link", "folder-link", "hard", "pipe"} & left
    files = [p for p in left if (tmp_path / "swept" / p).is_file()]
    assert max(p.count("/") for p in left) < workdir.MAX_DEPTH and len(files) == workdir.MAX_FILES + 1  # nbgrader's
    for said in ("link (a link)", "hard (a hard link)", "pipe (a pipe)", "1 file(s) of 0.0 MB in folders nested",
                 "over the 0.000953674 MB or 1000 files kept"):
        assert said in removed, removed
    leave(tmp_path / "sandbox")
    (tmp_path / "back").mkdir()
    source = os.open(tmp_path / "sandbox", os.O_RDONLY)
    try:
        dropped = ", ".join(workdir.harvest(source, tmp_path / "back", 1000))
    finally:
        os.close(source)
    back = {str(p.relative_to(tmp_path / "back")) for p in (tmp_path / "back").rglob("*")}
    assert not any((tmp_path / "back" / p).is_symlink() for p in back) and "hard" not in back and "pipe" not in back
    assert len(back) == workdir.MAX_FILES and "over the 1000 files kept" in dropped and "link (a link)" in dropped
    assert tree(outside) == before


class ClockedExecute(SandboxedExecute):
    """Reads the kernel's CPU seconds from outside (``SandboxedKernelManager.cpu_seconds``) around every cell."""

    readings: list

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        before = self.km.cpu_seconds()
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            self.readings.append((before, self.km.cpu_seconds()))

    execute_cell = run_sync(async_execute_cell)


def test_the_grader_reads_the_kernels_cpu_time_from_outside(tmp_path):
    """What the challenge of lesson 05 is timed by: the CPU time of the kernel's processes, a child's included, as
    this process reads it from /proc; a kernel that sleeps, or that replaces its own clocks, does not change it."""
    mode = "bwrap" if bwrap_problem() is None else "limits"
    path = notebook(tmp_path / "work", "import time\ntime.process_time = time.perf_counter = lambda: 0.0",
                    "x = 0\nfor i in range(10**7):\n    x += i",
                    "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'sum(range(3 * 10**7))'])",
                    "time.sleep(2)")
    executor = ClockedExecute(config=Config({"Sandbox": {"mode": mode}}), timeout=120)
    executor.readings = []
    executor.preprocess(nbformat.read(path, as_version=4), {"metadata": {"path": str(tmp_path / "work")}})
    used = [after - before for before, after in executor.readings]
    assert all(before is not None and after is not None for before, after in executor.readings), executor.readings
    assert used[1] > 0.2 and used[2] > 0.2, used  # the loop, and the child it waited for
    assert used[3] < 0.15, used                  # two seconds asleep
