"""Train the pretrained ConvNet that ships with the package (src/handwritten/weights/convnet.pt).

    uv run --frozen python tools/train_pretrained.py           # regenerate the weights
    uv run --frozen python tools/train_pretrained.py --check   # regenerate in memory, compare with the file

Lesson 06's network (handwritten.models.ConvNet) trained on the bundled MNIST sample (8,000 training
digits), whatever HANDWRITTEN_DATA says, on one thread with fixed seeds, so the file comes out byte for
byte the same each time. Recipe: SGD with momentum 0.9 and learning rate 0.05 (the lesson's), batches of
64, 8 epochs. The validation set is the first half of the sample's test split (1,000 digits), as the
lesson splits it; the other half is the test set, measured once at the end.

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


def error_rate(net, images, labels, batch_size: int = 500) -> float:
    net.eval()
    wrong = 0
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            wrong += int((net(images[i:i + batch_size]).argmax(1) != labels[i:i + batch_size]).sum())
    return 100.0 * wrong / len(labels)


def train() -> tuple[dict, str]:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)
    mnist = load_mnist("sample", quiet=True)
    images = mnist.train_images.float()[:, None] / 255
    labels = mnist.train_labels
    test_images = mnist.test_images.float()[:, None] / 255
    val_images, val_labels = test_images[:N_VAL], mnist.test_labels[:N_VAL]
    held_images, held_labels = test_images[N_VAL:], mnist.test_labels[N_VAL:]

    net = ConvNet()
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    order = torch.Generator().manual_seed(SEED)
    snapshots, steps, record = [], [], []
    seen = right = 0

    def snapshot(step):
        nonlocal seen, right
        train_error = 100.0 * (1 - right / seen) if seen else 100.0 - 10.0  # before training: chance
        record.append((round(train_error, 2), round(error_rate(net, val_images, val_labels), 2)))
        snapshots.append([net.conv1.weight.detach().clone().half(), net.conv1.bias.detach().clone().half(),
                          net.conv2.weight.detach().clone().half(), net.conv2.bias.detach().clone().half()])
        steps.append(step)
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

    test_error = error_rate(net, held_images, held_labels)
    recipe = (f"ConvNet trained on the bundled MNIST sample (8,000 digits): SGD lr {LR}, momentum {MOMENTUM}, "
              f"batch {BATCH_SIZE}, {EPOCHS} epochs ({step} batches), seed {SEED}. Validation error "
              f"{record[-1][1]:.1f}% (sample test[:{N_VAL}]), test error {test_error:.1f}% "
              f"(sample test[{N_VAL}:]).")
    saved = {
        "state_dict": {name: t.detach().clone().half() for name, t in net.state_dict().items()},
        "snapshots": snapshots,
        "steps": steps,
        "record": record,
        "recipe": recipe,
        "test_error": round(test_error, 2),
    }
    return saved, recipe


def serialise(saved: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped file instead of writing it")
    args = parser.parse_args()
    saved, recipe = train()
    payload = serialise(saved)
    digest = hashlib.sha256(payload).hexdigest()
    print(recipe)
    print(f"{len(payload):,} bytes, sha256 {digest}")
    if args.check:
        shipped = WEIGHTS.read_bytes() if WEIGHTS.exists() else b""
        same = shipped == payload
        print(f"{WEIGHTS.relative_to(ROOT)}: {'identical' if same else 'DIFFERENT'}")
        return 0 if same else 1
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    WEIGHTS.write_bytes(payload)
    print(f"written: {WEIGHTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
