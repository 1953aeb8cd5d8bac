"""Binder, without Docker or conda-forge (neither is reachable from CI): repo2docker's own dry run prints the
Dockerfile Binder would build, and it must install binder/environment.yml and run binder/postBuild and
binder/start; binder/start really sets one thread and hands over; postBuild's student-UI step, run for real
into a folder of its own, leaves exactly the configuration Binder's students get (nbgrader's Validate button
and nothing of the instructor's, a generous validate timeout); the README's badges open lesson 01 in
JupyterLab and the demo in Voilà, at a tag. (test_static.py checks the environment files; test_lab.py runs
lesson 01 in Chromium under this configuration.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from handwritten import data

from conftest import ROOT

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
PLUGINS = {f"@jupyter/nbgrader:{name}" for name in
           ("create-assignment", "formgrader", "course-list", "assignment-list", "menu")}


@pytest.fixture(scope="module")
def dockerfile() -> str:
    """repo2docker's dry run: the Dockerfile, for mybinder.org's user (uid 1000, jovyan)."""
    done = subprocess.run([str(BIN / "repo2docker"), "--no-build", "--debug", "--no-run", "--user-id", "1000",
                           "--user-name", "jovyan", "."], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=ENV)
    assert done.returncode == 0, done.stderr
    assert "FROM " in done.stdout, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_repo2docker_installs_binder_environment_then_runs_post_build_and_start(dockerfile):
    assert "Building conda environment for python=3.12" in dockerfile
    # the conda environment comes from binder/environment.yml, copied in before the rest of the repository
    # (so that a change to the lessons does not rebuild it)...
    copied = dockerfile.index('src/binder/environment.yml ${REPO_DIR}/binder/environment.yml')
    installed = dockerfile.index('env update -p ${NB_PYTHON_PREFIX} --file "binder/environment.yml"')
    repository = dockerfile.index("COPY --chown=1000:1000 src/ ${REPO_DIR}/")
    post_build = dockerfile.index("RUN ./binder/postBuild")
    assert copied < installed < repository < post_build
    user = dockerfile.rfind("\nUSER ", 0, post_build)
    assert dockerfile[user:dockerfile.index("\n", user + 1)] == "\nUSER ${NB_USER}"  # as the student, not root
    assert 'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in dockerfile
    # ...and nothing else: not the top-level environment.yml, no requirements.txt, no pip-installed torch
    assert '--file "environment.yml"' not in dockerfile and "requirements.txt" not in dockerfile
    assert not re.search(r"pip install[^\n]*torch", dockerfile)


def test_start_sets_one_thread_and_runs_the_command():
    done = subprocess.run(["bash", str(ROOT / "binder" / "start"), "env"], capture_output=True, text=True,
                          env={**ENV, "OMP_NUM_THREADS": "8"}, timeout=30)
    assert done.returncode == 0
    variables = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert variables["OMP_NUM_THREADS"] == "1" and variables["HANDWRITTEN_THREADS"] == "1"
    failed = subprocess.run(["bash", str(ROOT / "binder" / "start"), "false"], env=ENV, timeout=30)
    assert failed.returncode == 1  # exec: the command's own exit status, no wrapper in between


def test_post_build_installs_the_package_and_prefetches_full_mnist_s3_first():
    script = (ROOT / "binder" / "postBuild").read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / "binder" / "postBuild")]).returncode == 0
    code = [line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "python -m pip install --no-deps ." in code  # conda's packages untouched
    assert any(re.fullmatch(r"(time )?python -m handwritten.data --mode full --drop-archives", line) for line in code)
    assert data.MIRRORS[0].startswith("https://ossci-datasets.s3.amazonaws.com/")


@pytest.fixture(scope="module")
def student_config(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("jupyter-config")
    done = subprocess.run(["bash", str(ROOT / "binder" / "postBuild"), "--student-ui"], cwd=ROOT, timeout=300,
                          capture_output=True, text=True, env={**ENV, "JUPYTER_CONFIG_DIR": str(folder)})
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def test_post_build_gives_students_only_the_validate_button(student_config):
    page_config = json.loads((student_config / "labconfig" / "page_config.json").read_text())
    assert {name for name, off in page_config["disabledExtensions"].items() if off} == PLUGINS
    assert {name for name, on in page_config["lockedExtensions"].items() if on} == PLUGINS
    assert "@jupyter/nbgrader:validate-assignment" not in page_config["disabledExtensions"]
    server = json.loads((student_config / "jupyter_server_config.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"] == {"nbgrader.server_extensions.formgrader": False}


def test_validate_button_reads_the_raised_timeout(student_config):
    """The Validate button's handler loads nbgrader's config from the Jupyter config path, as it does in Binder."""
    probe = ("from nbgrader.server_extensions.validate_assignment.handlers import ValidateAssignmentHandler as H\n"
             "print(H.load_config(None).Execute.timeout)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT / "src",
                          env={**ENV, "JUPYTER_CONFIG_DIR": str(student_config)})
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) >= 300


def test_readme_badges_open_lesson_01_in_lab_and_the_demo_in_voila_at_a_tag():
    readme = (ROOT / "README.md").read_text()
    badges = re.findall(r"\]\((https://mybinder\.org/v2/gh/[^)\s]+)\)", readme)
    lab = [b for b in badges if "urlpath=lab/tree/" in b]
    voila = [b for b in badges if "urlpath=voila/render/" in b]
    assert lab and voila, badges
    for url in lab + voila:
        match = re.fullmatch(r"https://mybinder\.org/v2/gh/([\w.-]+)/([\w.-]+)/([\w.-]+)\?urlpath=(lab/tree|voila/render)/(\S+)",
                             url)
        assert match, url
        ref, path = match.group(3), match.group(5)
        assert re.fullmatch(r"v\d+(\.\d+)*", ref), f"{url}: point a class at a tag, not {ref!r}"
        assert (ROOT / path).is_file(), f"{url} opens {path}, which does not exist"
    assert any(b.endswith("lab/tree/lessons/01-pixels-and-tensors/01-pixels-and-tensors.ipynb") for b in lab)
    assert any(b.endswith("voila/render/demo/demo.ipynb") for b in voila)
    section = readme[readme.index("## Binder"):]
    section = section[:section.index("\n## ", 1)]
    assert "warm" in section.lower(), "the README should say how an instructor warms the image before class"
