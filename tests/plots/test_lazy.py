"""handwritten.plots._lazy, as both packages use it: every name a lesson, the demo, ``handwritten.train`` or a
benchmark uses is there, each module's public names are all exported, and importing the packages imports none
of their modules (nor matplotlib, ipywidgets or torch) until a name is used."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys

import pytest

from handwritten import plots, widgets

from conftest import ROOT

PACKAGES = {"plots": plots, "widgets": widgets}


def used_names() -> set[tuple[str, str]]:
    """(package, name) for every ``plots.name`` and ``widgets.name`` in the lessons, the demo, the package and
    the benchmarks."""
    sources = [p.read_text() for p in [*ROOT.glob("solutions/*/*.ipynb"), ROOT / "demo" / "demo.ipynb"]]
    sources = ["\n".join("".join(cell["source"]) for cell in json.loads(s)["cells"] if cell["cell_type"] == "code")
               for s in sources]
    sources += [p.read_text() for p in [ROOT / "src" / "handwritten" / "train.py", *ROOT.glob("benchmarks/*.py")]]
    return {(m[1], m[2]) for source in sources for m in re.finditer(r"\b(plots|widgets)\.(\w+)", source)}


def test_every_name_the_lessons_the_demo_train_and_the_benchmarks_use_is_exported():
    used = used_names()
    assert ("widgets", "make_kernel_playground") in used and ("plots", "training_history") in used
    missing = sorted(f"{package}.{name}" for package, name in used if name not in PACKAGES[package].__all__)
    assert not missing, missing


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves_and_every_public_function_or_class_is_exported(name):
    package = PACKAGES[name]
    for exported in package.__all__:
        assert getattr(package, exported) is not None
    assert set(package.__all__) <= set(dir(package))
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"{package.__name__}.{module.name}")
        public = {n for n, value in vars(loaded).items() if not n.startswith("_")
                  and (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == loaded.__name__}
        left_out = sorted(public - set(package.__all__))
        assert not left_out, f"{loaded.__name__}'s {left_out} are not in {package.__name__}.__all__"
    with pytest.raises(AttributeError, match="has no attribute 'no_such_picture'"):
        package.no_such_picture  # noqa: B018


def test_a_name_is_its_modules_and_is_kept_once_used():
    assert widgets.KernelPlayground is importlib.import_module("handwritten.widgets.kernels").KernelPlayground
    plots.heatmap  # noqa: B018 - used once,
    assert vars(plots)["heatmap"] is importlib.import_module("handwritten.plots.common").heatmap  # then kept


def test_importing_plots_and_widgets_imports_none_of_their_modules():
    code = ("import sys\nfrom handwritten import plots, widgets\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'ipywidgets', 'torch')"
            " or m.startswith(('handwritten.plots.', 'handwritten.widgets.'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['handwritten.plots._lazy']"
