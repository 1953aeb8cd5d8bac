"""tools/train_pretrained.py: the shipped weights are checked by what holds on every machine (their checksum,
their recorded accuracy, the recipe's accuracy when retrained), and byte for byte only where it can hold: two
runs on the same machine."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

SCRIPT = ROOT / "tools" / "train_pretrained.py"


def run(code: str) -> str:
    """Run ``code`` in a fresh interpreter with the script imported as ``tool`` (it switches torch to
    deterministic algorithms: not in the test process)."""
    prelude = (f"import importlib.util, sys\nspec = importlib.util.spec_from_file_location('tool', {str(SCRIPT)!r})\n"
               "tool = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(tool)\n")
    done = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("train_pretrained", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recipe_retrains_to_the_shipped_networks_accuracy():
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("ok")
    assert "retrained: test error" in done.stdout and "shipped weights: test error" in done.stdout


def test_two_runs_on_one_machine_give_the_same_bytes():
    out = run("first = tool.train(steps=30)[0]\na, b = tool.serialise(first), tool.serialise(tool.train(steps=30)[0])\n"
              "print(a == b, len(a), first['steps'])")
    same, size, snapshots = out.split(maxsplit=2)
    assert same == "True" and int(size) > 100_000
    assert snapshots.strip() == "[0, 25]"  # it stopped after 30 batches: snapshots every 25, not the whole recipe's


def test_the_shipped_file_matches_its_checksum_and_its_recorded_accuracy(tool):
    shipped, problems = tool.check_file()
    assert problems == []
    assert shipped["test_error"] < 5.0


def test_a_changed_weights_file_is_caught(tool, tmp_path):
    shipped = torch.load(tool.WEIGHTS, weights_only=True)
    shipped["test_error"] = shipped["test_error"] + 1.0          # a record that the weights no longer make
    buffer = io.BytesIO()
    torch.save(shipped, buffer)
    changed = tmp_path / tool.WEIGHTS.name
    changed.write_bytes(buffer.getvalue())
    _, problems = tool.check_file(changed, tool.CHECKSUMS)
    assert any("does not match" in p for p in problems)
    assert any("recorded in the file" in p for p in problems)


def test_a_recipe_that_no_longer_reaches_the_shipped_accuracy_is_caught(tool):
    shipped = torch.load(tool.WEIGHTS, weights_only=True)
    worse = {"record": [(0.0, shipped["record"][-1][1] + tool.TRAIN_MARGIN + 0.5)],
             "test_error": shipped["test_error"] + 0.5}
    problems = tool.compare_training(worse, shipped)
    assert len(problems) == 1 and "validation" in problems[0]
    assert tool.compare_training(shipped, shipped) == []
