"""Start a command under resource limits: ``python -m handwritten.grading.limits --memory B --cpu S
--pids N --fsize B [--cgroup NAME] -- COMMAND...``.

Memory is bounded twice. RLIMIT_DATA (heap and private maps) is the first line: a memory bomb gets a
MemoryError, while torch's large read-only library mappings, which RLIMIT_AS would count, still load. A
``memory`` cgroup is the hard bound, whatever the allocation: shared maps and files in a RAM-backed tmpfs,
which RLIMIT_DATA does not count, are charged to it, and the kernel is killed past it (the grader reads its
counters afterwards: ``memory_seen``). CPU time is bounded with RLIMIT_CPU, file size with RLIMIT_FSIZE, the
number of processes with a ``pids`` cgroup (RLIMIT_NPROC does not bind root, and graders often run as root).

The cgroups are made under the grader's own (``handwritten-grading/<NAME>``), so a machine's or a container's
own bounds still hold; where no cgroup can be made there (cgroup v2 without delegation, no rights), that bound
is missing and the grader says so. The command replaces this process, so the kernel manager's signals reach it
directly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import sys
import time
from pathlib import Path

CGROUP_PARENT = "handwritten-grading"
CGROUPS = Path("/sys/fs/cgroup")


def _own_path(controller: str) -> str | None:
    """This process's cgroup in the hierarchy of ``controller`` (v1), or its v2 cgroup ("" key)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if controller in names.split(",") or (not controller and not names):
            return path
    return None


def cgroup_root(controller: str) -> Path | None:
    """The cgroup under which this process can bound ``controller`` ("pids", "memory") for its children: its own
    cgroup in v1's hierarchy for that controller, or in v2 where the controller is available there."""
    v1 = CGROUPS / controller
    if (v1 / "cgroup.procs").exists():
        own = _own_path(controller)
        return None if own is None else v1 / own.lstrip("/")
    own = _own_path("")
    try:
        if own is not None and controller in (CGROUPS / own.lstrip("/") / "cgroup.controllers").read_text().split():
            return CGROUPS / own.lstrip("/")
    except OSError:
        pass
    return None


def pids_cgroup_root() -> Path | None:
    """Where a ``pids`` cgroup can be made (cgroup v1's pids hierarchy, or v2 with pids enabled)."""
    return cgroup_root("pids")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def make_cgroup(controller: str, name: str) -> Path | None:
    """A fresh cgroup ``handwritten-grading/<name>`` for ``controller``, or None where none can be made. The
    cgroups of kernels whose grader has ended (``kernel-<grader pid>-...``) are removed on the way."""
    root = cgroup_root(controller)
    if root is None:
        return None
    parent = root / CGROUP_PARENT
    for _ in range(3):  # the parent goes with its last kernel: another grader may remove it meanwhile
        try:
            parent.mkdir(exist_ok=True)
            if (root / "cgroup.controllers").exists():  # v2: the controller must be handed down to the children
                for folder in (root, parent):
                    if controller not in (folder / "cgroup.subtree_control").read_text().split():
                        (folder / "cgroup.subtree_control").write_text(f"+{controller}")
            for stale in parent.iterdir():
                owner = stale.name.split("-")[1:2]
                if stale.is_dir() and stale.name != name and owner and owner[0].isdigit() and not _alive(int(owner[0])):
                    with contextlib.suppress(OSError):
                        stale.rmdir()
            group = parent / name
            group.mkdir(exist_ok=True)
            return group
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None


def _write(path: Path, value: object) -> bool:
    try:
        path.write_text(str(value))
        return True
    except OSError:
        return False


def join_pids_cgroup(name: str, max_pids: int) -> bool:
    """Put this process in a fresh cgroup that holds at most ``max_pids`` tasks (threads count)."""
    group = make_cgroup("pids", name)
    return group is not None and _write(group / "pids.max", max_pids) and _write(group / "cgroup.procs", os.getpid())


