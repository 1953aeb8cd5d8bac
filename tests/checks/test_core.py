"""handwritten.checks._core, the toolbox every lesson's checks stand on, and the contract between the
check modules and the notebooks: one seam for student code, public names only, every visible check with
its hidden one."""

from __future__ import annotations

import ast
import contextlib
import importlib
import pkgutil
import re

import nbformat
import pytest
import torch
from torch import nn

import handwritten.checks
import handwritten.reference
from handwritten.checks import _core

from conftest import LESSONS, ROOT

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", re.S)


def modules(package) -> list[str]:
    return sorted(f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__))


TOOLBOX = {"handwritten.checks._core", "handwritten.checks._remote", "handwritten.checks._agent"}
CHECK_MODULES = [name for name in modules(handwritten.checks) if name not in TOOLBOX]
ALL_MODULES = modules(handwritten.checks) + modules(handwritten.reference)


def lesson_checks(lesson: str) -> tuple[object, list[tuple[str, str, str]]]:
    """The check module a lesson's setup cell binds to ``check``, and (test id, visible code, hidden code)
    of every test cell."""
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    setup = next(c.source for c in nb.cells if c.cell_type == "code")
    name = re.search(r"from handwritten\.checks import (\w+) as check", setup).group(1)
    cells = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            hidden = "\n".join(HIDDEN.findall(cell.source))
            cells.append((meta["grade_id"], HIDDEN.sub("", cell.source), hidden))
    return importlib.import_module(f"handwritten.checks.{name}"), cells


def check_calls(code: str) -> list[str]:
    """The names a test cell's code calls on ``check``."""
    return [node.func.attr for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "check"]


# ---------------------------------------------------------------- the contract with the notebooks


@pytest.mark.parametrize("module", ALL_MODULES)
def test_every_module_declares_its_public_names(module):
    found = importlib.import_module(module)
    assert isinstance(getattr(found, "__all__", None), list), f"{module} has no __all__"
    for name in found.__all__:
        assert not name.startswith("_") and hasattr(found, name), (module, name)


@pytest.mark.parametrize("module", sorted(set(ALL_MODULES) - TOOLBOX))
def test_no_module_imports_another_modules_private_names(module):
    """The lessons' checks and the references use the toolbox's public names; the toolbox's three modules
    (the seam, its trusted half, its kernel half) are one piece."""
    path = importlib.import_module(module).__file__
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            private = [alias.name for alias in node.names if alias.name.startswith("_")]
            assert not private, f"{module} imports {private} from {node.module}"


def test_references_never_import_the_checks():
    for module in modules(handwritten.reference):
        source = open(importlib.import_module(module).__file__, encoding="utf-8").read()
        assert "checks" not in {part for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
                                for part in (node.module or "").split(".")}, module


@pytest.mark.parametrize("lesson", LESSONS)
def test_test_cells_call_only_public_checks(lesson):
    module, cells = lesson_checks(lesson)
    for test, visible, hidden in cells:
        for name in check_calls(visible) + check_calls(hidden):
            assert name in module.__all__, f"{lesson}, test {test}: check.{name} is not public"


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_visible_check_has_its_hidden_one_in_a_hidden_region(lesson):
    module, cells = lesson_checks(lesson)
    visible = {name for _, code, _ in cells for name in check_calls(code)}
    hidden = {name for _, _, code in cells for name in check_calls(code)}
    assert visible, f"{lesson} has no visible checks"
    assert not any(name.endswith("_hidden") for name in visible), "a hidden check runs in a visible region"
    assert {f"{name}_hidden" for name in visible} <= hidden, sorted({f"{n}_hidden" for n in visible} - hidden)
    assert {name.removesuffix("_hidden") for name in hidden} <= visible, "a hidden check without a visible one"


@pytest.mark.parametrize("module", CHECK_MODULES)
def test_every_public_check_has_its_pair(module):
    found = importlib.import_module(module)
    checks = [name for name in found.__all__ if callable(getattr(found, name)) and f"{name}_hidden" in found.__all__]
    assert checks, f"{module} exports no visible check with a hidden one"


# ---------------------------------------------------------------- the seam


def student(source: str) -> dict:
    namespace: dict = {}
    exec(source, namespace)
    return namespace


def test_call_passes_unfinished_work_through_unchanged():
    unfinished = student("def corr2d(X, K):\n    raise NotImplementedError()")["corr2d"]
    with pytest.raises(NotImplementedError):
        _core.call("corr2d", unfinished, 1, 2)


