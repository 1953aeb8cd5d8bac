"""Run each graded notebook's kernel in a sandbox.

With bubblewrap (``bwrap``), the kernel sees a read-only system and Python, a private ``/tmp`` and
``$HOME``, and of the course only its own working directory ``autograded/<student>/<lesson>/``: no
``solutions/``, no gradebook, no other student. It has no network (its own empty network namespace;
it talks to the grader over Unix sockets in a private folder) and no capabilities, and it cannot see
the grader's environment variables (a gradebook URL may hold a password). Under bubblewrap or not,
memory, CPU time, file size and the number of processes are bounded (``limits.py``).

Without bubblewrap, only the limits apply: the mode is then ``limits`` and grading says so loudly.
nbgrader loads ``SandboxedExecute`` in place of its ``Execute`` (``autograders/nbgrader_config.py``).

How each kernel ended (it died, and how; it ran out of memory; the notebook reached its wall-time
limit) is the executor's to know and the grader's to report. The executor writes it down, as
``autograded/<student>/<lesson>.ending.json`` (``ending_path``): beside the kernel's working folder, never
in it, so the sandboxed kernel cannot reach it; the grader reads it back with ``read_ending``, whether
nbgrader ran in the grader's process or in another one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from queue import Empty

from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbgrader import utils
from nbgrader.preprocessors import Execute
from traitlets import Bool, Enum, Integer, Unicode
from traitlets.config import LoggingConfigurable

from .. import wire
from ..files import write_atomic
from .cells import SETUP_ID
from .course import CourseError
from .limits import pids_cgroup_root
from .outputs import CUT, LimitOutputSize  # noqa: F401 (course configs written before outputs.py name it here)
from .trusted import KernelLost, KernelTimedOut, course_namespace, run_test_cell

GB = 1024**3
NO_BWRAP = ("bubblewrap (bwrap) is not available ({why}): student code runs with this account's "
            "rights and can read solutions/ and the gradebook. Install it (Debian: apt-get install "
            "bubblewrap) and grade again.")
PASSED_ENV = ("LANG", "LC_ALL", "TZ", "MPLBACKEND", "PYTHONHASHSEED")
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env() -> dict[str, str]:
    """One thread per graded kernel unless told otherwise: kernels already run side by side, one per
    worker, and NumPy's BLAS on every core of a busy machine ran a lesson's training 20x slower. It must be
    set before NumPy loads, which the kernel guard does before any cell."""
    wanted = os.environ.get("HANDWRITTEN_THREADS", "1")
    return {name: os.environ.get(name, wanted) for name in THREAD_ENV}


class Sandbox(LoggingConfigurable):
    """The limits of one graded kernel (``c.Sandbox.<name>`` in the course config)."""

    mode = Enum(["auto", "bwrap", "limits", "off"], "auto", help=(
        "auto: bubblewrap where it works, else resource limits only. off: no sandbox at all "
        "(benchmarks only).")).tag(config=True)
    memory = Integer(2 * GB, help="bytes of memory a kernel may allocate").tag(config=True)
    cpu_seconds = Integer(900, help="CPU seconds a kernel may use in all").tag(config=True)
    max_pids = Integer(256, help="processes and threads a kernel may run at once").tag(config=True)
    max_file_size = Integer(GB, help="bytes of any one file a kernel writes").tag(config=True)
    wall_seconds = Integer(1800, help=(
        "seconds a whole notebook may run: the cell running then is interrupted, later cells get a second "
        "each (a per-cell limit alone lets many slow cells add up)")).tag(config=True)
    data_dir = Unicode(help="a folder the kernel may read (full MNIST's cache)").tag(config=True)


@dataclass
class Ending:
    """How the kernel of one graded notebook ended, as its executor saw it."""

    exit_status: int | None = None  # when the kernel died by itself (None: it lived until shut down)
    stderr: str = ""                # the end of its stderr, when it died
    out_of_memory: bool = False     # it died after a cell's MemoryError
    past_wall: bool = False         # the notebook reached its wall-time limit: the cell then running was cut
    timeouts: int = 0               # cells the executor interrupted at their time limit

    def killed(self, limits: Sandbox) -> str:
        """Why the kernel was killed, when one of ``limits`` explains it, or ""."""
        status = self.exit_status if self.exit_status is not None else 1 if self.out_of_memory else None
        if status is None:
            return ""
        number = -status if status < 0 else status - 128 if status > 128 else 0  # bubblewrap: signal n is 128 + n
        if (self.out_of_memory or "MemoryError" in self.stderr
                or number in (signal.SIGABRT, signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS)):
            how = f"was killed ({signal.Signals(number).name})" if number else "died"
            return (f"the kernel {how} while running the notebook: it ran out of memory "
                    f"(the sandbox allows {limits.memory / GB:g} GB)" + ("" if number else " and could not go on"))
        if number == signal.SIGXCPU:
            return f"the kernel used up its CPU time ({limits.cpu_seconds} s) and was stopped"
        return ""


def ending_path(workdir: Path) -> Path:
    """Where the executor leaves the ending of the kernel that ran in ``workdir``: beside that folder (the only
    one of the course the sandboxed kernel sees), not in it."""
    workdir = Path(workdir).resolve()
    return workdir.with_name(workdir.name + ".ending.json")


def read_ending(workdir: Path) -> Ending:
    """How the last kernel that ran in ``workdir`` ended (an ending with nothing to say if no kernel
    ran there, or its record is unreadable)."""
    try:
        data = json.loads(ending_path(workdir).read_text(encoding="utf-8"))
        return Ending(**{f.name: data[f.name] for f in fields(Ending) if f.name in data})
    except (OSError, ValueError, TypeError):
        return Ending()


@lru_cache
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot sandbox here, or None when it can."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "not installed"
    try:
        done = subprocess.run([bwrap, "--unshare-all", "--ro-bind", "/", "/", "--cap-drop", "ALL", "true"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit status {done.returncode}")


def pids_problem() -> str | None:
    root = pids_cgroup_root()
    if root is None or not os.access(root, os.W_OK):
        return "no writable pids cgroup: the number of processes is not bounded"
    return None


def resolve(mode: str) -> tuple[str, str]:
    """The mode grading will really use, and a warning to show (empty when all is well)."""
    if mode == "off":
        return "off", "sandbox off: student code runs with this account's rights, unbounded"
    if mode == "limits":
        return "limits", ("resource limits only, no bubblewrap (--sandbox limits): student code runs with this "
                          "account's rights and can read solutions/ and the gradebook")
    problem = bwrap_problem()
    if problem is not None:
        if mode == "bwrap":
            raise CourseError(NO_BWRAP.format(why=problem))
        return "limits", NO_BWRAP.format(why=problem)
    return "bwrap", pids_problem() or ""


def python_paths() -> list[Path]:
    """What the kernel's Python needs to read: its installation, the virtual environment, and the
    folders its ``.pth`` files add (an editable install of this package)."""
    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).parent}
    for packages in site.getsitepackages():
        for pth in Path(packages).glob("*.pth"):
            for line in pth.read_text(errors="replace").splitlines():
                if line and not line.startswith(("#", "import")) and Path(line).is_dir():
                    paths.add(Path(line))
    return sorted({p.resolve() for p in paths})


def bwrap_args(workdir: Path, rundir: Path, data_dir: str = "") -> list[str]:
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--cap-drop", "ALL", "--clearenv",
            "--ro-bind", "/usr", "/usr", "--ro-bind-try", "/etc", "/etc",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for path in python_paths():
        args += ["--ro-bind", str(path), str(path)]
    if data_dir and Path(data_dir).is_dir():
        args += ["--ro-bind", data_dir, data_dir, "--setenv", "HANDWRITTEN_DATA_DIR", data_dir]
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ} | thread_env()
    env.update({k: v for k, v in os.environ.items() if k.startswith("HANDWRITTEN_") and k != "HANDWRITTEN_DATA_DIR"})
    # JPY_PARENT_PID=1: the grader's pid means nothing in the sandbox's pid namespace, and
    # --die-with-parent already ends the kernel with its grader.
    env.update(HOME="/tmp", JPY_PARENT_PID="1", PATH=f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
               NBGRADER_EXECUTION=os.environ.get("NBGRADER_EXECUTION", "autograde"), MPLCONFIGDIR=str(rundir / "mpl"))
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    return args + ["--bind", str(rundir), str(rundir), "--bind", str(workdir), str(workdir), "--chdir", str(workdir)]


def matplotlib_cache() -> Path:
    """Where matplotlib keeps this account's font list (matplotlib's own rule, without importing it)."""
    if os.environ.get("MPLCONFIGDIR"):
        return Path(os.environ["MPLCONFIGDIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "matplotlib"


def seed_matplotlib(folder: Path) -> None:
    """Give a sandboxed kernel's matplotlib this account's font list: else each kernel scans the system's
    fonts again into its empty cache (0.5 s or more per notebook; the fonts are at the same paths inside)."""
    folder.mkdir(exist_ok=True)
    for found in matplotlib_cache().glob("fontlist-*.json"):
        with contextlib.suppress(OSError):
            shutil.copyfile(found, folder / found.name)


def limits_args(sandbox: Sandbox, name: str) -> list[str]:
    # run as a script, not with -m: the kernel's stderr should not start with runpy's warning
    return [sys.executable, str(Path(__file__).with_name("limits.py")), "--memory", str(sandbox.memory),
            "--cpu", str(sandbox.cpu_seconds), "--pids", str(sandbox.max_pids),
            "--fsize", str(sandbox.max_file_size), "--cgroup", name, "--"]


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel inside the sandbox. With bubblewrap the kernel has no
    network, so it is reached over Unix sockets in a private folder shared with the sandbox."""

    _rundir: Path | None = None
    exited: tuple[int, str] | None = None  # (exit status, end of stderr) of a kernel that died by itself

    def _sandbox(self) -> tuple[Sandbox, str]:
        sandbox = Sandbox(parent=self)
        mode = sandbox.mode
        if mode == "auto":
            mode, warning = resolve(mode)
            if warning:
                self.log.warning(warning)
        return sandbox, mode

    async def _async_pre_start_kernel(self, **kw):
        sandbox, mode = self._sandbox()
        self._rundir = Path(tempfile.mkdtemp(prefix="handwritten-kernel-"))
        if mode == "bwrap":
            seed_matplotlib(self._rundir / "mpl")
            self.transport = "ipc"
            self.ip = str(self._rundir / "kernel")
            self.connection_file = str(self._rundir / "kernel.json")
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        sandbox, mode = self._sandbox()
        self.exited = None
        # the kernel's stderr, kept to say why it died (the grader's own stderr is the log)
        kw["stderr"] = open(self._rundir / "stderr", "wb")
        kw["env"] = {**(kw.get("env") or os.environ), **thread_env()}
        if mode != "off":
            name = f"kernel-{os.getpid()}-{id(self)}"
            prefix = limits_args(sandbox, name)
            if mode == "bwrap":
                workdir = Path(kw.get("cwd") or os.getcwd()).resolve()
                prefix += bwrap_args(workdir, self._rundir, sandbox.data_dir) + ["--"]
            kernel_cmd = prefix + list(kernel_cmd)
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            kw["stderr"].close()  # the kernel has its own copy

    def _note_exit(self) -> None:
        """Remember how a kernel that has already ended ended (a signal says which limit killed it)."""
        process = getattr(self.provisioner, "process", None)
        if process is not None and process.poll() is not None:
            try:
                with open(self._rundir / "stderr", "rb") as f:
                    f.seek(max(0, f.seek(0, 2) - 4000))
                    tail = f.read().decode(errors="replace")
            except (OSError, TypeError):
                tail = ""
            self.exited = (process.returncode, tail)

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        self._note_exit()  # before the shutdown kills it (if still alive) and forgets the process
        await super()._async_shutdown_kernel(now=now, restart=restart)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        self._note_exit()  # a kernel found dead is not shut down, only cleaned up
        await super()._async_cleanup_resources(restart=restart)
        if self._rundir is not None and not restart:
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._rundir = None

    # AsyncKernelManager binds these names to KernelManager's coroutines: rebind them to ours
    cleanup_resources = _async_cleanup_resources
    shutdown_kernel = _async_shutdown_kernel


