"""What a graded kernel is started with, checked without starting one (the adversarial suite starts
them): its environment holds no grader secrets and pins one BLAS thread per kernel."""

from __future__ import annotations

from pathlib import Path

from handwritten.grading.sandbox import bwrap_args, thread_env


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


def test_threads_follow_the_course_setting_or_an_explicit_one(monkeypatch):
    monkeypatch.setenv("HANDWRITTEN_THREADS", "2")
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert thread_env() == {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "3"}
