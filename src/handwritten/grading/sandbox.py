"""Run each graded notebook's kernel in a sandbox.

With bubblewrap (``bwrap``), the kernel sees a read-only system and Python, a private ``/tmp`` and
``$HOME``, and of the course only its own working directory ``autograded/<student>/<lesson>/``: no
``solutions/``, no gradebook, no other student. It has no network (its own empty network namespace;
it talks to the grader over Unix sockets in a tmpfs of their own) and no capabilities, and it cannot see
the grader's environment variables (a gradebook URL may hold a password). Under bubblewrap or not,
memory (however allocated, where a memory cgroup can be made), CPU time, file size and the number of processes
are bounded (``limits.py``).

Under bubblewrap, what the kernel writes never reaches the grader's disk while it runs: its working folder and its
``/tmp`` (``Sandbox.disk`` each) and its ``/dev/shm`` (64 MB) are private RAM-backed tmpfs, their pages counted in
its memory, and the rest of its root is read-only. Its working folder starts as a copy of the real one's regular
files, and only the regular files it leaves there come back, bounded (``Sandbox.kept``), never through a link
(``workdir.py``). Without bubblewrap (or where the grader cannot reach into the sandbox's folders), the kernel writes
into the real folder, and the links, pipes and devices it leaves there, and what it wrote past the bound, are
removed once it has ended: before nbgrader writes the graded notebook there and copies the folder into the feedback.
The kernel's own stdout and stderr (file descriptors 1 and 2, and a subprocess's) go to the grading log, their end
only (``Sandbox.kernel_log``), never the terminal.

Without bubblewrap, only the limits apply: the mode is then ``limits`` and grading says so loudly.
nbgrader loads ``SandboxedExecute`` in place of its ``Execute`` (``autograders/nbgrader_config.py``).

How each kernel ended (it died, and how; it ran out of memory, as its memory cgroup or its data's size after a cell
showed, never as a cell says; the notebook reached its wall-time limit; it stopped answering) is the executor's
to know and the grader's to report. The executor writes it down, as
``autograded/<student>/<lesson>.ending.json`` (``ending_path``): beside the kernel's working folder, never
in it, so the sandboxed kernel cannot reach it; the grader reads it back with ``read_ending``, whether
nbgrader ran in the grader's process or in another one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from queue import Empty

import nbformat
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
from .limits import cgroup_procs, make_cgroup, memory_seen, pids_cgroup_root, remove_cgroups
from .outputs import CUT, LimitOutputSize  # noqa: F401 (course configs written before outputs.py name it here)
from .trusted import KernelLost, KernelTimedOut, course_namespace, run_test_cell
from .workdir import harvest, open_beneath, seeds, snapshot, sweep

GB = 1024**3
MB = 1024**2
SOCKETS = MB     # the tmpfs holding a sandboxed kernel's sockets (they take no space)
SHM = 64 * MB    # the sandbox's /dev/shm
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # /proc's unit of CPU time, per second
NEAR = 0.9       # a kernel whose data came this close to RLIMIT_DATA ran out of memory (its next request was refused)
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
    memory = Integer(2 * GB, help=(
        "bytes of memory a kernel may use: its data (RLIMIT_DATA: a MemoryError past it) and, where a memory cgroup "
        "can be made, everything it holds in RAM however allocated (shared maps, files in its tmpfs: it is killed "
        "past it)")).tag(config=True)
    disk = Integer(GB, help=(
        "bytes of files a kernel may write in its working folder, and again in its /tmp: under bubblewrap each is a "
        "private tmpfs this size, in RAM (counted in its memory), and never the grader's disk")).tag(config=True)
    kept = Integer(32 * MB, help=(
        "bytes of the files a kernel leaves in its working folder that are kept after grading (regular files only, "
        "1000 at most; feedback copies them): the rest, and every link, pipe or device, is not")).tag(config=True)
    kernel_log = Integer(64 * 1024, help=(
        "bytes of what a kernel writes to its own stdout and stderr (file descriptors 1 and 2, a subprocess's "
        "output) copied to the grading log: the last ones; never the terminal")).tag(config=True)
    answer_seconds = Integer(10, help=(
        "seconds a kernel has to answer once a cell's time limit has interrupted it: one that does not has stopped "
        "answering, and the notebook's later cells are not run")).tag(config=True)
    cpu_seconds = Integer(900, help="CPU seconds a kernel may use in all").tag(config=True)
    max_pids = Integer(256, help="processes and threads a kernel may run at once").tag(config=True)
    max_file_size = Integer(GB, help="bytes of any one file a kernel writes").tag(config=True)
    wall_seconds = Integer(1800, help=(
        "seconds a whole notebook may run: the cell running then is interrupted, later cells get a second "
        "each (a per-cell limit alone lets many slow cells add up)")).tag(config=True)
    data_dir = Unicode(help="a folder the kernel may read (full MNIST's cache)").tag(config=True)


CRASHES = (signal.SIGABRT, signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return ""


@dataclass
class Ending:
    """How the kernel of one graded notebook ended, as its executor and the grader saw it (never as it said)."""

    exit_status: int | None = None  # when the kernel died by itself (None: it lived until shut down)
    stderr: str = ""                # the end of what it wrote to its own stdout and stderr, when it died
    out_of_memory: bool = False     # observed: the cgroup killed a process of it, or its memory came to the bound
    memory_limit: int = 0           # the sandbox's bound on its memory (bytes; 0: not sandboxed)
    memory_peak: int = 0            # the most memory its processes held at once, as its cgroup counted (0: no cgroup)
    data_peak: int = 0              # the most data (what RLIMIT_DATA counts) a process of it held at a cell's end
    past_wall: bool = False         # the notebook reached its wall-time limit: the cell then running was cut
    timeouts: int = 0               # cells the executor interrupted at their time limit
    stopped_answering: bool = False  # after a cell's time limit it answered nothing: later cells were not run
    not_run: int = 0                # code cells not run because it stopped answering
    not_kept: list[str] = field(default_factory=list)  # what it left in its folder that the grader did not keep

    def killed(self, limits: Sandbox) -> str:
        """Why the kernel died, when the grader saw what killed it (a memory or CPU limit, a signal), or ""."""
        status = self.exit_status if self.exit_status is not None else 1 if self.out_of_memory else None
        if status is None:
            return ""
        number = -status if status < 0 else status - 128 if status > 128 else 0  # bubblewrap: signal n is 128 + n
        how = f"was killed ({signal_name(number)})" if signal_name(number) else "died"
        watched = bool(self.memory_peak)  # a memory cgroup counted it: a SIGKILL it did not send is not memory's
        if self.out_of_memory or (number == signal.SIGKILL and not watched):
            return (f"the kernel {how} while running the notebook: it ran out of memory "
                    f"(the sandbox allows {limits.memory / GB:g} GB)" + ("" if number else " and could not go on"))
        if number == signal.SIGXCPU:
            return f"the kernel used up its CPU time ({limits.cpu_seconds} s) and was stopped"
        if number in CRASHES:
            return f"the kernel {how} while running the notebook" + (
                "" if watched else ": perhaps out of memory (no memory cgroup watched it here)")
        return ""

    def memory(self) -> str:
        """The kernel's memory as the grader saw it, in words."""
        if not (self.memory_peak or self.data_peak):
            return "the grader could not watch the kernel's memory here"
        peak = max(self.memory_peak, self.data_peak)
        return f"the kernel's memory peaked at {peak / GB:.2f} GB of the {self.memory_limit / GB:g} GB allowed"

    def confirm(self, found: list[str], memory_error: str) -> list[str]:
        """A graded notebook's incidents (``found``), where ``memory_error`` (a cell's MemoryError, the sandbox's limit)
        stands only if the grader saw the kernel's memory come to its bound: a cell can raise MemoryError itself."""
        if self.out_of_memory:
            return found if memory_error in found else [*found, f"the kernel ran out of memory ({self.memory()})"]
        if not (self.memory_peak or self.data_peak):
            return [f"{note}, as the cell reported it ({self.memory()})" if note == memory_error else note
                    for note in found]
        return [f"a cell raised MemoryError below the sandbox's memory limit ({self.memory()})"
                if note == memory_error else note for note in found]

    def notes(self) -> list[str]:
        """What the row of a graded notebook should say of how its kernel ended (beyond time and memory)."""
        found = []
        if self.stopped_answering:
            found.append(f"the kernel stopped answering after a cell's time limit: the {self.not_run} cell(s) after "
                         f"it were not run (their tests score 0)")
        if self.not_kept:
            found.append(f"not kept of what the kernel left in its folder: {', '.join(self.not_kept)}")
        return found


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