GUARD = Path(__file__).with_name("kernel_guard.py")


class SandboxedExecute(Execute):
    """nbgrader's Execute, with every kernel started by ``SandboxedKernelManager``, the kernel guard
    (``kernel_guard.py``) undoing monkeypatches before every test cell, and the kernel's ending written
    down for the grader (``ending_path``)."""

    # nbgrader raises when a cell's output has not all arrived 4 s after its reply, and the whole notebook then
    # ends as "grading failed": a student's cell that prints 100 MB on a busy machine, or a kernel whose display
    # machinery the student broke, would cost every point earned before. Wait longer; then go on, output cut short.
    raise_on_iopub_timeout = Bool(False, help=Execute.raise_on_iopub_timeout.help).tag(config=True)
    iopub_timeout = Integer(30, help=Execute.iopub_timeout.help).tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)
        self._code_cells_run, self._memory_error = 0, False
        self.ending, self._manager, self._course_names, self._agent_loaded = Ending(), None, None, False

    def preprocess(self, nb, resources=None, km=None):
        self.ending, self._manager = Ending(), None
        workdir = Path((resources or {}).get("metadata", {}).get("path") or os.getcwd())
        # nbgrader leaves the notebook it is grading, hidden tests restored, in the kernel's working folder: the
        # kernel must not read them there (the graded notebook is written back when the run ends)
        with contextlib.suppress(OSError, TypeError):
            (workdir / f"{(resources or {}).get('unique_key')}.ipynb").unlink()
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if self._manager is not None and self._manager.exited is not None:
                self.ending.exit_status, self.ending.stderr = self._manager.exited
            with contextlib.suppress(OSError):  # without it, the grader only says less about this kernel
                write_atomic(ending_path(workdir), json.dumps(asdict(self.ending), indent=1) + "\n")

    def create_kernel_manager(self):
        self._manager = super().create_kernel_manager()  # nbclient forgets it once the kernel is cleaned up
        return self._manager

    async def async_start_new_kernel(self, **kwargs):
        self._code_cells_run, self._memory_error, self._course_names, self._agent_loaded = 0, False, None, False
        self._deadline = time.monotonic() + Sandbox(parent=self).wall_seconds
        await super().async_start_new_kernel(**kwargs)

    def _get_timeout(self, cell):
        """The per-cell limit, or less when the notebook's wall-time limit comes sooner."""
        timeout = super()._get_timeout(cell)
        left = getattr(self, "_deadline", float("inf")) - time.monotonic()
        if cell is not None and (timeout is None or left < timeout):
            return max(1, int(left))
        return timeout

    async def _async_handle_timeout(self, timeout, cell=None):
        self.ending.timeouts += 1  # what the row says of time limits comes from here, never from a cell's output
        if time.monotonic() >= getattr(self, "_deadline", float("inf")) - 1:
            self.ending.past_wall = True  # interrupted by the notebook's limit, not the cell's: say so
        return await super()._async_handle_timeout(timeout, cell)

    async def _quietly(self, code: str) -> None:
        msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        await self.async_wait_for_reply(msg_id)

    tests_run_in = Enum(["grader", "kernel"], "grader", help=(
        "grader: every test cell runs in the grader, reaching the student's kernel only by requests answered with "
        "data (trusted.py). kernel: test cells run in the student's kernel, after a guard restores the checks "
        "(student code can forge a score; for comparison only).")).tag(config=True)

    async def _ask(self, text: str, deadline: float, cell) -> str:
        """Send one request of a test cell to the kernel's agent; its answer (``wire`` text)."""
        msg_id = self.kc.execute("", silent=True, store_history=False, allow_stdin=False,
                                 user_expressions={"answer": f"__handwritten_agent__.serve({text!r})"})
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                await self._async_handle_timeout(int(self._get_timeout(cell) or 0), cell)  # interrupts the kernel
                raise KernelTimedOut()
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=min(self.shell_timeout_interval, left)))
            except Empty:
                await self._async_check_alive()
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                break
        answer = msg["content"].get("user_expressions", {}).get("answer", {})
        text = answer.get("data", {}).get("text/plain", "") if answer.get("status") == "ok" else ""
        if len(text) >= 2 and text[0] == text[-1] == "'":
            return text[1:-1]  # the repr of the agent's answer, base64 text: its quotes off
        why = f"{answer.get('ename')}: {answer.get('evalue')}" if answer.get("status") == "error" else "no answer"
        return wire.dumps(("raised", {"type": "RuntimeError", "bases": ["RuntimeError"],
                                      "message": f"the kernel did not answer the check ({why})"}))

    async def _run_trusted(self, cell, cell_index):
        """Run the test cell ``cell`` in this process (``trusted.run_test_cell``), never in the kernel."""
        if not self._agent_loaded:
            await self._quietly("import handwritten.checks._agent as __handwritten_agent__")
            self._agent_loaded = True
        cell.outputs, loop = [], asyncio.get_running_loop()
        deadline = time.monotonic() + (self._get_timeout(cell) or 10**9)

        def send(text: str) -> str:
            try:
                return asyncio.run_coroutine_threadsafe(self._ask(text, deadline, cell), loop).result()
            except (DeadKernelError, CellTimeoutError, KernelTimedOut) as error:
                raise KernelLost(error) from None

        cell.outputs = await asyncio.to_thread(run_test_cell, cell.source, self._course_names, send)
        self.code_cells_executed += 1
        cell.execution_count = self.code_cells_executed
        return cell

    def _tests_in_grader(self) -> bool:
        """Whether this notebook's test cells run here (the default) or, for comparison only, in the kernel."""
        if self._course_names is None:  # the setup cell is locked: nbgrader has put the course's own back
            setup = next((c.source for c in self.nb.cells if c.cell_type == "code"
                          and c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == SETUP_ID), "")
            self._course_names = course_namespace(setup)
        return self.tests_run_in == "grader"

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type == "code" and utils.is_grade(cell) and self._tests_in_grader():
            return await self._run_trusted(cell, cell_index)
        if cell.cell_type == "code" and cell.source.strip():
            if self._code_cells_run == 0 and not self._tests_in_grader():
                await self._quietly(GUARD.read_text())
            elif utils.is_grade(cell):
                await self._quietly("__handwritten_guard__()")
        try:
            result = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except DeadKernelError:
            self.ending.out_of_memory = self._memory_error  # it died after a MemoryError: say so in its row
            raise
        self._memory_error |= any(o.get("ename") == "MemoryError" for o in cell.get("outputs", []))
        if cell.cell_type == "code" and cell.source.strip():
            self._code_cells_run += 1
            if self._code_cells_run == 1 and not self._tests_in_grader():  # the setup cell: its modules, by name
                await self._quietly("__handwritten_guard__(capture_names=True)")
        return result

    # nbclient binds its synchronous wrappers to its own coroutines: rebind them to these
    start_new_kernel = run_sync(async_start_new_kernel)
    execute_cell = run_sync(async_execute_cell)
