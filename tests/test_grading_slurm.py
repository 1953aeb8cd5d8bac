"""Grading on a real Slurm: a one-node cluster (Debian's `slurmctld`, `slurmd` and `munge`, started here as
plain processes, no systemd; `make slurm` installs them, `make test` does under CI) runs the array job
`deploy/slurm-array.sh` with `sbatch`; every shard grades into one PostgreSQL gradebook (test_grading_shards'
server), and the merged `grades.csv` is the one a single-machine run of the same class writes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import test_grading_shards as shards

from handwritten.grading import Course
from handwritten.grading.grade import in_shard

from conftest import ROOT, copy_course

CONV = shards.CONV
SHARDS = 2
database = shards.database  # test_grading_shards' PostgreSQL, a module fixture here too
handwritten = shards.handwritten
SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scontrol")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check, what: str, timeout: float = 30, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise TimeoutError(f"{what} after {timeout:.0f} s")


@pytest.fixture(scope="module")
def slurm():
    """A one-node Slurm cluster in a scratch folder: munged (as the munge user, its own key and socket),
    slurmctld and slurmd (as root, in the foreground of their processes); the environment its clients need."""
    found = {name: shutil.which(name, path=os.environ.get("PATH", "") + ":" + SBIN) for name in DAEMONS}
    if not all(found.values()):
        missing = ", ".join(name for name, path in found.items() if not path)
        if os.environ.get("CI"):
            pytest.fail(f"Slurm is not installed ({missing} missing): `make test` installs it under CI (`make slurm`)")
        pytest.skip(f"Slurm is not installed ({missing} missing; `make slurm` installs Debian's slurmctld, slurmd "
                    "and munge)")
    if os.geteuid() != 0:
        pytest.skip("a Slurm cluster is started as root (slurmd starts every job's processes)")
    scratch = Path(tempfile.mkdtemp(prefix="handwritten-slurm-"))  # pytest's folders are closed to other users
    scratch.chmod(0o755)
    munge = scratch / "munge"
    munge.mkdir()
    munge.chmod(0o755)  # munged wants its socket's folder open to everyone (the key itself is 0400)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    shutil.chown(munge, "munge", "munge")
    shutil.chown(key, "munge", "munge")
    for name in ("state", "spool", "log"):
        (scratch / name).mkdir()
    host = socket.gethostname().split(".")[0]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    conf = scratch / "slurm.conf"
    conf.write_text(f"""\