@lru_cache
def memory_problem() -> str | None:
    """Why no memory cgroup can bound a kernel here (one is made and removed to know), or None."""
    name = f"kernel-{os.getpid()}-probe"
    if make_cgroup("memory", name) is None:
        return ("no memory cgroup can be made: memory is bounded by RLIMIT_DATA only (shared maps and files in RAM "
                "are not counted), and a kernel killed for memory is not seen as such")
    remove_cgroups(name)
    return None


def read_info(fd: int, seconds: float = 30) -> dict:
    """What bubblewrap writes to its ``--info-fd`` (``child-pid``, the namespaces' inodes); {} if it wrote nothing."""
    data, deadline = b"", time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0 and select.select([fd], [], [], left)[0]:
        chunk = os.read(fd, 4096)
        data += chunk
        with contextlib.suppress(ValueError):
            return json.loads(data)
        if not chunk:
            break
    return {}


def sandbox_root(info: dict) -> str | None:
    """``/proc/<pid>/root`` of the sandbox bubblewrap described in ``info`` while that sandbox still exists (its
    first process is the one in that mount namespace, not a later process given the same pid), else None."""
    root = f"/proc/{info.get('child-pid')}/root"
    try:
        return root if os.stat(f"/proc/{info.get('child-pid')}/ns/mnt").st_ino == info.get("mnt-namespace") else None
    except OSError:
        return None