def join_memory_cgroup(name: str, limit: int) -> bool:
    """Put this process in a fresh cgroup whose memory, swap included, is at most ``limit`` bytes: past it the
    kernel's processes are killed. False where no such bound could be set."""
    group = make_cgroup("memory", name)
    if group is None:
        return False
    if (group / "memory.max").exists():  # v2
        bounded = _write(group / "memory.max", limit)
        _write(group / "memory.swap.max", 0)
        _write(group / "memory.oom.group", 1)
    else:
        bounded = _write(group / "memory.limit_in_bytes", limit)
        # swap must not extend the bound: counted with it where the kernel accounts swap, else not used
        if not _write(group / "memory.memsw.limit_in_bytes", limit):
            _write(group / "memory.swappiness", 0)
    return bounded and _write(group / "cgroup.procs", os.getpid())


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _field(text: str, key: str) -> int:
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == key and words[1].isdigit():
            return int(words[1])
    return 0


def memory_seen(name: str) -> dict[str, int] | None:
    """What the memory cgroup ``name`` saw: its limit, the peak of its usage (bytes) and how many processes the
    kernel killed in it for memory; None where there is no such cgroup (not made, or already removed)."""
    root = cgroup_root("memory")
    group = None if root is None else root / CGROUP_PARENT / name
    if group is None or not group.is_dir():
        return None
    if (group / "memory.max").exists():  # v2 (memory.peak: Linux 5.19 and later)
        limit, peak = _read(group / "memory.max").strip(), _read(group / "memory.peak").strip()
        return {"limit": int(limit) if limit.isdigit() else 0, "peak": int(peak) if peak.isdigit() else 0,
                "oom_kills": _field(_read(group / "memory.events"), "oom_kill")}
    limit, peak = _read(group / "memory.limit_in_bytes").strip(), _read(group / "memory.max_usage_in_bytes").strip()
    return {"limit": int(limit) if limit.isdigit() else 0, "peak": int(peak) if peak.isdigit() else 0,
            "oom_kills": _field(_read(group / "memory.oom_control"), "oom_kill")}


def cgroup_procs(name: str) -> list[int]:
    """The processes in the cgroup ``name`` (its memory cgroup's, else its pids cgroup's), [] where neither exists."""
    for controller in ("memory", "pids"):
        root = cgroup_root(controller)
        text = "" if root is None else _read(root / CGROUP_PARENT / name / "cgroup.procs")
        if text:
            return [int(pid) for pid in text.split()]
    return []


def remove_cgroups(name: str) -> None:
    """Remove the cgroups ``name`` once their processes have ended (2 s at most: else they stay, for a later
    grader to remove), and their parent when it is left empty, so nothing stays under the grader's own cgroup."""
    for controller in ("pids", "memory"):
        root = cgroup_root(controller)
        if root is None:
            continue
        group, deadline = root / CGROUP_PARENT / name, time.monotonic() + 2
        while _read(group / "cgroup.procs").strip() and time.monotonic() < deadline:
            time.sleep(0.02)  # a killed kernel's processes leave their cgroup a moment later
        for folder in (group, group.parent):
            with contextlib.suppress(OSError):
                folder.rmdir()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m handwritten.grading.limits")
    parser.add_argument("--memory", type=int, required=True, help="bytes of data memory, and of memory however held")
    parser.add_argument("--cpu", type=int, required=True, help="seconds of CPU time")
    parser.add_argument("--pids", type=int, required=True, help="processes and threads")
    parser.add_argument("--fsize", type=int, required=True, help="bytes per written file")
    parser.add_argument("--cgroup", default=f"kernel-{os.getppid()}-{os.getpid()}")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    resource.setrlimit(resource.RLIMIT_DATA, (args.memory, args.memory))
    resource.setrlimit(resource.RLIMIT_CPU, (args.cpu, args.cpu + 5))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize, args.fsize))
    join_pids_cgroup(args.cgroup, args.pids)
    join_memory_cgroup(args.cgroup, args.memory)
    # A kernel is interrupted with SIGINT to its whole process group, bubblewrap's processes included,
    # and bubblewrap would die of it (and take the kernel along). Ignored, the signal is inherited as
    # ignored; ipykernel installs its own handler while a cell runs, so the cell still gets it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
