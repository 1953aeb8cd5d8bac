"""handwritten.env: the first cell of every lesson."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest
import torch

from handwritten import env


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_setup_reports_everything_in_one_block(capfd, monkeypatch):
    monkeypatch.delenv("HANDWRITTEN_THREADS", raising=False)
    torch.set_num_threads(2)
    course = env.setup(seed=7)
    out, err = capfd.readouterr()
    assert err == ""
    assert torch.get_num_threads() == 1 and course.threads == 1
    assert "environment OK" in out and "torch 2.13" in out and "torch threads: 1" in out
    assert "random seed: 7" in out
    assert "graded: no" in out
    assert "MNIST: bundled sample of real MNIST digits" in out
    assert course.mnist.kind == "sample" and course.graded is None
    assert isinstance(course, env.Setup)  # what a lesson keeps as `course`: its setup, not grading's Course


def test_setup_seeds_torch():
    env.setup(seed=3, load_data=False)
    a = torch.rand(3)
    env.setup(seed=3, load_data=False)
    assert torch.equal(a, torch.rand(3))


def test_threads_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("HANDWRITTEN_THREADS", "2")
    assert env.setup(load_data=False).threads == 2 and torch.get_num_threads() == 2
    for bad in ("zero", "0"):
        monkeypatch.setenv("HANDWRITTEN_THREADS", bad)
        with pytest.raises(env.EnvironmentProblem, match="HANDWRITTEN_THREADS"):
            env.setup(load_data=False)


@pytest.mark.parametrize("value", ["autograde", "validate"])
def test_reports_grading(monkeypatch, capsys, value):
    monkeypatch.setenv("NBGRADER_EXECUTION", value)
    assert env.setup(load_data=False).graded == value
    assert f"graded: yes, nbgrader is running this notebook ({value})" in capsys.readouterr().out


def test_wrong_environment_says_what_to_run():
    with pytest.raises(env.EnvironmentProblem) as problem:
        env.check_versions({"torch": "99.0", "surely-not-installed-package": "1.0"})
    message = str(problem.value)
    assert "torch 2.13" in message and "too old (need 99.0" in message
    assert "surely-not-installed-package is not installed" in message
    assert message.endswith(env.fix())  # the one command for this kernel's kind of environment


@pytest.fixture
def outside_binder(monkeypatch):
    for name in ("BINDER_LAUNCH_HOST", "BINDER_REQUEST", "BINDER_REPO_URL"):
        monkeypatch.delenv(name, raising=False)


def test_each_environment_gets_its_own_command(monkeypatch, outside_binder):
    root = Path(__file__).resolve().parent.parent
    # the course's .venv (where the tests run): make setup, in the course folder
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    assert env.where() == "venv" and env.place() == "the course's .venv"
    assert f"cd {root} && make setup" in env.fix() and "Restart Kernel" in env.fix()
    # a conda environment: update it from the course's environment.yml
    monkeypatch.setenv("CONDA_PREFIX", sys.prefix)
    assert env.where() == "conda"
    assert f"conda env update --prune -f {root / 'environment.yml'}" in env.fix()
    # some other Python: make lab, which sets everything up
    assert f"cd {root} && make lab" in env.fix("python") and sys.executable in env.fix("python")
    # Binder: relaunch, nothing to install
    monkeypatch.setenv("BINDER_LAUNCH_HOST", "https://mybinder.org/")
    assert env.where() == "binder" and env.place() == "Binder"
    assert "Binder badge" in env.fix() and "make" not in env.fix()


def test_the_first_cell_says_where_it_runs(capsys, monkeypatch, outside_binder):
    monkeypatch.setenv("BINDER_LAUNCH_HOST", "https://mybinder.org/")
    env.setup(load_data=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("environment OK (Python " + platform.python_version() + ", Binder)")
    assert lines[1].lstrip().startswith("torch ") and "torch threads: 1" in lines[2]


def test_old_python_is_reported(monkeypatch):
    monkeypatch.setattr(env, "MIN_PYTHON", (99, 0))
    with pytest.raises(env.EnvironmentProblem, match=r"Python 3\.\d+\.\d+ is too old \(need 99\.0"):
        env.check_versions({})


def test_version_parsing():
    assert env._major_minor("2.13.0+cu130") == (2, 13)
    assert env._major_minor("0.28.0") == (0, 28)
    assert env._major_minor("8.1.9") == (8, 1)
    assert env._major_minor("4.66rc1") == (4, 66)