@lru_cache
def reach_problem() -> str | None:
    """Why the grader cannot reach into a sandbox's own folders through ``/proc/<pid>/root`` (the kernel's sockets
    and working folder then live on the grader's disk), or None when it can."""
    if bwrap_problem() is not None:
        return bwrap_problem()
    read, write = os.pipe()
    try:  # the sandbox says "ready" once set up (bubblewrap names its process earlier), then waits
        process = subprocess.Popen(["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--tmpfs",
                                    "/tmp", "--info-fd", str(write), "sh", "-c", "echo ready; exec cat"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   pass_fds=(write,))
    except OSError as error:
        return str(error)
    finally:
        os.close(write)
    try:
        root = sandbox_root(read_info(read, 30))
        if root is None or not select.select([process.stdout], [], [], 30)[0] or not process.stdout.readline():
            return "bubblewrap did not say which process runs the sandbox"
        os.listdir(f"{root}/tmp")
        return None
    except OSError as error:
        return f"cannot reach into the sandbox ({error})"
    finally:
        os.close(read)
        process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        process.stdout.close()


def resolve(mode: str) -> tuple[str, str]:
    """The mode grading will really use, and a warning to show (empty when all is well)."""
    if mode == "off":
        return "off", "sandbox off: student code runs with this account's rights, unbounded"
    if mode == "limits":
        return "limits", "; ".join(p for p in ("resource limits only, no bubblewrap (--sandbox limits): student code "
                                               "runs with this account's rights and can read solutions/ and the "
                                               "gradebook", memory_problem()) if p)
    problem = bwrap_problem()
    if problem is not None:
        if mode == "bwrap":
            raise CourseError(NO_BWRAP.format(why=problem))
        return "limits", "; ".join(p for p in (NO_BWRAP.format(why=problem), memory_problem()) if p)
    reach = reach_problem()
    if reach is not None:
        reach = (f"{reach}: kernels write into their real working folders, each file bounded but not their total, "
                 f"and what they leave is swept after they end")
    return "bwrap", "; ".join(p for p in (pids_problem(), memory_problem(), reach) if p)


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


def bwrap_args(workdir: Path, rundir: Path, data_dir: str = "", *, disk: int = GB, private: bool = False,
               folders: tuple[str, ...] = (), files: tuple[tuple[int, str, int], ...] = ()) -> list[str]:
    """bubblewrap's arguments for a kernel working in ``workdir``, reached through sockets in ``rundir``. ``private``:
    its working folder is a tmpfs of ``disk`` bytes holding ``folders`` (relative) and ``files`` ((descriptor, path,
    mode): copied in), and its sockets are in a tmpfs of their own; else both folders are bound from the grader's
    disk. Either way its /tmp is a tmpfs of ``disk`` bytes, and nothing else is writable."""
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--cap-drop", "ALL", "--clearenv",
            "--ro-bind", "/usr", "/usr", "--ro-bind-try", "/etc", "/etc", "--proc", "/proc",
            "--dev", "/dev", "--size", str(SHM), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
            "--size", str(disk), "--tmpfs", "/tmp", "--dir", "/tmp/mpl"]
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
               NBGRADER_EXECUTION=os.environ.get("NBGRADER_EXECUTION", "autograde"), MPLCONFIGDIR="/tmp/mpl")
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    if private:
        connection = str(rundir / "kernel.json")
        args += ["--size", str(SOCKETS), "--tmpfs", str(rundir), "--ro-bind", connection, connection,
                 "--size", str(disk), "--tmpfs", str(workdir)]
        for folder in folders:
            args += ["--dir", str(workdir / folder)]
    else:
        args += ["--bind", str(rundir), str(rundir), "--bind", str(workdir), str(workdir)]
    for fd, path, mode in files:
        args += ["--perms", f"{mode:04o}", "--file", str(fd), path]
    return args + ["--remount-ro", "/", "--chdir", str(workdir)]