@pytest.mark.parametrize("error", ["ValueError('bad shape')", "AssertionError('mine')", "KeyError('k')"])
def test_call_turns_any_other_error_into_a_failed_check_that_names_the_exercise(error):
    broken = student(f"def corr2d(X, K):\n    raise {error}")["corr2d"]
    with pytest.raises(AssertionError, match=r"^corr2d raised \w+Error: .*\nHint: slide the window") as raised:
        _core.call("corr2d", broken, 1, 2, hint="slide the window")
    assert raised.value.__context__ is None  # not chained: the message is not buried under the student's traceback


def test_call_explains_a_common_pytorch_error():
    leaf = student("import torch\ndef step(p):\n    p -= 1\n")["step"]
    with pytest.raises(AssertionError, match="inside `with torch.no_grad\\(\\):`"):
        _core.call("apply_step", leaf, torch.ones(2, requires_grad=True))


def test_call_lets_a_check_word_an_error_it_recognises():
    def explain(error):
        return "a batch is not one image" if isinstance(error, TypeError) else None

    typed = student("def is_3(x):\n    raise TypeError('x')")["is_3"]
    with pytest.raises(AssertionError, match="^a batch is not one image$"):
        _core.call("is_3", typed, 1, explain=explain)
    valued = student("def is_3(x):\n    raise ValueError('x')")["is_3"]
    with pytest.raises(AssertionError, match="^is_3 raised ValueError: x$"):
        _core.call("is_3", valued, 1, explain=explain)


def test_call_captures_what_student_code_prints_and_silences_its_progress_bars(capfd):
    chatty = student("import sys\nfrom tqdm import tqdm\ndef fit(n):\n    print('epoch')\n"
                     "    print('warning', file=sys.stderr)\n    return sum(1 for _ in tqdm(range(n)))")
    assert _core.call("fit", chatty["fit"], 3) == 3
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert chatty["tqdm"].__module__.startswith("tqdm")     # the student's name is put back


def test_call_knows_when_student_code_runs():
    seen = []
    spy = student("def f(probe):\n    return probe()")["f"]
    _core.call("f", spy, lambda: seen.append(_core.in_student_code()))
    assert seen == [True] and not _core.in_student_code()
    broken = student("def f():\n    raise ValueError()")["f"]
    with pytest.raises(AssertionError):
        _core.call("f", broken)
    assert not _core.in_student_code()


def test_call_reaches_methods_and_objects():
    ns = student("class Optim:\n    def __init__(self, lr):\n        self.lr = lr\n"
                 "    def step(self):\n        return self.lr * 2\n    def __len__(self):\n        return 7")
    opt = _core.call("Optim", ns["Optim"], 0.5)
    assert _core.call("Optim.step", opt.step) == 1.0
    assert _core.call("len(Optim(...))", len, opt) == 7


# ---------------------------------------------------------------- comparing and verdicts


def test_visible_and_hidden_success_lines(capsys):
    _core.passed("corr2d", 2)
    _core.passed_hidden("corr2d")
    out = capsys.readouterr().out.splitlines()
    assert out == ["✓ corr2d: 2 public checks passed. Hidden tests run when your work is graded.",
                   "✓ corr2d: hidden tests passed."]


def test_compare_names_the_mistake_a_wrong_answer_matches():
    expected = torch.tensor([1.0, 2.0])
    with pytest.raises(AssertionError, match="it forgot to double"):
        _core.compare("f", torch.tensor([0.5, 1.0]), expected, mistakes=[("it forgot to double", expected / 2)])
    with pytest.raises(AssertionError, match="wrong values"):
        _core.compare("f", torch.tensor([9.0, 9.0]), expected, mistakes=[("it forgot to double", expected / 2)])
    _core.compare("f", expected.clone(), expected)


def test_as_number_accepts_numbers_and_one_element_tensors_only():
    assert _core.as_number("f", torch.tensor([2.5])) == 2.5 and _core.as_number("f", 3) == 3.0
    for wrong, fragment in [(torch.ones(2), "shape (2,)"), ("0.5", "'0.5'"), (True, "True"), (None, "NoneType")]:
        with pytest.raises(AssertionError, match=re.escape(fragment)):
            _core.as_number("f", wrong)


