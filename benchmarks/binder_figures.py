"""The Binder and demo figures: what a class on mybinder.org (1 CPU, 2 GB) and an instructor in front of one wait
for, and how much memory each lesson needs.

    uv run --frozen python benchmarks/binder_figures.py [--data full-size|sample] [--runs N]

`measure()` returns one dict per figure, {"what", "value", "unit", "limit", "better"}:

* **the demo's cold start**: from launching `handwritten demo` (Voilà, no kernel running) to the first widget
  drawn in Chromium, best of ``runs`` (limit 10 s); and the same for a page reload on the running server (every
  Voilà page load runs the notebook on a fresh kernel). Without Chromium, to the page fully served over HTTP.
* **peak memory of each lesson's kernel**: every instructor notebook in solutions/ run top to bottom on a fresh
  kernel (nbclient), the resident memory of the kernel and all its child processes sampled every 50 ms, and the
  kernel's own high-water mark (VmHWM) taken at the end; the larger is reported (limit 1024 MB; Binder's limit is
  2 GB). With ``data="full-size"`` (the default) the notebooks run on a dataset of full MNIST's size (60,000 +
  10,000 images, the bundled sample's real digits repeated), as they do in Binder, where full MNIST is in the
  image; full MNIST itself cannot be downloaded here. ``data="sample"`` runs them on the bundled sample.
* **the prefetch step** of binder/postBuild (`python -m handwritten.data --mode full --drop-archives`), timed as a
  whole process. No dataset host is reachable here, so the bundled sample's four files are gzipped and served
  from a local http.server as the mirror (HANDWRITTEN_MNIST_MIRRORS), the module's checksums set to theirs: the
  same code path (torchvision's download and md5 check, sha256 checks, decoding, the tensor cache, dropping the
  archives) on 10,000 images instead of 70,000. The decoded data's size on disk is measured for that run, and
  given for full MNIST as computed from its published file sizes and the cache's format (labelled "computed").
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import hashlib
import http.server
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HANDWRITTEN_DATA", "sample")

from conftest import LESSONS  # noqa: E402

MB = 1024 * 1024
COLD_START_LIMIT = 10.0  # seconds from `make demo` to the first widget on the page
KERNEL_MEMORY_LIMIT = 1024.0  # MB per lesson kernel (Binder: 2 GB for everything)
FULL_RAW_BYTES = {  # MNIST's four files, decoded (their published sizes)
    "train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008,
}


def figure(what: str, value: float, unit: str, limit: float | None = None, better: str = "lower") -> dict:
    return {"what": what, "value": round(float(value), 3), "unit": unit, "limit": limit, "better": better}


# ---------------------------------------------------------------- the demo's cold start


def demo_cold_start(runs: int = 3) -> list[dict]:
    from test_browser_demo import first_render, serve_demo

    if shutil.which("chromium") is None:
        return _demo_served_without_browser(runs)
    from playwright.sync_api import sync_playwright
    from test_lab import CHROMIUM_FLAGS

    cold, reload, cpu, load = [], [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        try:
            for _ in range(runs):
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                load.append(os.getloadavg()[0])
                with serve_demo() as (url, launched, server):
                    cold.append(first_render(page, url) - launched)
                    cpu.append(_cpu_seconds(server.pid))
                    start = time.perf_counter()
                    reload.append(first_render(page, url) - start)
                page.close()
        finally:
            browser.close()
    loads = f"load average {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} cores"
    return [
        figure(f"demo cold start: `handwritten demo` launched to first widget drawn in Chromium (best of {runs}; "
               f"median {statistics.median(cold):.1f} s; {loads})", min(cold), "s", COLD_START_LIMIT),
        figure("CPU time Voilà and its kernel used until then (server and kernel processes, user + system; "
               f"best of {runs}): about the cold start of an idle machine", min(cpu), "s"),
        figure(f"demo page load on a running server to first widget drawn (fresh kernel; best of {runs}; "
               f"median {statistics.median(reload):.1f} s)", min(reload), "s"),
    ]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its live descendants (the Voilà server, its kernels)."""
    import psutil

    total = 0.0
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        for p in (process, *process.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                times = p.cpu_times()
                total += times.user + times.system
    return total


def _demo_served_without_browser(runs: int) -> list[dict]:
    import urllib.request

    from test_browser_demo import serve_demo

    times = []
    for _ in range(runs):
        with serve_demo() as (url, launched, _):
            with urllib.request.urlopen(url, timeout=120) as response:
                response.read()
            times.append(time.perf_counter() - launched)
    return [figure(f"demo cold start: `handwritten demo` launched to the whole page served (no Chromium here; "
                   f"best of {runs})", min(times), "s", COLD_START_LIMIT)]


# ---------------------------------------------------------------- peak memory of each lesson's kernel


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        process = psutil.Process(pid)
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total
    except psutil.Error:
        return 0


def _high_water_mark(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def kernel_peak_mb(notebook: Path, env: dict | None = None) -> tuple[float, float]:
    """(peak MB of the kernel's process tree while ``notebook`` runs on a fresh kernel, seconds it took)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    with tempfile.TemporaryDirectory() as tmp, _environ(env or {}):
        client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": tmp}})
        start = time.perf_counter()
        with client.setup_kernel():
            pid = client.km.provisioner.process.pid
            peak, running = [0], threading.Event()
            running.set()

            def sample():
                while running.is_set():
                    peak[0] = max(peak[0], _tree_rss(pid))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
                peak[0] = max(peak[0], _high_water_mark(pid), _tree_rss(pid))
            finally:
                running.clear()
                sampler.join()
        return peak[0] / MB, time.perf_counter() - start


@contextlib.contextmanager
def _environ(values: dict):
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_full_size_data(folder: Path) -> None:
    """A dataset of full MNIST's size and types in ``folder``, laid out as handwritten.data caches full MNIST
    (the tensor cache with its sha256, and torchvision's raw files): the bundled sample's real digits
    repeated to 60,000 training and 10,000 test images."""
    import torch

    from handwritten import data

    sample = data.load_mnist("sample", quiet=True)

    def repeat(t, n):
        return t.repeat(-(-n // len(t)), *[1] * (t.ndim - 1))[:n].contiguous()

    tensors = {"train_images": repeat(sample.train_images, 60_000), "train_labels": repeat(sample.train_labels, 60_000),
               "test_images": repeat(sample.test_images, 10_000), "test_labels": repeat(sample.test_labels, 10_000)}
    data._check_shapes(tensors)
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / data.CACHE_NAME).write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    (folder / f"{data.CACHE_NAME}.sha256").write_text(f"{digest}  {data.CACHE_NAME}\n")
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, key in zip(data.FILES, ("train_images", "train_labels", "test_images", "test_labels")):
        t = tensors[key].to(torch.uint8)
        header = (0x0800 | t.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in t.shape)
        (raw / name).write_bytes(header + t.numpy().tobytes())


def lesson_memory(data: str = "full-size") -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if data == "full-size":
            write_full_size_data(Path(tmp) / "data")
            env = {"HANDWRITTEN_DATA": "full", "HANDWRITTEN_DATA_DIR": str(Path(tmp) / "data")}
            label = "full-size data, 60,000 + 10,000 images"
        else:
            env, label = {"HANDWRITTEN_DATA": "sample"}, "bundled sample, 8,000 + 2,000 images"
        for lesson in LESSONS:
            peak, seconds = kernel_peak_mb(ROOT / "solutions" / lesson / f"{lesson}.ipynb", env)
            results.append(figure(f"peak memory of lesson {lesson}'s kernel (instructor notebook, {label}; "
                                  f"ran {seconds:.0f} s)", peak, "MB", KERNEL_MEMORY_LIMIT))
    return results


# ---------------------------------------------------------------- the prefetch step


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Mirror(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that hangs up early (torchvision probing a URL) is no news


PREFETCH = """
import sys
from handwritten import data
data.FILES = {files!r}
data.FULL_COUNTS = {counts!r}
sys.exit(data.main(["--mode", "full", "--drop-archives"]))
"""


def prefetch() -> list[dict]:
    from handwritten import data

    raw = data.SAMPLE_ROOT / "MNIST" / "raw"
    sample = data.load_mnist("sample", quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        mirror, cache = Path(tmp) / "mirror", Path(tmp) / "cache"
        mirror.mkdir()
        files = {}
        for name in data.FILES:
            content = (raw / name).read_bytes()
            archive = gzip.compress(content, mtime=0)
            (mirror / f"{name}.gz").write_bytes(archive)
            files[name] = (hashlib.md5(archive).hexdigest(), hashlib.sha256(archive).hexdigest(),
                           hashlib.sha256(content).hexdigest())
        counts = {"train": len(sample.train_labels), "test": len(sample.test_labels)}
        server = _Mirror(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(mirror)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        env = {**os.environ, "HANDWRITTEN_DATA_DIR": str(cache),
               "HANDWRITTEN_MNIST_MIRRORS": f"http://127.0.0.1:{server.server_address[1]}/"}
        try:
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", PREFETCH.format(files=files, counts=counts)], env=env,
                                  capture_output=True, text=True, timeout=600)
            seconds = time.perf_counter() - start
        finally:
            server.shutdown()
            server.server_close()
        if done.returncode != 0:
            raise RuntimeError(f"the prefetch failed:\n{done.stdout}\n{done.stderr}")
        left = [p.name for p in cache.rglob("*.gz")]
        if left:
            raise RuntimeError(f"the prefetch left its archives: {left}")
        decoded = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    return [
        figure(f"prefetch step (postBuild's `python -m handwritten.data --mode full --drop-archives`, whole "
               f"process), the bundled {counts['train'] + counts['test']:,}-image sample from a local mirror",
               seconds, "s"),
        figure("decoded data on disk after that prefetch (tensor cache + raw files, archives dropped)",
               decoded / MB, "MB"),
        figure("decoded full MNIST on disk after postBuild's prefetch (computed: the raw files' published sizes "
               "+ the tensor cache's size for 70,000 images)", full_mnist_decoded_bytes() / MB, "MB"),
    ]


def full_mnist_decoded_bytes() -> int:
    """What full MNIST occupies once prefetched: the four raw files plus the tensor cache, whose size is
    that of torch.save on tensors of full MNIST's shapes and types (computed here, not downloaded)."""
    import torch

    tensors = {"train_images": torch.zeros(60_000, 28, 28, dtype=torch.uint8),
               "train_labels": torch.zeros(60_000, dtype=torch.int64),
               "test_images": torch.zeros(10_000, 28, 28, dtype=torch.uint8),
               "test_labels": torch.zeros(10_000, dtype=torch.int64)}
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    return sum(FULL_RAW_BYTES.values()) + len(buffer.getvalue())


# ---------------------------------------------------------------- all of it


def measure(data: str = "full-size", runs: int = 3) -> list[dict]:
    """Every figure above: the demo's cold start, each lesson kernel's peak memory, the prefetch step."""
    return [*demo_cold_start(runs), *lesson_memory(data), *prefetch()]


def over_limit(figures: list[dict]) -> list[dict]:
    return [f for f in figures if f["limit"] is not None
            and (f["value"] > f["limit"] if f["better"] == "lower" else f["value"] < f["limit"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["full-size", "sample"], default="full-size",
                        help="what the lesson notebooks run on (default: %(default)s, as in Binder)")
    parser.add_argument("--runs", type=int, default=3, help="demo cold starts to take the best of")
    args = parser.parse_args(argv)
    figures = measure(args.data, args.runs)
    for f in figures:
        limit = f"(limit {f['limit']:g} {f['unit']})" if f["limit"] is not None else ""
        print(f"{f['value']:>10.2f} {f['unit']:<3} {limit:<20} {f['what']}")
    over = over_limit(figures)
    if over:
        print("\nOVER THE LIMIT:\n  " + "\n  ".join(f"{f['what']}: {f['value']:g} {f['unit']}" for f in over))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
