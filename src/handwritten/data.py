"""MNIST for the lessons: the full dataset when it can be downloaded, else a bundled sample.

    from handwritten.data import load_mnist
    mnist = load_mnist()          # prints one line saying which data is in use
    mnist.train_images.shape      # torch.Size([60000, 28, 28]), uint8

Modes (argument ``mode``, or the environment variable ``HANDWRITTEN_DATA``):

* ``full``: the 70,000 MNIST images, downloaded once into ``data_dir()`` and
  cached there as one file, ``mnist-full.pt``.
* ``sample``: 10,000 real MNIST digits that ship with this package (see
  ``mnist_sample/README.md``). No network, nothing written.
* ``auto`` (the default): ``full`` if it can be had, else ``sample``, with a notice.

Each load prints one line to stdout unless ``quiet=True`` (also when it comes from
this process's memo); a warning, such as a rebuilt cache or the fallback notice,
is printed once even when quiet. Nothing is written to stderr: nbgrader counts
stderr output in a test cell as a failure.

``python -m handwritten.data [--mode auto|full|sample] [--drop-archives]``
fetches the data ahead of time (Binder's postBuild does this).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import pathlib
import re
import socket
import struct
import sys
import tempfile
from dataclasses import dataclass

import torch

from .files import write_atomic

SAMPLE_ROOT = pathlib.Path(__file__).with_name("mnist_sample")
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
# raw file -> (md5 of the .gz, which torchvision checks; sha256 of the .gz; sha256 of the raw file)
FILES = {
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
FULL_COUNTS = {"train": 60_000, "test": 10_000}
MODES = ("auto", "full", "sample")
TIMEOUT_S = 10  # seconds per connect or read: a dead network must not hang a lesson for minutes
CACHE_NAME = "mnist-full.pt"
HINT = ("set HANDWRITTEN_DATA_DIR to a writable folder "
        "(e.g. export HANDWRITTEN_DATA_DIR=$HOME/handwritten-data) or HANDWRITTEN_DATA=sample")


class DataError(RuntimeError):
    """A problem with the data that the user can fix; the message says how."""


class _Unavailable(DataError):
    """Full MNIST cannot be had here (no network, unwritable folder): auto mode uses the sample."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason  # short, for the one-line notice


