"""Lesson 05's speed figures: training CNNs on one CPU thread.

* one 60,000-image epoch of LeNet (ReLU, max pooling) and of lesson 06's ConvNet, batches of 64 (and, for ConvNet,
  128: the fast recipe's batch size, which the 8-second target applies to), one thread
  (the bundled sample is tiled to 60,000 images when full MNIST is absent: the arithmetic is the same), timed as
  four times the fastest of its four quarters, since the machine may be shared;
* the race of lesson 05: the notes' recipe for ConvNet (SGD, lr 0.001, momentum 0.9, batches of 64) trains for
  one 60,000-image epoch, and its final test accuracy is the target; then the fast recipe (Adam, one-cycle,
  batches of 128) trains until it reaches that accuracy. Both in the same run, only training timed;
* the peak memory (RSS) of the kernel that runs lesson 05's instructor notebook.

    python benchmarks/cnn_speed.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HANDWRITTEN_DATA", "sample")

import nbformat  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from torch import nn, optim  # noqa: E402

from handwritten import models  # noqa: E402
from handwritten.data import load_mnist  # noqa: E402
from handwritten.train import TensorBatches, evaluate_accuracy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LESSON = "05-cnns"
EPOCH_LIMIT = 8.0      # seconds per 60,000-image epoch of ConvNet
RACE_LIMIT = 5.0       # the fast recipe must reach the notes' accuracy at least this many times sooner
MEMORY_LIMIT = 1024.0  # MB, the notebook's kernel (Binder allows 2 GB)


def _images(n: int = 60_000):
    """n training images as (n, 1, 28, 28) floats (the data tiled if it has fewer), and the test set."""
    mnist = load_mnist(quiet=True)
    x = mnist.train_images.float().div(255).unsqueeze(1)
    y = mnist.train_labels
    repeat = -(-n // len(x))
    x, y = x.repeat(repeat, 1, 1, 1)[:n], y.repeat(repeat)[:n]
    return x, y, mnist.test_images.float().div(255).unsqueeze(1), mnist.test_labels


def epoch_seconds(model: nn.Module, x, y, loss_fn, batch_size: int = 64, parts: int = 4) -> float:
    """Seconds for one epoch of x, as `parts` times the fastest of its `parts` equal slices (the machine is
    shared: the fastest slice is the one least disturbed by others; the work of every slice is the same)."""
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    size = len(x) // parts
    times = []
    for part in range(parts):
        start = time.perf_counter()
        for xb, yb in TensorBatches(x[part * size:(part + 1) * size], y[part * size:(part + 1) * size], batch_size,
                                    shuffle=True):
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
    return parts * min(times)


def _train(net, opt, scheduler, batches, epochs, test, every, target=None):
    """Train, measuring test accuracy every `every` batches off the clock; stop at `target`.
    Return [(training seconds, accuracy)]."""
    clock, points, step = 0.0, [], 0
    for _ in range(epochs):
        for xb, yb in batches:
            net.train()
            start = time.perf_counter()
            loss = F.nll_loss(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
            clock += time.perf_counter() - start
            step += 1
            if step % every == 0 or step == epochs * len(batches):
                points.append((clock, evaluate_accuracy(net, test)))
                if target is not None and points[-1][1] >= target:
                    return points
    return points


def race(x, y, test) -> dict:
    """The notes' recipe for one epoch of x; the fast recipe until it reaches the same test accuracy."""
    torch.manual_seed(0)
    net = models.ConvNet()
    slow = _train(net, optim.SGD(net.parameters(), lr=0.001, momentum=0.9), None,
                  TensorBatches(x, y, 64, shuffle=True), 1, test, every=100)
    target = slow[-1][1]
    slow_time = next(t for t, acc in slow if acc >= target)
    torch.manual_seed(0)
    net = models.ConvNet()
    batches = TensorBatches(x[:8000], y[:8000], 128, shuffle=True)
    epochs = 3
    opt = optim.Adam(net.parameters(), lr=0.01)
    scheduler = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=epochs * len(batches))
    fast = _train(net, opt, scheduler, batches, epochs, test, every=5, target=target)
    reached = next((t for t, acc in fast if acc >= target), None)
    return {"target": target, "slow": slow_time, "fast": reached, "fast_best": max(a for _, a in fast)}


