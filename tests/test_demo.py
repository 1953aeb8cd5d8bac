"""The instructor demo, headless: demo/demo.ipynb runs top to bottom on a fresh kernel (nbclient), never
trains (a kernel in which any optimiser step or backward pass raises runs it just the same), and builds its
seven widgets, each drawn; `handwritten demo` finds the notebook and starts Voilà on it. (The demo's widgets
without a kernel: tests/widgets/test_demo.py.)"""

from __future__ import annotations

import json
import time

import nbformat
import pytest
from nbclient import NotebookClient

from handwritten import cli

from conftest import ROOT

DEMO = ROOT / "demo" / "demo.ipynb"
CLASSES = ["handwritten-digit-canvas", "handwritten-digit-classifier", "handwritten-kernel-playground",
           "handwritten-filter-viewer", "handwritten-filter-evolution", "handwritten-feature-map-explorer",
           "handwritten-shift-explorer"]

# Run in the kernel before the demo's own cells: training of any kind fails loudly.
NO_TRAINING = """
import torch
def _no_training(*args, **kwargs):
    raise RuntimeError("the demo must not train: it uses the pretrained weights")
torch.optim.Optimizer.step = _no_training
torch.Tensor.backward = _no_training
torch.autograd.backward = _no_training
"""


def test_demo_notebook_is_committed_clean():
    nb = nbformat.read(DEMO, as_version=4)
    nbformat.validate(nb)
    assert "widgets" not in nb.metadata, "saved widget state: strip it (stale state shows 'model not found')"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "commit the demo without outputs"
    source = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    for word in ("fit(", ".backward(", "optim.", "train(", "load_mnist(\"full\")", "download"):
        assert word not in source, f"the demo should never train or download ({word!r})"


@pytest.fixture(scope="module")
def executed():
    nb = nbformat.read(DEMO, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(NO_TRAINING))
    start = time.perf_counter()
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(DEMO.parent)}},
                   store_widget_state=True).execute()
    return nb, time.perf_counter() - start


def test_demo_runs_headless_without_training_and_builds_every_widget(executed):
    nb, seconds = executed
    print(f"demo notebook executed in {seconds:.1f} s (kernel start included)")
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"], [o.get("ename") for o in outputs]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"], "no warnings on the page"
    views = [o.data["application/vnd.jupyter.widget-view+json"]["model_id"] for o in outputs
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == len(CLASSES), "one widget per demo cell"

    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    shown = [state[view]["state"]["_dom_classes"] for view in views]
    assert [c for classes in shown for c in classes if c.startswith("handwritten-")] == CLASSES
    images = [m for m in state.values() if m["model_name"] == "ImageModel"]
    drawn = [b for m in images for b in m.get("buffers", []) if b["path"] == ["value"] and len(b["data"]) > 1000]
    assert len(images) == len(drawn) == len(CLASSES), "every widget drew its picture"
    statuses = [m["state"]["value"] for m in state.values() if m["model_name"] in ("HTMLModel", "LabelModel")]
    assert not [s for s in statuses if s.startswith("⚠")], statuses
    assert any("prediction" in s for s in statuses)
    sliders = [m["state"] for m in state.values() if m["model_name"] in ("IntSliderModel", "FloatSliderModel")]
    assert sliders and all(s["continuous_update"] is False for s in sliders)
    json.dumps(state)  # serialisable, as Voilà needs it


# ---------------------------------------------------------------- handwritten demo


def test_handwritten_demo_serves_the_notebook_with_voila(tmp_path, monkeypatch):
    assert cli.demo_notebook(str(ROOT)) == DEMO
    monkeypatch.chdir(ROOT / "src")
    assert cli.demo_notebook() == DEMO  # found from a sub-folder too
    command = cli.demo_command(DEMO, 8899, browser=False)
    assert command[1:4] == ["-m", "voila", str(DEMO)]
    assert "--Voila.port=8899" in command and "--Voila.open_browser=False" in command
    assert "--VoilaConfiguration.progressive_rendering=True" in command

    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "--no-browser"]) == 2  # no course here: a message, not a traceback
