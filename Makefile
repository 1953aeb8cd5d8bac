# Handwritten. The two commands: `make lab` (open the lessons) and `make test` (run every check).
# Both set everything up from nothing: uv (from PyPI, if it isn't installed) and the locked environment.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/uv/bin/uv)
RUN := $(UV) run --frozen
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_ARGS ?=
SUBMISSIONS ?=
GRADE_ARGS ?=
DEMO_ARGS ?=
# pytest processes side by side (pytest-xdist): `auto` is one per core; 0 runs the suite in this one process
TEST_WORKERS ?= auto
TEST_ARGS ?=

.PHONY: help setup lab test release grade bench lint browser sandbox postgres slurm demo class

help:  ## list the commands
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 10

$(CURDIR)/.tools/uv/bin/uv:
	@echo "uv not found: installing it from PyPI into .tools/uv"
	$(PYTHON) -m venv .tools/uv
	.tools/uv/bin/pip install --quiet uv

# --compile-bytecode: every kernel, grader and test process imports torch; without compiled bytecode (and with
# PYTHONDONTWRITEBYTECODE set, or a read-only sandbox) each one compiles torch's sources again, seconds apiece.
setup: | $(UV)  ## create or update the environment (.venv) from uv.lock
	$(UV) sync --frozen --compile-bytecode

lab: setup  ## open the lessons in JupyterLab
	$(RUN) jupyter lab --ServerApp.root_dir=lessons $(ROOT_FLAG) $(LAB_ARGS)

test: setup  ## run the whole test suite (installs Chromium, bubblewrap, PostgreSQL, Slurm, the hub's proxy for their tests when CI is set)
	@if [ -n "$$CI" ]; then $(MAKE) --no-print-directory browser sandbox postgres slurm; \
		$(MAKE) --no-print-directory $(CHP); fi
	$(RUN) pytest -n $(TEST_WORKERS) $(TEST_ARGS)

browser:  ## install Debian's Chromium for the browser tests (needs root)
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }

sandbox:  ## install Debian's bubblewrap, which grading runs student code in (needs root)
	@command -v bwrap >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq bubblewrap; }

postgres:  ## install Debian's PostgreSQL server, for the shared-gradebook tests (needs root)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq postgresql; }

slurm:  ## install Debian's Slurm (slurmctld, slurmd, sbatch) and munge, for the one-node cluster test (needs root)
	@PATH="$$PATH:/usr/sbin:/sbin"; for daemon in sbatch sinfo slurmctld slurmd munged; do \
		command -v $$daemon >/dev/null 2>&1 || missing=1; done; [ -z "$$missing" ] || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge; }

release: setup  ## regenerate lessons/ from solutions/
	$(RUN) handwritten release

grade: setup  ## grade a class: make grade SUBMISSIONS=path/to/folder-or.zip [GRADE_ARGS="--workers 4 --force"]
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=path/to/folder-or.zip [GRADE_ARGS=...]"; exit 2; }
	$(RUN) handwritten grade "$(SUBMISSIONS)" $(GRADE_ARGS)

demo: setup  ## the instructor demo in Voilà, pretrained, no training [DEMO_ARGS="--port 8866 --no-browser"]
	$(RUN) handwritten demo $(DEMO_ARGS)

CLASS_ARGS ?=
CHP := $(CURDIR)/.tools/chp/node_modules/.bin/configurable-http-proxy
$(CHP):
	@command -v npm >/dev/null 2>&1 || { echo "make class needs Node.js >= 20 and npm (Debian: apt-get install nodejs npm)"; exit 2; }
	npm install --silent --prefix .tools/chp configurable-http-proxy@5

class: setup $(CHP)  ## a JupyterHub for a class on this machine, as root [CLASS_ARGS="--students 20 --port 8000"]
	HANDWRITTEN_CHP=$(CHP) $(RUN) handwritten class $(CLASS_ARGS)

bench: setup  ## measure notebook, grading and operator speed (benchmarks/results/latest.json)
	$(RUN) python benchmarks/run.py

lint: setup  ## ruff
	$(RUN) ruff check .
