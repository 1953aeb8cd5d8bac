"""Lessons 03 and 05's promise: every refactoring step trains exactly like the first version.

Lesson 03: every refactoring step trains exactly like the raw-tensor loop.
The lesson trains the same logistic regression nine times, each version replacing hand-written code by a
piece of PyTorch (F.cross_entropy, nn.Module, nn.Linear, torch.optim, TensorDataset, DataLoader, a
validation loop, loss_batch/fit/get_data), from the same initial weights and on the same batches in the
same order, and shows a table of how far each version's per-batch losses got from the raw version's.

These tests run the instructor notebook's cells tagged ``equivalence`` (setup, data, initial weights, the
solutions the chain uses, every version of the training, the table) in one namespace, on the bundled
sample, and check the table's claim with the notebook's own ``max_abs_diff`` and ``TOLERANCE``. They also
prove that the comparison can fail: the same step with a shuffled batch order, or with the learning rate
changed by one part in ten thousand, is caught.

Lesson 05 does the same for the tutorial's CNN: ``Mnist_CNN``, then ``nn.Sequential`` with ``Lambda`` layers,
then the reshaping moved into a ``WrappedDataLoader``, then ``AdaptiveAvgPool2d``, each trained for one epoch of
the course's ``fit`` from the same seed on the same batches (the cells tagged ``equivalence`` of lesson 05).
"""

from __future__ import annotations

import contextlib
import io

import nbformat
import pytest

from conftest import ROOT

LESSON = "03-what-is-torch-nn"
VERSIONS = ["1. raw tensors", "2. F.cross_entropy", "3. nn.Module + nn.Parameter", "4. nn.Linear",
            "5. torch.optim", "6. TensorDataset", "7. DataLoader", "8. validation",
            "9. loss_batch, fit, get_data"]


def _tagged(tag: str, lesson: str = LESSON) -> list:
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    return [cell for cell in nb.cells if cell.cell_type == "code" and tag in cell.metadata.get("tags", [])]


def _run(source: str, ns: dict, name: str, lesson: str = LESSON) -> None:
    # stdout: the notebook's prints; stderr: fit's progress bar (a terminal bar outside Jupyter)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        exec(compile(source, f"<{lesson} {name}>", "exec"), ns)


class Chain:
    """The notebook's equivalence cells, run once; ``rerun`` runs one version again, perturbed."""

    def __init__(self):
        self.cells = _tagged("equivalence")
        self.ns: dict = {}
        for cell in self.cells:
            _run(cell.source, self.ns, cell.id)

    def cell(self, tag: str):
        (cell,) = _tagged(tag)
        return cell

    def diff(self, version: str, reference: str | None = None) -> float:
        trajectories = self.ns["trajectories"]
        return self.ns["max_abs_diff"](trajectories[version], trajectories[reference or self.ns["RAW"]])

    @contextlib.contextmanager
    def rerun(self, tag: str, version: str, replace: tuple[str, str] | None = None, **overrides):
        """Run the cell tagged ``tag`` again, with ``replace`` = (old, new) applied to its source and
        ``overrides`` set in the namespace; yield the new trajectory's max |Δloss| from the raw version;
        then restore the namespace and the original trajectory."""
        cell = self.cell(tag)
        source = cell.source
        if replace:
            old, new = replace
            assert old in source, f"cell {cell.id} no longer contains {old!r}: update this test"
            source = source.replace(old, new)
        saved = {name: self.ns[name] for name in overrides}
        original = self.ns["trajectories"][version]
        self.ns.update(overrides)
        try:
            _run(source, self.ns, f"{cell.id} (perturbed)")
            yield self.diff(version)
        finally:
            self.ns.update(saved)
            self.ns["trajectories"][version] = original


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain()


def test_the_notebook_tags_the_whole_chain():
    tags = {tag for cell in _tagged("equivalence") for tag in cell.metadata["tags"]}
    assert {"equivalence:raw", "equivalence:optim", "equivalence:dataloader", "equivalence:fit",
            "equivalence:table"} <= tags


