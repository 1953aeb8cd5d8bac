"""One PostgreSQL gradebook, a class split into shards graded by separate processes (as the pods of
a Kubernetes Indexed Job or the tasks of a Slurm array would): the union is what one run gives,
nothing is graded twice and nothing is missed. PostgreSQL is Debian's (`make test` installs it
under CI), started here on loopback in a scratch folder."""

from __future__ import annotations

import csv
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from handwritten.grading import Course
from handwritten.grading.cases import graded_tests, load_cases, submission
from handwritten.grading.grade import in_shard

from conftest import copy_course, without_demos

CONV = "04-convolutions-by-hand"
SHARDS = 2


def postgres_bin() -> Path | None:
    found = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1:]), None) or shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="module")
def database():
    bindir = postgres_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: `make test` installs it under CI (`make postgres`)")
        pytest.skip("PostgreSQL is not installed (`make postgres` installs Debian's)")
    data = Path(tempfile.mkdtemp(prefix="handwritten-postgres-"))  # pytest's folders are closed to other users
    as_postgres = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(data, "postgres")
        # runuser lives in /usr/sbin, which a non-login PATH may leave out
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin") or "runuser"
        as_postgres = [runuser, "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run([*as_postgres, bindir / "initdb", "-D", data / "db", "-U", "grader", "-A", "trust"],
                   check=True, capture_output=True)
    subprocess.run([*as_postgres, bindir / "pg_ctl", "-D", data / "db", "-l", data / "log", "-w", "start", "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1"], check=True, capture_output=True)
    try:
        yield f"postgresql://grader@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, bindir / "pg_ctl", "-D", data / "db", "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def handwritten(course: Course, url: str, *args: str, **kw):
    """The CLI, with the gradebook in NBGRADER_DB_URL (or, with url="", as the args say)."""
    env = os.environ | ({"NBGRADER_DB_URL": url} if url else {})
    return subprocess.Popen([sys.executable, "-m", "handwritten.cli", "--course", str(course.root), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def small_class(course: Course, source: Path):
    """Four lesson-04 notebooks without demonstrations (right, a mutant, blank, right) in ``source``: two students
    in each of the SHARDS shards, whichever names the hash gives them. Returns the students, in that order, and the
    mutant."""
    mutant = next(c for c in load_cases(course, CONV) if c.kind == "mutant")
    names = [f"student{i}" for i in range(40)]
    chosen = [n for n in names if in_shard(n, (0, SHARDS))][:2] + [n for n in names if in_shard(n, (1, SHARDS))][:2]
    notebooks = [without_demos(nb) for nb in (submission(course, CONV), submission(course, CONV, mutant.cells),
                                              submission(course, CONV, blank=True), submission(course, CONV))]
    for name, nb in zip(chosen, notebooks):
        (source / name).mkdir(parents=True)
        nbformat.write(nb, source / name / f"{CONV}.ipynb")
    return chosen, mutant


def test_shards_against_one_postgres_gradebook_grade_everyone_once(database, tmp_path, monkeypatch):
    course = Course(copy_course(tmp_path / "course"))
    source = tmp_path / "submissions"
    chosen, mutant = small_class(course, source)

    early = handwritten(course, database, "grade", str(source), "--shard", f"0/{SHARDS}")
    out = early.communicate(timeout=300)[0]
    assert early.returncode == 2 and f"handwritten release {CONV}" in out, out   # release first, once
    release = handwritten(course, database, "release", CONV)
    assert release.wait(timeout=600) == 0, release.stdout.read()

    runs = [handwritten(course, "", "grade", str(source), "--db", database, "--workers", "1",
                        "--shard", f"{i}/{SHARDS}", "--out", str(tmp_path / f"grades-{i}.csv")) for i in range(SHARDS)]
    outputs = [run.communicate(timeout=1200)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * SHARDS, outputs
    rows = {}
    for i in range(SHARDS):
        with open(tmp_path / f"grades-{i}.csv", newline="") as f:
            part = {row["student"]: row for row in csv.DictReader(f)}
        assert len(part) == 2 and "2 graded now" in outputs[i], outputs[i]
        assert not set(part) & set(rows)                                     # nothing graded twice
        rows.update(part)
    assert sorted(rows) == sorted(chosen)                                    # nothing missed
    tests = graded_tests(course, CONV)
    full, mutated, blank, again = (rows[name] for name in chosen)
    assert {t: float(full[t]) for t in tests} == tests == {t: float(again[t]) for t in tests}
    assert {t for t in tests if float(mutated[t]) != tests[t]} == set(mutant.fails)
    assert float(blank["score"]) == 0

    from nbgrader.api import Gradebook

    monkeypatch.setenv("NBGRADER_DB_URL", database)
    url = Course(course.root).db_url
    assert url.startswith("postgresql+psycopg://")                           # psycopg 3, the installed driver
    with Gradebook(url) as gradebook:                                        # all in the one gradebook
        assert sorted(s.id for s in gradebook.students) == sorted(chosen)
        for name in chosen:
            assert gradebook.find_submission(CONV, name).score == float(rows[name]["score"])
