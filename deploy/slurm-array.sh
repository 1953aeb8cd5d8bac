#!/bin/bash
# Grade a class on a Slurm cluster: one array task per shard, one shared PostgreSQL gradebook.
# See deploy/README.md. Release once first:  NBGRADER_DB_URL=... handwritten release <lesson>
#   sbatch --export=ALL,NBGRADER_DB_URL=postgresql://user:password@host/db deploy/slurm-array.sh submissions/
# Submit from the course folder (a clone of the course's repository, on a filesystem the nodes share), with uv
# on PATH (the task gets the submitter's environment). The shard count is the array's size, so options on the
# command line resize it: on a two-core node, `sbatch --array=0-1 --cpus-per-task=1 --mem=2G ...` runs two
# one-worker shards side by side (tests/test_grading_slurm.py runs exactly that on a one-node cluster).
# `sbatch --wait` returns when every task is done, with a failure if any task failed.
# Slurm retries a task only when its node fails. To run failed task 3 of 8 again:
#   sbatch --array=3 --export=ALL,SHARDS=8,NBGRADER_DB_URL=... deploy/slurm-array.sh submissions/
# (without SHARDS it would be shard 3 of an array of one, which does not exist).
#SBATCH --job-name=handwritten-grade
#SBATCH --array=0-7
#SBATCH --cpus-per-task=2
#SBATCH --mem=6G
#SBATCH --time=02:00:00
#SBATCH --output=grade-%a.log
set -euo pipefail
SUBMISSIONS=${1:?usage: sbatch deploy/slurm-array.sh SUBMISSIONS_FOLDER}
: "${NBGRADER_DB_URL:?export the shared gradebook, e.g. postgresql://user:password@host/db}"
# every task runs in the course folder on a shared filesystem: results are recorded per student,
# so a task that is requeued resumes, and nothing is graded twice
cd "${SLURM_SUBMIT_DIR}"
SHARDS=${SHARDS:-$SLURM_ARRAY_TASK_COUNT}
uv run --frozen handwritten grade "$SUBMISSIONS" --workers "${SLURM_CPUS_PER_TASK}" \
    --shard "${SLURM_ARRAY_TASK_ID}/${SHARDS}" \
    --out "autograders/grades-${SLURM_ARRAY_TASK_ID}.csv"