def test_every_version_ran_on_every_batch(chain):
    ns = chain.ns
    assert list(ns["trajectories"]) == VERSIONS
    batches = ns["epochs"] * ((ns["n"] - 1) // ns["bs"] + 1)
    assert {len(losses) for losses in ns["trajectories"].values()} == {batches}
    assert ns["trajectories"][ns["RAW"]][0] > 2.0   # it starts near -log(1/10) and learns
    assert ns["trajectories"][ns["RAW"]][-1] < 0.7


def test_every_refactoring_step_trains_like_the_raw_tensors(chain):
    tolerance = chain.ns["TOLERANCE"]
    diffs = {version: chain.diff(version) for version in VERSIONS}
    assert diffs == chain.ns["vs_raw"]   # what the notebook's table showed
    assert all(diff <= tolerance for diff in diffs.values()), diffs
    # The tolerance is a margin over float32 rounding, not a fudge: the measured differences are a few
    # units in the last place of a float32 loss (about 2e-7), far below it.
    assert max(diffs.values()) < tolerance / 10, diffs


def test_steps_that_only_move_code_around_are_bit_identical(chain):
    # F.cross_entropy, nn.Linear and torch.optim's update change the arithmetic (its order, so its rounding);
    # nn.Module, TensorDataset, DataLoader, the validation loop and loss_batch/fit/get_data change none of it.
    for before, version in [(1, 2), (4, 5), (5, 6), (6, 7), (7, 8)]:
        assert chain.diff(VERSIONS[version], VERSIONS[before]) == 0.0, VERSIONS[version]


def test_the_raw_version_is_deterministic(chain):
    with chain.rerun("equivalence:raw", "1. raw tensors") as diff:
        assert diff == 0.0


def test_a_shuffled_batch_order_is_caught(chain):
    with chain.rerun("equivalence:dataloader", "7. DataLoader",
                     replace=("DataLoader(train_ds, batch_size=bs)",
                              "DataLoader(train_ds, batch_size=bs, shuffle=True)")) as diff:
        assert diff > 100 * chain.ns["TOLERANCE"]


def test_fit_with_get_datas_shuffled_loader_is_caught(chain):
    with chain.rerun("equivalence:fit", "9. loss_batch, fit, get_data",
                     replace=("fixed_order = DataLoader(train_ds, batch_size=bs)", "fixed_order = train_dl")) as diff:
        assert diff > 100 * chain.ns["TOLERANCE"]


@pytest.mark.parametrize("tag,version", [("equivalence:optim", "5. torch.optim"),
                                         ("equivalence:fit", "9. loss_batch, fit, get_data")])
def test_a_learning_rate_changed_by_one_part_in_ten_thousand_is_caught(chain, tag, version):
    lr = chain.ns["lr"]
    with chain.rerun(tag, version, lr=lr * (1 + 1e-4)) as diff:
        assert diff > chain.ns["TOLERANCE"]
    with chain.rerun(tag, version) as diff:   # and unperturbed, it is the same again
        assert diff <= chain.ns["TOLERANCE"]


# ---------------------------------------------------------------- lesson 05: the tutorial's CNN, refactored

LESSON_05 = "05-cnns"
VERSIONS_05 = ["1. Mnist_CNN", "2. nn.Sequential + Lambda", "3. WrappedDataLoader", "4. AdaptiveAvgPool2d"]


@pytest.fixture(scope="module")
def cnn_chain() -> dict:
    ns: dict = {}
    for cell in _tagged("equivalence", LESSON_05):
        _run(cell.source, ns, cell.id, LESSON_05)
    return ns


def test_lesson_05_tags_the_whole_chain():
    tags = {tag for cell in _tagged("equivalence", LESSON_05) for tag in cell.metadata["tags"]}
    assert {"equivalence:first", "equivalence:sequential", "equivalence:wrapped", "equivalence:adaptive",
            "equivalence:table"} <= tags


def test_every_cnn_version_trains_like_the_first(cnn_chain):
    trajectories, diff = cnn_chain["trajectories"], cnn_chain["max_abs_diff"]
    assert list(trajectories) == VERSIONS_05
    assert {len(t) for t in trajectories.values()} == {209}   # one epoch of the sample's 6,666 training images (the
    #                                                           others are validation digits), in batches of 32
    first = trajectories[VERSIONS_05[0]]
    assert first[0] > 2.0 and sum(first[-20:]) / 20 < 2.0    # it starts near ln 10 and learns
    diffs = {v: diff(trajectories[v], first) for v in VERSIONS_05}
    assert diffs == cnn_chain["vs_first"]                     # what the notebook's table showed
    # Sequential and WrappedDataLoader change no operation: bit for bit the same. The adaptive pooling sums
    # in its own order: float32 rounding, far below the tolerance.
    assert diffs[VERSIONS_05[1]] == diffs[VERSIONS_05[2]] == 0.0
    assert diffs[VERSIONS_05[3]] < cnn_chain["TOLERANCE"] / 10


@pytest.mark.parametrize("change", ["learning rate", "shuffled batches"])
def test_a_real_change_to_the_cnn_is_caught(cnn_chain, change):
    (cell,) = _tagged("equivalence:wrapped", LESSON_05)
    source = cell.source
    saved_lr, saved_losses = cnn_chain["lr"], cnn_chain["trajectories"][VERSIONS_05[2]]
    if change == "learning rate":
        cnn_chain["lr"] = saved_lr * (1 + 1e-4)
    else:
        source = source.replace("WrappedDataLoader(fixed_order, preprocess)",
                                "WrappedDataLoader(DataLoader(train_ds, batch_size=bs, shuffle=True), preprocess)")
        assert source != cell.source, "the cell changed: update this test"
    try:
        _run(source, cnn_chain, f"{cell.id} (perturbed)", LESSON_05)   # its functions look names up in this namespace
        diff = cnn_chain["max_abs_diff"](cnn_chain["trajectories"][VERSIONS_05[2]],
                                         cnn_chain["trajectories"][VERSIONS_05[0]])
    finally:
        cnn_chain["lr"], cnn_chain["trajectories"][VERSIONS_05[2]] = saved_lr, saved_losses
    assert diff > 10 * cnn_chain["TOLERANCE"]
