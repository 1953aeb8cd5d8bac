"""The limits a graded kernel starts under (``handwritten.grading.limits``): memory however it is taken, in a memory
cgroup made under the grader's own, what that cgroup saw read back by the grader, and nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from handwritten.grading import limits
from handwritten.grading.sandbox import memory_problem

MB = 1024**2
SHARED = "import mmap\nm = mmap.mmap(-1, 512 * 1024**2, flags=mmap.MAP_SHARED)\nfor i in range(0, len(m), 4096):\n" \
         "    m[i] = 1\nprint('held 512 MB')\n"


def run(code: str, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, limits.__file__, "--memory", str(256 * MB), "--cpu", "60", "--pids", "32",
                           "--fsize", str(MB), "--cgroup", name, "--", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=120)


def test_shared_memory_is_bounded_and_the_grader_sees_the_kill():
    if memory_problem() is not None:
        pytest.skip(memory_problem())
    name = f"kernel-{os.getpid()}-shared"
    done = run(SHARED, name)  # RLIMIT_DATA does not count a shared map: the cgroup does
    seen = limits.memory_seen(name)
    limits.remove_cgroups(name)
    assert done.returncode == -signal.SIGKILL and "held" not in done.stdout, done
    assert seen == {"limit": 256 * MB, "peak": 256 * MB, "oom_kills": 1}, seen
    group = limits.cgroup_root("memory") / limits.CGROUP_PARENT / name
    assert not group.exists()
    v1 = Path("/sys/fs/cgroup/memory")
    if (v1 / "cgroup.procs").exists():  # under this process's own memory cgroup, not the hierarchy's root
        own = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                   if "memory" in line.split(":")[1].split(","))
        assert group.parent.parent == v1 / own.lstrip("/")


def test_private_memory_gets_a_memory_error_first():
    name = f"kernel-{os.getpid()}-data"
    done = run("b = bytearray(300 * 1024**2)", name)
    seen = limits.memory_seen(name)
    limits.remove_cgroups(name)
    assert done.returncode == 1 and "MemoryError" in done.stderr, done
    assert seen is None or seen["oom_kills"] == 0


def test_the_cgroups_of_ended_graders_are_removed_on_the_way():
    if memory_problem() is not None:
        pytest.skip(memory_problem())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = limits.make_cgroup("memory", f"kernel-{dead.stdout.strip()}-1")
    mine = limits.make_cgroup("memory", f"kernel-{os.getpid()}-kept")
    fresh = limits.make_cgroup("memory", f"kernel-{os.getpid()}-fresh")
    try:
        assert fresh is not None and not stale.exists() and mine.exists()
    finally:
        limits.remove_cgroups(mine.name)
        limits.remove_cgroups(fresh.name)
    assert not fresh.parent.exists()  # the last one out takes the parent along
