"""Train the pretrained ConvNet that ships with the package (src/handwritten/weights/convnet.pt).

    uv run --frozen python tools/train_pretrained.py           # regenerate the weights (and their checksum)
    uv run --frozen python tools/train_pretrained.py --check   # retrain in memory and compare with the file

Lesson 06's network (handwritten.models.ConvNet) trained on the bundled MNIST sample (8,000 training
digits), whatever HANDWRITTEN_DATA says, on one thread with fixed seeds and deterministic algorithms, so one
machine regenerates the file byte for byte every time. Another processor may not: float arithmetic is not
bit-identical across processors (vector widths and fused multiply-adds change the last bits), and over 1,000
SGD steps the last bits grow into other weights. So ``--check`` checks what holds everywhere:

* the shipped file is the one its checksum (``weights/SHA256SUMS``) names: nothing changed it by accident;
* the shipped weights, evaluated here, make the test error recorded in the file (within EVAL_MARGIN);
* the recipe, retrained here, reaches the shipped network's validation and test errors within TRAIN_MARGIN
  percentage points (and the same bytes, when this is the machine that wrote them: then it says so).

Recipe: SGD with momentum 0.9 and learning rate 0.05 (the lesson's), batches of 64, 8 epochs. The validation
set is the first half of the sample's test split (1,000 digits), as the lesson splits it; the other half is
the test set, measured once at the end.

The file holds the final weights and, for the filter-evolution widget, the kernels of both layers every
25 batches (and before training), with the error rates at those points; all as float16.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from handwritten.data import load_mnist  # noqa: E402
from handwritten.models import WEIGHTS, ConvNet  # noqa: E402

SEED = 1
EPOCHS = 8
BATCH_SIZE = 64
LR = 0.05
MOMENTUM = 0.9
SNAPSHOT_EVERY = 25
N_VAL = 1000
TRAIN_MARGIN = 1.0  # percentage points a retrained network's errors may differ from the shipped one's
EVAL_MARGIN = 0.2   # percentage points between the recorded test error and the shipped weights' here
CHECKSUMS = WEIGHTS.with_name("SHA256SUMS")


def error_rate(net, images, labels, batch_size: int = 500) -> float:
    net.eval()
    wrong = 0
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            wrong += int((net(images[i:i + batch_size]).argmax(1) != labels[i:i + batch_size]).sum())
    return 100.0 * wrong / len(labels)


def sample():
    """The bundled sample as the recipe uses it: training images, validation and held-out test images."""
    mnist = load_mnist("sample", quiet=True)
    test_images = mnist.test_images.float()[:, None] / 255
    return (mnist.train_images.float()[:, None] / 255, mnist.train_labels,
            (test_images[:N_VAL], mnist.test_labels[:N_VAL]), (test_images[N_VAL:], mnist.test_labels[N_VAL:]))


def train(steps: int | None = None) -> tuple[dict, str]:
    """The recipe's run (or only its first ``steps`` batches): what the weights file holds, and the recipe."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)
    images, labels, (val_images, val_labels), (held_images, held_labels) = sample()

    net = ConvNet()
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    order = torch.Generator().manual_seed(SEED)
    snapshots, taken, record = [], [], []  # (not `steps`: that is the batches to stop after)
    seen = right = 0

    def snapshot(step):
        nonlocal seen, right
        train_error = 100.0 * (1 - right / seen) if seen else 100.0 - 10.0  # before training: chance
        record.append((round(train_error, 2), round(error_rate(net, val_images, val_labels), 2)))
        snapshots.append([net.conv1.weight.detach().clone().half(), net.conv1.bias.detach().clone().half(),
                          net.conv2.weight.detach().clone().half(), net.conv2.bias.detach().clone().half()])
        taken.append(step)
        seen = right = 0

    snapshot(0)
    step = 0
    for _ in range(EPOCHS):
        permutation = torch.randperm(len(labels), generator=order)
        for start in range(0, len(labels), BATCH_SIZE):
            batch = permutation[start:start + BATCH_SIZE]
            net.train()
            output = net(images[batch])
            loss = F.nll_loss(output, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            right += int((output.argmax(1) == labels[batch]).sum())
            seen += len(batch)
            step += 1
            if step % SNAPSHOT_EVERY == 0:
                snapshot(step)
            if step == steps:
                break
        if step == steps:
            break

    test_error = error_rate(net, held_images, held_labels)
    recipe = (f"ConvNet trained on the bundled MNIST sample (8,000 digits): SGD lr {LR}, momentum {MOMENTUM}, "
              f"batch {BATCH_SIZE}, {EPOCHS} epochs ({step} batches), seed {SEED}. Validation error "
              f"{record[-1][1]:.1f}% (sample test[:{N_VAL}]), test error {test_error:.1f}% "
              f"(sample test[{N_VAL}:]).")
    saved = {
        "state_dict": {name: t.detach().clone().half() for name, t in net.state_dict().items()},
        "snapshots": snapshots,
        "steps": taken,
        "record": record,
        "recipe": recipe,
        "test_error": round(test_error, 2),
    }
    return saved, recipe


def serialise(saved: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    return buffer.getvalue()


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def recorded_checksum(checksums: Path = CHECKSUMS, name: str = WEIGHTS.name) -> str | None:
    """The sha256 that the checksum file records for the weights file ``name``."""
    if not checksums.is_file():
        return None
    for line in checksums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == name:
            return parts[0]
    return None


def check_file(weights: Path = WEIGHTS, checksums: Path = CHECKSUMS) -> tuple[dict | None, list[str]]:
    """The shipped weights, and what is wrong with them by themselves: a checksum that does not match, or a
    test error here that is not the one they record."""
    if not weights.is_file():
        return None, [f"{weights} is missing: run this script without --check to write it"]
    payload = weights.read_bytes()
    problems = []
    if digest(payload) != recorded_checksum(checksums, weights.name):
        problems.append(f"{weights.name} does not match {checksums}: it changed since it was written "
                        f"(regenerate both with this script)")
    shipped = torch.load(io.BytesIO(payload), weights_only=True)
    net = ConvNet()
    net.load_state_dict({name: t.float() for name, t in shipped["state_dict"].items()})
    _, _, _, (held_images, held_labels) = sample()
    here = error_rate(net, held_images, held_labels)
    print(f"shipped weights: test error {here:.2f}% here, {shipped['test_error']:.2f}% recorded")
    if abs(here - shipped["test_error"]) > EVAL_MARGIN:
        problems.append(f"the shipped weights make {here:.2f}% test errors here, not the {shipped['test_error']}% "
                        f"recorded in the file")
    return shipped, problems


def compare_training(saved: dict, shipped: dict) -> list[str]:
    """What is wrong with a retrained run ``saved`` against the ``shipped`` one: errors too far apart."""
    problems = []
    for what, ours, theirs in [("validation", saved["record"][-1][1], shipped["record"][-1][1]),
                               ("test", saved["test_error"], shipped["test_error"])]:
        print(f"retrained: {what} error {ours:.2f}% (shipped {theirs:.2f}%)")
        if abs(ours - theirs) > TRAIN_MARGIN:
            problems.append(f"retrained, the recipe gives {ours:.2f}% {what} errors, the shipped network "
                            f"{theirs:.2f}%: more than {TRAIN_MARGIN} points apart")
    return problems


def check(saved: dict, payload: bytes) -> list[str]:
    """What is wrong with the shipped weights, judged by themselves and against a retrained ``saved``."""
    shipped, problems = check_file()
    if shipped is None:
        return problems
    problems += compare_training(saved, shipped)
    if payload == WEIGHTS.read_bytes():
        print(f"{WEIGHTS.relative_to(ROOT)}: identical, byte for byte (this machine regenerates it exactly)")
    else:
        print(f"{WEIGHTS.relative_to(ROOT)}: not byte-identical here (float arithmetic differs across "
              f"processors); compared by its errors instead")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="retrain and compare with the shipped file instead "
                        "of writing it")
    args = parser.parse_args()
    saved, recipe = train()
    payload = serialise(saved)
    print(recipe)
    print(f"{len(payload):,} bytes, sha256 {digest(payload)}")
    if args.check:
        problems = check(saved, payload)
        for problem in problems:
            print(f"PROBLEM: {problem}")
        print("ok" if not problems else "the shipped weights do not pass the check")
        return 1 if problems else 0
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    WEIGHTS.write_bytes(payload)
    CHECKSUMS.write_text(f"{digest(payload)}  {WEIGHTS.name}\n")
    print(f"written: {WEIGHTS.relative_to(ROOT)} and {CHECKSUMS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
