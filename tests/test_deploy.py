"""The batch-system recipes in deploy/ cannot run here (no cluster), so they are checked for what
they say: every shard index is covered once, and the command each pod or task runs is a valid
`handwritten grade` command line. tests/test_grading_shards.py runs the shards themselves."""

from __future__ import annotations

import re
import shlex

import yaml

from handwritten.cli import build_parser

from conftest import ROOT

DEPLOY = ROOT / "deploy"


def parse(command: str, **env: str):
    """The handwritten command line after the shell substitutes ``env``."""
    for name, value in env.items():
        command = re.sub(r"\$\{?" + name + r"\}?", value, command)
    words = shlex.split(command.replace("\\\n", " "))
    return build_parser().parse_args(words[words.index("handwritten") + 1:])


def test_kubernetes_indexed_job_grades_every_shard_once():
    job = yaml.safe_load((DEPLOY / "kubernetes-job.yaml").read_text())
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["NBGRADER_DB_URL"]["valueFrom"]  # the gradebook's password stays a secret
    shards = [parse(" ".join(container["args"]), JOB_COMPLETION_INDEX=str(i)).shard
              for i in range(spec["completions"])]
    assert shards == [(i, spec["completions"]) for i in range(spec["completions"])]


def test_slurm_array_grades_every_shard_once():
    script = (DEPLOY / "slurm-array.sh").read_text()
    first, last = map(int, re.search(r"#SBATCH --array=(\d+)-(\d+)", script).groups())
    command = script[script.index("uv run"):].split("\n\n")[0]
    count = str(last - first + 1)
    shards = [parse(command, SLURM_ARRAY_TASK_ID=str(i), SHARDS=count, SLURM_CPUS_PER_TASK="2",
                    SUBMISSIONS="submissions").shard for i in range(first, last + 1)]
    assert shards == [(i, last - first + 1) for i in range(first, last + 1)]
    assert "set -euo pipefail" in script and "NBGRADER_DB_URL:?" in script
    assert "SHARDS=${SHARDS:-$SLURM_ARRAY_TASK_COUNT}" in script  # one task submitted again keeps the count


def test_the_grader_image_has_bubblewrap_and_the_locked_environment():
    containerfile = (DEPLOY / "Containerfile").read_text()
    assert "bubblewrap" in containerfile and "uv sync --frozen" in containerfile
