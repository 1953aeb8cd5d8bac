"""Static checks of what cannot run here: conda-forge is unreachable from CI, so environment.yml
and the Binder files are checked for what they say, not executed."""

from __future__ import annotations

import re
import tomllib

import yaml

from conftest import ROOT

CONDA_NAMES = {"torch": "pytorch-cpu", "matplotlib": "matplotlib-base"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def test_binder_environment_is_an_exact_copy():
    assert (ROOT / "binder" / "environment.yml").read_bytes() == (ROOT / "environment.yml").read_bytes()


def test_environment_names_the_same_packages_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"][0] == "conda-forge" and "defaults" not in env["channels"]
    conda = {_name(dep): dep for dep in env["dependencies"] if isinstance(dep, str)}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in project:
        name = _name(requirement)
        assert CONDA_NAMES.get(name, name) in conda, f"{name} is in pyproject.toml but not environment.yml"
    assert "pytorch" not in conda and "pytorch-cpu" in conda  # the small CPU build, never CUDA
    pins = {"torch": "pytorch-cpu", "torchvision": "torchvision"}
    for name, conda_name in pins.items():
        version = next(r.split("==")[1] for r in project if _name(r) == name)
        conda_version = conda[conda_name].split("=")[1]
        assert version.startswith(conda_version + "."), (name, version, conda[conda_name])


def test_post_build_fails_fast_and_start_hands_over():
    post_build = (ROOT / "binder" / "postBuild").read_text().splitlines()
    code = [line for line in post_build if line.strip() and not line.startswith("#")]
    assert code[0] == "set -e"
    start = [line for line in (ROOT / "binder" / "start").read_text().splitlines() if line.strip()]
    assert start[-1] == 'exec "$@"'
    assert "export OMP_NUM_THREADS=1" in start


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_lists_every_lesson_and_links_only_real_notebooks():
    readme = (ROOT / "README.md").read_text()
    lessons = sorted(p.name for p in (ROOT / "lessons").iterdir() if p.is_dir())
    for lesson in lessons:
        row = next((line for line in readme.splitlines() if f"](lessons/{lesson}/{lesson}.ipynb)" in line), None)
        assert row is not None, f"README's lesson table does not link lessons/{lesson}"
        assert row.rstrip().endswith("| **ready** |"), row
    for link in re.findall(r"\]\((lessons/[^)]+\.ipynb)\)", readme):
        assert (ROOT / link).is_file(), f"README links {link}, which does not exist"


def test_the_suite_runs_side_by_side_in_units_that_share_their_fixtures():
    from conftest import unit_of

    grading = "tests/test_grading.py::test_mutant_loses_exactly_its_tests[05-cnns:mutant-lenet-without-padding]"
    assert unit_of(grading) == "tests/test_grading.py:05-cnns"
    assert unit_of("tests/test_grading.py::test_instructor_gets_every_point[05-cnns]") == unit_of(grading)
    assert unit_of("tests/test_grading.py::test_lms_zip_regrading_and_broken_submissions") == \
        "tests/test_grading.py:04-convolutions-by-hand"  # it reuses lesson 04's graded batch
    assert unit_of("tests/test_adversarial.py::test_the_sandbox_hides_the_course_and_the_network") == \
        unit_of("tests/test_adversarial.py::test_broken_notebooks_are_recorded_with_their_reason")
    independent = "tests/test_checks.py::test_grader_fixture[04-convolutions-by-hand:mutant:flipped-kernel]"
    assert unit_of(independent) == independent