def matplotlib_cache() -> Path:
    """Where matplotlib keeps this account's font list (matplotlib's own rule, without importing it)."""
    if os.environ.get("MPLCONFIGDIR"):
        return Path(os.environ["MPLCONFIGDIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "matplotlib"


def font_lists() -> list[tuple[int, str, int]]:
    """This account's matplotlib font lists, open, for the sandbox's ``/tmp/mpl``: else each kernel scans the system's
    fonts again into its empty cache (0.5 s or more per notebook; the fonts are at the same paths inside)."""
    found = []
    for path in matplotlib_cache().glob("fontlist-*.json"):
        with contextlib.suppress(OSError):
            found.append((os.open(path, os.O_RDONLY | os.O_NOFOLLOW), f"/tmp/mpl/{path.name}", 0o644))
    return found


def limits_args(sandbox: Sandbox, name: str) -> list[str]:
    # run as a script, not with -m: the kernel's stderr should not start with runpy's warning
    return [sys.executable, str(Path(__file__).with_name("limits.py")), "--memory", str(sandbox.memory),
            "--cpu", str(sandbox.cpu_seconds), "--pids", str(sandbox.max_pids),
            "--fsize", str(sandbox.max_file_size), "--cgroup", name, "--"]


def descendants(pid: int) -> list[int]:
    """``pid`` and the processes below it (where no cgroup lists a kernel's processes)."""
    found, i = [pid], 0
    while i < len(found):
        with contextlib.suppress(OSError, ValueError):
            found += [int(child) for child in Path(f"/proc/{found[i]}/task/{found[i]}/children").read_text().split()]
        i += 1
    return found


class Tail:
    """The end of what a kernel writes to its own stdout and stderr (fds 1 and 2, its subprocesses' too), read from a
    pipe as it comes so the kernel never blocks on it; ``close`` gives the last ``keep`` bytes and the count."""

    def __init__(self, keep: int):
        self.read_fd, self.write_fd = os.pipe()
        self.keep, self.total, self._chunks, self._held = keep, 0, collections.deque(), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True, name="kernel-output")
        self._thread.start()

    def _drain(self) -> None:
        stopped = None
        while True:
            ready = select.select([self.read_fd], [], [], 0.2)[0]
            if self._stop.is_set():
                stopped = stopped or time.monotonic()
                if not ready or time.monotonic() - stopped > 5:  # a leftover process may write on: stop anyway
                    break
            if ready:
                data = os.read(self.read_fd, 1 << 16)
                if not data:
                    break
                self.total += len(data)
                self._chunks.append(data)
                self._held += len(data)
                while self._held - len(self._chunks[0]) >= self.keep:
                    self._held -= len(self._chunks.popleft())
        os.close(self.read_fd)

    def started(self) -> None:
        """The kernel has its copy of the pipe's end: close this process's (once: the number is reused)."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def close(self) -> bytes:
        self.started()
        self._stop.set()
        self._thread.join(3)
        return b"".join(self._chunks)[-self.keep:] if self.keep else b""


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel inside the sandbox. With bubblewrap the kernel has no network, so it
    is reached over Unix sockets: in a tmpfs of the sandbox's own, through ``/proc/<pid>/root`` (``reach_problem``),
    or in a private folder of the grader's bound into the sandbox."""

    _rundir: Path | None = None
    exited: tuple[int, str] | None = None  # (exit status, end of its stdout and stderr) of a kernel that died by itself
    memory: dict | None = None             # what its memory cgroup saw (``limits.memory_seen``)
    memory_limit = 0                       # the bound on its memory (0: not sandboxed)
    data_peak = 0                          # the most data (RLIMIT_DATA's count) a process of it held when looked at
    not_kept: list[str] = []               # what it left in its private working folder that did not come back
    _tail: Tail | None = None
    _info: dict = {}
    _private = False

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
            self.transport = "ipc"
            self.ip = str(self._rundir / "kernel")
            self.connection_file = str(self._rundir / "kernel.json")
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        sandbox, mode = self._sandbox()
        self.exited, self.memory, self.not_kept, self._info, self.data_peak = None, None, [], {}, 0
        self._cgroup = f"kernel-{os.getpid()}-{id(self)}" if mode != "off" else None
        self.memory_limit = sandbox.memory if mode != "off" else 0
        self._tail = Tail(sandbox.kernel_log)
        kw["stdout"] = kw["stderr"] = self._tail.write_fd  # the kernel's fds 1 and 2: the log's, never the terminal
        kw["env"] = {**(kw.get("env") or os.environ), **thread_env()}
        self._workdir = Path(kw.get("cwd") or os.getcwd()).resolve()
        files, info = [], None
        if mode != "off":
            prefix = limits_args(sandbox, self._cgroup)
            if mode == "bwrap":
                self._private = reach_problem() is None
                folders, seeded = seeds(self._workdir) if self._private else ([], [])
                files = [(fd, str(self._workdir / path), perms) for path, fd, perms in seeded] + font_lists()
                info = os.pipe()
                kw["pass_fds"] = (info[1], *(fd for fd, _, _ in files))
                prefix += bwrap_args(self._workdir, self._rundir, sandbox.data_dir, disk=sandbox.disk,
                                     private=self._private, folders=tuple(folders), files=tuple(files))
                prefix += ["--info-fd", str(info[1]), "--"]
            kernel_cmd = prefix + list(kernel_cmd)
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            self._tail.started()
            for fd in [*(fd for fd, _, _ in files), *(info[1:] if info else ())]:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if info:
                self._info = read_info(info[0])
                os.close(info[0])
        root = sandbox_root(self._info) if self._private else None
        if root is not None:  # the grader's end of each socket: a link to the kernel's, inside the sandbox
            for name in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
                port = getattr(self, name)
                os.symlink(f"{root}{self.ip}-{port}", f"{self.ip}-{port}")

    def cpu_seconds(self) -> float | None:
        """The CPU seconds the kernel's processes have used so far, read from /proc (user and system time, and
        that of the children they waited for), or None where the kernel is not running."""
        process = getattr(self.provisioner, "process", None)
        if process is None or process.poll() is not None:
            return None
        ticks = 0
        for pid in (cgroup_procs(self._cgroup) if getattr(self, "_cgroup", None) else []) or descendants(process.pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        return ticks / CLOCK_TICKS

    def note_data(self) -> None:
        """Keep the most data (what RLIMIT_DATA counts, from /proc) a process of the sandboxed kernel holds now."""
        process = getattr(self.provisioner, "process", None)
        if not getattr(self, "_cgroup", None) or process is None:
            return
        for pid in cgroup_procs(self._cgroup) or descendants(process.pid):
            with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status", "rb") as status:
                data = next((line for line in status if line.startswith(b"VmData:")), b"VmData: 0 kB")
                self.data_peak = max(self.data_peak, int(data.split()[1]) * 1024)

    def _note_end(self) -> None:
        """Remember how a kernel that has already ended ended (a signal says which limit killed it), and what its
        memory cgroup saw."""
        self.note_data()
        seen = memory_seen(self._cgroup) if getattr(self, "_cgroup", None) else None
        if seen is not None:
            peak = max(seen["peak"], (self.memory or {}).get("peak", 0))
            self.memory = {**seen, "peak": peak}
        process = getattr(self.provisioner, "process", None)
        if process is not None and process.poll() is not None and self.exited is None:
            tail = self._tail.close() if self._tail is not None else b""
            self.exited = (process.returncode, tail[-4000:].decode(errors="replace"))

    def _harvest(self) -> None:
        """Copy back what the kernel left in its private working folder while the sandbox still exists."""
        root = sandbox_root(self._info) if self._private else None
        if root is None:
            return
        try:
            source = open_beneath(root, self._workdir)
        except OSError:
            return
        try:
            self.not_kept = harvest(source, self._workdir, Sandbox(parent=self).kept)
        except OSError as error:
            self.not_kept = [f"its folder could not be read back ({error})"]
        finally:
            os.close(source)

    def _log_output(self) -> None:
        """Copy the end of what the kernel wrote to its own stdout and stderr into the grading log (fd 2)."""
        if self._tail is None:
            return
        tail, total = self._tail.close(), self._tail.total
        self._tail = None
        if total:
            text = tail.decode(errors="replace")
            lines = "".join(f"  | {line}\n" for line in text.splitlines())
            with contextlib.suppress(OSError), open(2, "wb", closefd=False) as log:  # this process's stderr: the log
                log.write(f"[kernel output] {self._workdir}: the last {len(tail)} of the {total} bytes it wrote to its "
                          f"own stdout and stderr\n{lines}".encode())

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        self._note_end()  # before the shutdown kills it (if still alive) and forgets the process
        self._harvest()
        await super()._async_shutdown_kernel(now=now, restart=restart)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        self._note_end()  # a kernel found dead is not shut down, only cleaned up
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self._log_output()
            if getattr(self, "_cgroup", None):
                remove_cgroups(self._cgroup)
            if self._rundir is not None:
                shutil.rmtree(self._rundir, ignore_errors=True)
                self._rundir = None

    # AsyncKernelManager binds these names to KernelManager's coroutines: rebind them to ours
    cleanup_resources = _async_cleanup_resources
    shutdown_kernel = _async_shutdown_kernel


GUARD = Path(__file__).with_name("kernel_guard.py")


class KernelStoppedAnswering(KernelTimedOut):
    """After a cell's time limit interrupted it, the kernel did not answer a request: it is not running cells."""


NOT_RUN = "not run: the kernel had stopped answering (after an earlier cell's time limit)"


class SandboxedExecute(Execute):
    """nbgrader's Execute, with every kernel started by ``SandboxedKernelManager``, the kernel guard
    (``kernel_guard.py``) undoing monkeypatches before every test cell, a kernel that stops answering ending the
    notebook at once, what the kernel left in its working folder swept (``workdir.sweep``), and the kernel's ending
    written down for the grader (``ending_path``)."""

    # nbgrader raises when a cell's output has not all arrived 4 s after its reply, and the whole notebook then
    # ends as "grading failed": a student's cell that prints 100 MB on a busy machine, or a kernel whose display
    # machinery the student broke, would cost every point earned before. Wait longer; then go on, output cut short.
    raise_on_iopub_timeout = Bool(False, help=Execute.raise_on_iopub_timeout.help).tag(config=True)
    iopub_timeout = Integer(30, help=Execute.iopub_timeout.help).tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)
        self._code_cells_run = 0
        self.ending, self._manager, self._course_names, self._agent_loaded = Ending(), None, None, False

    def preprocess(self, nb, resources=None, km=None):
        self.ending, self._manager = Ending(), None
        workdir = Path((resources or {}).get("metadata", {}).get("path") or os.getcwd())
        # nbgrader leaves the notebook it is grading, hidden tests restored, in the kernel's working folder: the
        # kernel must not read them there (the graded notebook is written back when the run ends)
        with contextlib.suppress(OSError, TypeError):
            (workdir / f"{(resources or {}).get('unique_key')}.ipynb").unlink()
        before = snapshot(workdir)
        try:
            return super().preprocess(nb, resources, km)
        finally:
            manager, ending = self._manager, self.ending
            if manager is not None:
                if manager.exited is not None:
                    ending.exit_status, ending.stderr = manager.exited
                seen, limit = manager.memory or {}, manager.memory_limit
                ending.memory_limit, ending.memory_peak = limit, seen.get("peak", 0)
                ending.data_peak = manager.data_peak
                ending.out_of_memory = bool(limit) and (bool(seen.get("oom_kills")) or ending.memory_peak >= limit
                                                        or ending.data_peak >= NEAR * limit)
                ending.not_kept = list(manager.not_kept)
            # links, pipes and devices the kernel left, and what it wrote past the bound, go before nbgrader writes the
            # graded notebook here and copies this folder into the feedback (a private working folder leaves none)
            ending.not_kept += sweep(workdir, before, Sandbox(parent=self).kept)
            with contextlib.suppress(OSError):  # without it, the grader only says less about this kernel
                write_atomic(ending_path(workdir), json.dumps(asdict(ending), indent=1) + "\n")

    def create_kernel_manager(self):
        self._manager = super().create_kernel_manager()  # nbclient forgets it once the kernel is cleaned up
        return self._manager

    async def async_start_new_kernel(self, **kwargs):
        self._code_cells_run, self._course_names, self._agent_loaded = 0, None, False
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
        reply = await super()._async_handle_timeout(timeout, cell)
        if not await self._answers(Sandbox(parent=self).answer_seconds):
            # e.g. a replaced displayhook makes the kernel fail every request before handling it: every later
            # cell would wait its whole time limit
            self.ending.stopped_answering = True
            raise KernelStoppedAnswering()
        return reply

    async def _answers(self, seconds: float) -> bool:
        """Whether the kernel answers a ``kernel_info`` request within ``seconds`` (earlier replies are dropped:
        the cell they answer has already ended)."""
        msg_id = self.kc.kernel_info()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Empty:
                return False
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
        return False

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

        cell.outputs = await asyncio.to_thread(run_test_cell, cell.source, self._course_names, send,
                                               getattr(self.km, "cpu_seconds", None))
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
        if cell.cell_type == "code" and cell.source.strip() and self.ending.stopped_answering:
            self.ending.not_run += 1
            cell.outputs = [nbformat.v4.new_output("error", ename="KernelStoppedAnswering", evalue=NOT_RUN,
                                                   traceback=[NOT_RUN])]  # an error output: a test cell scores 0
            return cell
        try:
            return await self._execute_cell(cell, cell_index, execution_count, store_history)
        except KernelStoppedAnswering:  # the cell's time limit, as nbgrader records it; the later cells are not run
            cell.outputs.append(nbformat.v4.new_output("error", **self.error_on_timeout))
            return cell
        finally:
            if cell.cell_type == "code" and self._manager is not None:
                self._manager.note_data()  # a MemoryError a cell shows is only its word: this is the grader's look

    async def _execute_cell(self, cell, cell_index, execution_count, store_history):
        if cell.cell_type == "code" and utils.is_grade(cell) and self._tests_in_grader():
            return await self._run_trusted(cell, cell_index)
        if cell.cell_type == "code" and cell.source.strip():
            if self._code_cells_run == 0 and not self._tests_in_grader():
                await self._quietly(GUARD.read_text())
            elif utils.is_grade(cell):
                await self._quietly("__handwritten_guard__()")
        result = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if cell.cell_type == "code" and cell.source.strip():
            self._code_cells_run += 1
            if self._code_cells_run == 1 and not self._tests_in_grader():  # the setup cell: its modules, by name
                await self._quietly("__handwritten_guard__(capture_names=True)")
        return result

    # nbclient binds its synchronous wrappers to its own coroutines: rebind them to these
    start_new_kernel = run_sync(async_start_new_kernel)
    execute_cell = run_sync(async_execute_cell)