ClusterName=handwritten
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge}/munge.socket
CredType=cred/munge
StateSaveLocation={scratch}/state
SlurmdSpoolDir={scratch}/spool
SlurmctldPidFile={scratch}/slurmctld.pid
SlurmdPidFile={scratch}/slurmd.pid
SlurmctldLogFile={scratch}/log/slurmctld.log
SlurmdLogFile={scratch}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=1
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={memory} State=UNKNOWN
PartitionName=grading Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    env = os.environ | {"SLURM_CONF": str(conf), "PATH": os.environ.get("PATH", "") + ":" + SBIN}
    runuser = shutil.which("runuser", path=SBIN) or "runuser"
    logs = open(scratch / "log" / "daemons.log", "ab")
    daemons = []
    try:
        daemons.append(subprocess.Popen(
            [runuser, "-u", "munge", "--", found["munged"], "--foreground", f"--key-file={key}",
             f"--socket={munge}/munge.socket", f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
             f"--seed-file={munge}/munged.seed"], stdout=logs, stderr=logs))
        def up(path):
            assert all(d.poll() is None for d in daemons), (scratch / "log" / "daemons.log").read_text()
            return path.exists()

        wait_for(lambda: up(munge / "munge.socket"), "munged did not open its socket")
        daemons.append(subprocess.Popen([found["slurmctld"], "-D", "-i"], env=env, stdout=logs, stderr=logs))
        daemons.append(subprocess.Popen([found["slurmd"], "-D"], env=env, stdout=logs, stderr=logs))

        def idle():
            assert all(d.poll() is None for d in daemons), (scratch / "log" / "daemons.log").read_text()
            state = subprocess.run([found["sinfo"], "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            return state.stdout.strip() == "idle"

        try:
            wait_for(idle, "the node is not idle")
        except (TimeoutError, AssertionError) as failure:
            logs.flush()
            raise AssertionError("\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in
                                           sorted((scratch / "log").iterdir()) if p.is_file())) from failure
        yield {"env": env, "logs": scratch / "log"} | found
    finally:
        for daemon in reversed(daemons):
            daemon.terminate()
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
        logs.close()
        shutil.rmtree(scratch, ignore_errors=True)


def run_array(slurm, env: dict, array: str, source: Path, folder: Path) -> list[str]:
    """deploy/slurm-array.sh as `array`, submitted from `folder`; once every task has left the queue, each
    task's record (scontrol's one line)."""
    job = subprocess.run([slurm["sbatch"], "--parsable", f"--array={array}", "--cpus-per-task=1", "--mem=2G",
                          "--export=ALL", str(ROOT / "deploy" / "slurm-array.sh"), str(source)],
                         cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    assert job.returncode == 0, job.stderr
    job_id = job.stdout.strip().split(";")[0]

    def done():  # `sbatch --wait` polls at growing intervals (it said 42 s for a 20 s job): watch the queue
        return not subprocess.run([slurm["squeue"], "-h", "-j", job_id], env=env, capture_output=True,
                                  text=True).stdout.strip()

    wait_for(done, f"job {job_id} is still queued or running", timeout=900)
    return subprocess.run([slurm["scontrol"], "-o", "show", "job", job_id], env=env, capture_output=True,
                          text=True).stdout.splitlines()     # finished jobs stay known for MinJobAge (300 s)


def test_slurm_array_job_grades_the_class_as_one_machine_does(slurm, database, tmp_path):
    course = Course(copy_course(tmp_path / "course"))
    source = tmp_path / "submissions"
    chosen, _ = shards.small_class(course, source)  # two students in each shard

    # one machine: the same class in its own course folder and SQLite gradebook, two workers
    alone = Course(copy_course(tmp_path / "alone"))
    start = time.monotonic()
    single = handwritten(alone, "", "grade", str(source), "--workers", str(SHARDS))
    out = single.communicate(timeout=600)[0]
    one_machine = time.monotonic() - start
    assert single.returncode == 0, out

    # the cluster: release once into the shared gradebook, then the array job, one shard per task
    release = handwritten(course, database, "release", CONV)
    assert release.wait(timeout=600) == 0, release.stdout.read()
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is not on PATH: the array job runs `uv run --frozen handwritten`"
    env = slurm["env"] | {"NBGRADER_DB_URL": database, "UV_PROJECT": str(ROOT),  # the course copy has no pyproject
                          "PATH": f"{Path(uv).parent}:{slurm['env']['PATH']}"}
    start = time.monotonic()
    tasks = run_array(slurm, env, f"0-{SHARDS - 1}", source, course.root)
    on_slurm = time.monotonic() - start
    logs = {p.name: p.read_text() for p in sorted(course.root.glob("grade-*.log"))}
    assert len(tasks) == SHARDS and all("JobState=COMPLETED" in t and "ExitCode=0:0" in t for t in tasks), (tasks, logs)
    assert sorted(logs) == [f"grade-{i}.log" for i in range(SHARDS)], logs
    for i in range(SHARDS):
        graded = sum(in_shard(n, (i, SHARDS)) for n in chosen)
        assert f"{graded} graded now" in logs[f"grade-{i}.log"], logs    # each student graded by their shard, once
        assert (course.root / "autograders" / f"grades-{i}.csv").is_file()

    # a failed task submitted again alone, told the shard count: it resumes, and finds nothing left to grade
    tasks = run_array(slurm, env | {"SHARDS": str(SHARDS)}, "1", source, course.root)
    again = (course.root / "grade-1.log").read_text()
    assert len(tasks) == 1 and "JobState=COMPLETED" in tasks[0], (tasks, again)
    kept = sum(in_shard(n, (1, SHARDS)) for n in chosen)
    assert f"{kept} notebook(s): 0 graded now, {kept} kept" in again, again

    # gather: one more run without --shard on the same folder and gradebook grades nothing again
    merge = handwritten(course, database, "grade", str(source))
    out = merge.communicate(timeout=600)[0]
    assert merge.returncode == 0 and "0 graded now" in out, out
    merged = (course.root / "autograders" / "grades.csv").read_text()
    # the same, row for row and byte for byte, but for where the feedback lives (the course folder)
    assert merged == (alone.root / "autograders" / "grades.csv").read_text().replace(str(alone.root), str(course.root))
    print(f"\n{len(chosen)} notebooks: one machine (--workers {SHARDS}) {one_machine:.1f} s, "
          f"Slurm array of {SHARDS} tasks (1 CPU each) {on_slurm:.1f} s", file=sys.stderr)