def test_not_hard_coded_goes_through_the_seam():
    constant = student("import torch\ndef f(x):\n    return torch.zeros(2)")["f"]
    with pytest.raises(AssertionError, match="hard-coded"):
        _core.not_hard_coded("f", constant, [(1,), (2,)])
    broken = student("def f(x):\n    raise ValueError('no')")["f"]
    with pytest.raises(AssertionError, match="f raised ValueError"):
        _core.not_hard_coded("f", broken, [(1,), (2,)])


# ---------------------------------------------------------------- seeded inputs, data, training


def test_seeded_inputs_are_the_same_values_whatever_the_dtype():
    a = _core.randn(_core.generator(3), 4, dtype=torch.float32)
    b = _core.randn(_core.generator(3), 4, dtype=torch.float64)
    assert torch.equal(a, b.float()) and b.dtype == torch.float64
    assert torch.equal(_core.rand(_core.generator(1), 3), _core.rand(_core.generator(1), 3))


def test_seeded_restores_the_global_random_state():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    inside = _core.seeded(5, lambda: torch.rand(1))
    assert torch.equal(torch.rand(1), expected) and torch.equal(inside, _core.seeded(5, lambda: torch.rand(1)))


def test_mnist_chooses_digits_ranges_shapes_and_scaling():
    x, y = _core.mnist("test", digit=7, start=2, stop=12, shape=(784,))
    assert x.shape == (10, 784) and x.dtype == torch.float32 and bool((y == 7).all())
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    raw, _ = _core.mnist("test", digit=7, start=2, stop=12, dtype=None)
    assert raw.dtype == torch.uint8 and torch.equal(raw.reshape(10, 784).float() / 255, x)
    with pytest.raises(ValueError, match="split"):
        _core.mnist("validation")


def test_probe_notes_shape_mode_and_gradients():
    probe = _core.Probe(nn.Linear(3, 2))
    probe(torch.ones(4, 3))
    probe.eval()
    with torch.no_grad():
        probe(torch.ones(1, 3))
    assert probe.calls == [((4, 3), True, True), ((1, 3), False, False)]


def _tiny_training(lr: float):
    """A linear classifier of two well-separated blobs, trained by ``lr``-sized steps: 0 never learns."""
    g = _core.generator(0)
    x = torch.cat([_core.randn(g, 50, 2) + 3, _core.randn(g, 50, 2) - 3])
    y = torch.cat([torch.zeros(50, dtype=torch.long), torch.ones(50, dtype=torch.long)])
    fit = student("import torch\ndef fit(model, x, y, lr):\n    opt = torch.optim.SGD(model.parameters(), lr=lr)\n"
                  "    for _ in range(30):\n        loss = torch.nn.functional.cross_entropy(model(x), y)\n"
                  "        opt.zero_grad()\n        loss.backward()\n        opt.step()\n    return 'done'")["fit"]

    def accuracy(model):
        with torch.no_grad():
            return float((model(x).argmax(1) == y).float().mean())

    def make():
        model = nn.Linear(2, 2)
        with torch.no_grad():  # start wrong: everything in class 0 would be 50 %, this is worse
            model.weight.copy_(torch.tensor([[0.0, -1.0], [0.0, 1.0]]))
            model.bias.zero_()
        return model

    return dict(seed=0, make_model=make, accuracy=accuracy, threshold=0.9,
                train=lambda model: _core.call("fit", fit, model, x, y, lr),
                message=lambda run: f"fit: {run.accuracy:.2f} (untrained {run.untrained:.2f})")


def test_train_then_check_passes_a_model_that_learns_and_fails_one_that_does_not():
    checked = []
    run = _core.train_then_check(**_tiny_training(0.5), check_result=lambda run: checked.append(run.result))
    assert run.accuracy >= 0.9 and run.untrained < 0.9 and checked == ["done"]
    with pytest.raises(AssertionError, match=r"^fit: 0\.\d\d \(untrained 0\.\d\d\)$"):
        _core.train_then_check(**_tiny_training(0.0))


def test_train_then_check_refuses_a_threshold_an_untrained_model_reaches():
    settings = _tiny_training(0.5) | {"threshold": 0.0}
    with pytest.raises(AssertionError, match="the check itself is broken"):
        _core.train_then_check(**settings)


def test_references_in_place_puts_the_students_names_back_even_after_a_failure():
    ns = student("def g():\n    return 'mine'\ndef f():\n    return g()")
    with contextlib.suppress(AssertionError), _core.references_in_place(ns["f"], g=lambda: "reference"):
        assert ns["f"]() == "reference"
        raise AssertionError
    assert ns["f"]() == "mine"