@dataclass(frozen=True)
class MNIST:
    """The whole dataset as tensors: images uint8 (N, 28, 28), labels int64 (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    kind: str  # "full" or "sample"
    root: pathlib.Path  # pass to torchvision.datasets.MNIST(root=...)

    def summary(self) -> str:
        what = "full dataset" if self.kind == "full" else "bundled sample of real MNIST digits"
        return f"{what}, {len(self.train_labels):,} train / {len(self.test_labels):,} test images"

    def describe(self) -> str:
        cache = f" (cache: {self.root})" if self.kind == "full" else ""
        return f"MNIST: {self.summary()}{cache}"


def split_validation(images: torch.Tensor, labels: torch.Tensor, fraction: float = 1 / 6, seed: int = 0
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Carve a validation set out of training data: ``(train_images, train_labels, valid_images, valid_labels)``.

    Choices (a learning rate, a number of epochs, a model) are made on validation digits; the test split is
    kept for one measurement at the end of a lesson, so that its score is not one the choices were fitted to.
    The split is stratified (each digit keeps its share of the validation set, rounded) and seeded: the same
    ``seed`` gives the same split on every machine, with the bundled sample or full MNIST."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, not {fraction}")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    generator = torch.Generator().manual_seed(seed)
    valid = []
    for digit in labels.unique(sorted=True):
        where = (labels == digit).nonzero().flatten()
        where = where[torch.randperm(len(where), generator=generator)]
        valid.append(where[:round(len(where) * fraction)])
    is_valid = torch.zeros(len(labels), dtype=torch.bool)
    is_valid[torch.cat(valid)] = True
    return images[~is_valid], labels[~is_valid], images[is_valid], labels[is_valid]


_memo: dict[str, MNIST] = {}  # "full" / "sample" -> data, for this process
_failure: _Unavailable | None = None  # why full MNIST failed in auto mode; not retried


def _reset() -> None:
    """Forget what this process loaded (for tests)."""
    global _failure
    _memo.clear()
    _failure = None


def data_dir() -> pathlib.Path:
    if path := os.environ.get("HANDWRITTEN_DATA_DIR"):
        return pathlib.Path(path).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(cache) / "handwritten"


def data_mode() -> str:
    return _check_mode(os.environ.get("HANDWRITTEN_DATA", "auto").strip().lower() or "auto")


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise DataError(f"MNIST: unknown data mode {mode!r}; use one of {'|'.join(MODES)} "
                        "(argument mode= or the environment variable HANDWRITTEN_DATA)")
    return mode


def _mirrors() -> list[str]:
    """HANDWRITTEN_MNIST_MIRRORS (URLs separated by spaces or commas), else MIRRORS."""
    env = os.environ.get("HANDWRITTEN_MNIST_MIRRORS", "")
    return [url for url in re.split(r"[\s,]+", env) if url] or list(MIRRORS)


def _sha256(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_mnist(mode: str | None = None, *, quiet: bool = False) -> MNIST:
    """Load MNIST as tensors; see the module docstring for the modes."""
    global _failure
    mode = _check_mode(mode) if mode is not None else data_mode()
    if mode == "auto" and _failure is None:
        try:
            data = _load_full()
        except _Unavailable as err:
            _failure, data = err, _load_sample()
            print(f"MNIST: full dataset unavailable ({err.reason}); using the {data.summary()}. "
                  "Set HANDWRITTEN_DATA=sample to skip the download attempt.")
            return data  # the notice was this load's line
    elif mode == "full":
        data = _load_full()
    else:  # "sample", or "auto" after full MNIST failed earlier in this process
        data = _load_sample()
    if not quiet:
        print(data.describe())
    return data


def mnist_root(mode: str | None = None) -> pathlib.Path:
    """The folder to pass to torchvision.datasets.MNIST(root=...)."""
    return load_mnist(mode, quiet=True).root


def prefetch(drop_archives: bool = False) -> MNIST:
    """Get full MNIST into the cache (for Binder's postBuild), optionally deleting the .gz files."""
    data = load_mnist("full")
    if drop_archives:
        _drop_archives(data.root)
    return data


def _drop_archives(root: pathlib.Path) -> None:
    # Only downloading needs them: the cache holds the tensors, the raw files stay for torchvision.
    for archive in (root / "MNIST" / "raw").glob("*.gz"):
        archive.unlink()


def _load_sample() -> MNIST:
    if "sample" not in _memo:
        try:
            sums = [line.split() for line in (SAMPLE_ROOT / "SHA256SUMS").read_text().splitlines()]
            bad = [name for want, name in sums if _sha256(SAMPLE_ROOT / name) != want]
            if bad or len(sums) != len(FILES):
                raise ValueError(f"checksum mismatch: {', '.join(bad) or 'SHA256SUMS'}")
            raw = SAMPLE_ROOT / "MNIST" / "raw"
            tensors = [read_idx(raw / name) for name in FILES]
        except (OSError, ValueError, RuntimeError) as err:
            raise DataError(f"MNIST: the bundled sample in {SAMPLE_ROOT} is damaged ({err}); "
                            "reinstall the handwritten package.") from err
        train_images, train_labels, test_images, test_labels = tensors
        _memo["sample"] = MNIST(train_images, train_labels.long(), test_images, test_labels.long(),
                                kind="sample", root=SAMPLE_ROOT)
    return _memo["sample"]


def read_idx(path: pathlib.Path) -> torch.Tensor:
    """Read an IDX file of unsigned bytes (MNIST's format): a big-endian magic number whose last
    byte is the number of dimensions, the dimensions, then the data. torchvision.datasets.MNIST
    reads the same files; reading them here keeps `import torchvision` (3 s) off the sample's path."""
    data = path.read_bytes()
    (magic,) = struct.unpack(">I", data[:4])
    if magic >> 8 != 0x08:
        raise ValueError(f"{path.name} is not an IDX file of unsigned bytes (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def _load_full() -> MNIST:
    if "full" not in _memo:
        root = data_dir()
        tensors = _read_cache(root / CACHE_NAME)
        if tensors is None:
            _check_writable(root)
            tensors = _download(root)
            buffer = io.BytesIO()
            torch.save(tensors, buffer)
            write_atomic(root / CACHE_NAME, buffer.getvalue())
            digest = hashlib.sha256(buffer.getvalue()).hexdigest()
            write_atomic(root / f"{CACHE_NAME}.sha256", f"{digest}  {CACHE_NAME}\n".encode())
        _memo["full"] = MNIST(**tensors, kind="full", root=root)
    return _memo["full"]


def _check_shapes(tensors: dict[str, torch.Tensor]) -> None:
    if sorted(tensors) != ["test_images", "test_labels", "train_images", "train_labels"]:
        raise ValueError(f"unexpected keys {sorted(tensors)}")
    for split, n in FULL_COUNTS.items():
        for key, shape, dtype in ((f"{split}_images", (n, 28, 28), torch.uint8),
                                  (f"{split}_labels", (n,), torch.int64)):
            t = tensors[key]
            if t.shape != shape or t.dtype != dtype:
                raise ValueError(f"{key} is {tuple(t.shape)} {t.dtype}, not {shape} {dtype}")


def _read_cache(cache: pathlib.Path) -> dict[str, torch.Tensor] | None:
    """The cached tensors, or None if there is no cache or it is damaged (then it is deleted)."""
    sidecar = cache.with_name(cache.name + ".sha256")
    if not cache.exists() and not sidecar.exists():
        return None
    try:
        if _sha256(cache) != sidecar.read_text().split()[0]:
            raise ValueError("checksum mismatch")
        tensors = torch.load(cache, weights_only=True)
        _check_shapes(tensors)
        return tensors
    # Unreadable, truncated, tampered or the wrong shape: whatever torch.load raised, rebuild it.
    except Exception as err:  # noqa: BLE001
        print(f"MNIST: the cache {cache} was corrupt ({type(err).__name__}: {err}); "
              "deleting and rebuilding it.")
        for path in (cache, sidecar):
            with contextlib.suppress(OSError):
                path.unlink()
        return None


def _check_writable(root: pathlib.Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as err:
        message = f"MNIST: cannot write to the data folder {root} ({err.strerror or err}); {HINT}."
        raise _Unavailable(message, reason=f"cannot write to {root}; {HINT}") from err


def _download(root: pathlib.Path) -> dict[str, torch.Tensor]:
    """Get the raw files with torchvision (mirrors tried in order, md5 checked); check sha256."""
    import torchvision  # slow to import, and only needed to download

    urls = _mirrors()

    class MNIST(torchvision.datasets.MNIST):  # named so: torchvision uses root/<class name>/raw
        mirrors = urls
        resources = tuple((f"{name}.gz", md5) for name, (md5, _, _) in FILES.items())

    raw = root / "MNIST" / "raw"
    for name, (_, _, want) in FILES.items():  # drop damaged raw files, so they are fetched again
        if (raw / name).exists() and _sha256(raw / name) != want:
            (raw / name).unlink()

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(TIMEOUT_S)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # torchvision's progress bars go to stderr
            train = MNIST(root, train=True, download=True)  # downloads all four files
            test = MNIST(root, train=False, download=True)
    except (RuntimeError, OSError) as err:
        # torchvision words each mirror's failure as "Tried <url>, got:\n<error>".
        tried = re.findall(r"Tried (\S+), got:\n(.*)", str(err)) or [(urls[0], repr(err))]
        lines = "\n".join(f"  {url}: {why}" for url, why in tried)
        raise _Unavailable(
            f"MNIST: the full dataset could not be downloaded into {root}. Mirrors tried:\n"
            f"{lines}\n"
            "Check your network connection, or set HANDWRITTEN_MNIST_MIRRORS to mirrors you can "
            "reach (URLs ending in '/'), or set HANDWRITTEN_DATA=sample to use the bundled sample "
            "of real MNIST digits.", reason=f"no network?: {tried[0][1]}") from err
    finally:
        socket.setdefaulttimeout(previous)

    for name, (_, gz_sha, raw_sha) in FILES.items():
        for path, want in ((raw / name, raw_sha), (raw / f"{name}.gz", gz_sha)):
            if path.exists() and _sha256(path) != want:
                path.unlink()
                raise DataError(f"MNIST: {path} is not the MNIST file it should be (sha256 "
                                "mismatch); it was deleted, so run again to download it afresh.")
    tensors = {"train_images": train.data, "train_labels": train.targets,
               "test_images": test.data, "test_labels": test.targets}
    _check_shapes(tensors)
    return tensors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handwritten.data",
                                     description="Fetch MNIST ahead of time.")
    parser.add_argument("--mode", choices=MODES, default="full", help="default: %(default)s")
    parser.add_argument("--drop-archives", action="store_true",
                        help="delete the downloaded .gz files afterwards")
    args = parser.parse_args(argv)
    try:
        data = load_mnist(args.mode)
        if args.drop_archives and data.kind == "full":
            _drop_archives(data.root)
    except DataError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