def notebook_memory() -> tuple[float, float, float]:
    """Run the instructor notebook on a fresh kernel; return (its peak RSS, its RSS after the first cell, both in
    MB, and the seconds it took). The first cell imports torch and loads MNIST: most of that memory is PyTorch's
    own libraries (far more with the CUDA builds of the wheels than with conda-forge's CPU build)."""
    nb = nbformat.read(ROOT / "solutions" / LESSON / f"{LESSON}.ipynb", as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(
        "print('RSS_KB', open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"))
    nb.cells.append(nbformat.v4.new_code_cell(
        "import resource\nprint('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
        seconds = time.perf_counter() - start

    def printed(cell, key):
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        return int(text.split(key)[1].split()[0]) / 1024

    return printed(nb.cells[-1], "PEAK_KB"), printed(nb.cells[first + 1], "RSS_KB"), seconds


def measure() -> list[dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y, x_test, y_test = _images()
        test = TensorBatches(x_test, y_test, 500)
        torch.manual_seed(0)
        lenet = epoch_seconds(models.LeNet(nn.ReLU, nn.MaxPool2d), x, y, F.cross_entropy)
        torch.manual_seed(0)
        convnet = epoch_seconds(models.ConvNet(), x, y, F.nll_loss)
        torch.manual_seed(0)
        convnet_128 = epoch_seconds(models.ConvNet(), x, y, F.nll_loss, batch_size=128)
        result = race(x, y, test)
    finally:
        torch.set_num_threads(threads)
    peak, after_setup, seconds = notebook_memory()
    ratio = result["slow"] / result["fast"] if result["fast"] else 0.0
    return [
        {"what": "05 LeNet (ReLU, max pool): one 60,000-image epoch, batch 64, 1 thread", "value": lenet, "unit": "s",
         "limit": None, "better": "lower"},
        {"what": "05 ConvNet (lesson 06): one 60,000-image epoch, batch 64 (the notes'), 1 thread", "value": convnet,
         "unit": "s", "limit": EPOCH_LIMIT, "better": "lower"},
        {"what": "05 ConvNet (lesson 06): one 60,000-image epoch, batch 128 (the fast recipe's), 1 thread",
         "value": convnet_128, "unit": "s", "limit": EPOCH_LIMIT, "better": "lower"},
        {"what": f"05 race to the notes' 1-epoch accuracy ({result['target']:.3f}): notes' recipe", "value":
         result["slow"], "unit": "s", "limit": None, "better": "lower"},
        {"what": "05 race: fast recipe (Adam, one-cycle, batch 128) to the same accuracy", "value":
         result["fast"] if result["fast"] else float("inf"), "unit": "s", "limit": None, "better": "lower"},
        {"what": "05 race: time ratio, notes' recipe / fast recipe", "value": ratio, "unit": "x",
         "limit": RACE_LIMIT, "better": "higher"},
        {"what": "05 instructor notebook: peak memory of its kernel", "value": peak, "unit": "MB",
         "limit": MEMORY_LIMIT, "better": "lower"},
        {"what": "05 instructor notebook: peak memory above its first cell (torch imported, MNIST loaded)",
         "value": peak - after_setup, "unit": "MB", "limit": None, "better": "lower"},
        {"what": "05 instructor notebook: run time on a fresh kernel (with the memory probe)", "value": seconds,
         "unit": "s", "limit": None, "better": "lower"},
    ]


def _ok(row: dict) -> str:
    if row["limit"] is None:
        return ""
    good = row["value"] <= row["limit"] if row["better"] == "lower" else row["value"] >= row["limit"]
    return ("ok" if good else "OVER") + f" (limit {row['limit']:g} {row['unit']})"


if __name__ == "__main__":
    rows = measure()
    for row in rows:
        print(f"{row['what']:<90} {row['value']:9.2f} {row['unit']:<4} {_ok(row)}")
    sys.exit(0)
