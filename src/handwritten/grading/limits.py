"""Start a command under resource limits: ``python -m handwritten.grading.limits --memory B --cpu S
--pids N --fsize B [--cgroup NAME] -- COMMAND...``.

Memory is bounded with RLIMIT_DATA (heap and anonymous maps: a memory bomb gets MemoryError, while
torch's large read-only library mappings, which RLIMIT_AS would count, still load), CPU time with
RLIMIT_CPU, file size with RLIMIT_FSIZE, and the number of processes with a ``pids`` cgroup
(RLIMIT_NPROC does not bind root, and graders often run as root). The command replaces this process,
so the kernel manager's signals reach it directly.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
from pathlib import Path

CGROUP_PARENT = "handwritten-grading"


def pids_cgroup_root() -> Path | None:
    """Where a ``pids`` cgroup can be made: cgroup v1's pids hierarchy, or v2 with pids enabled."""
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").exists():
        return v1
    v2 = Path("/sys/fs/cgroup")
    try:
        if "pids" in (v2 / "cgroup.controllers").read_text().split():
            return v2
    except OSError:
        pass
    return None


def join_pids_cgroup(name: str, max_pids: int) -> bool:
    """Put this process in a fresh cgroup that holds at most ``max_pids`` tasks (threads count)."""
    root = pids_cgroup_root()
    if root is None:
        return False
    parent = root / CGROUP_PARENT
    try:
        parent.mkdir(exist_ok=True)
        if root.name != "pids":  # v2: the parent must hand the controller down
            (root / "cgroup.subtree_control").write_text("+pids")
            (parent / "cgroup.subtree_control").write_text("+pids")
        for stale in parent.iterdir():  # cgroups of kernels that have ended: empty ones can go
            if stale.is_dir() and stale.name != name:
                try:
                    stale.rmdir()
                except OSError:
                    pass
        group = parent / name
        group.mkdir(exist_ok=True)
        (group / "pids.max").write_text(str(max_pids))
        (group / "cgroup.procs").write_text(str(os.getpid()))
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m handwritten.grading.limits")
    parser.add_argument("--memory", type=int, required=True, help="bytes of data memory")
    parser.add_argument("--cpu", type=int, required=True, help="seconds of CPU time")
    parser.add_argument("--pids", type=int, required=True, help="processes and threads")
    parser.add_argument("--fsize", type=int, required=True, help="bytes per written file")
    parser.add_argument("--cgroup", default=f"kernel-{os.getpid()}")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    resource.setrlimit(resource.RLIMIT_DATA, (args.memory, args.memory))
    resource.setrlimit(resource.RLIMIT_CPU, (args.cpu, args.cpu + 5))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize, args.fsize))
    join_pids_cgroup(args.cgroup, args.pids)
    # A kernel is interrupted with SIGINT to its whole process group, bubblewrap's processes included,
    # and bubblewrap would die of it (and take the kernel along). Ignored, the signal is inherited as
    # ignored; ipykernel installs its own handler while a cell runs, so the cell still gets it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
