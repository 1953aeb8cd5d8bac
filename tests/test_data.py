"""Tests for handwritten.data, all offline: "full MNIST" is the sample, served from localhost."""

import gzip
import hashlib
import http.server
import shutil
import socket
import threading

import pytest
import torch
import torchvision

from handwritten import data

RAW_NAMES = list(data.FILES)


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDWRITTEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HANDWRITTEN_DATA", raising=False)
    monkeypatch.delenv("HANDWRITTEN_MNIST_MIRRORS", raising=False)
    monkeypatch.setenv("no_proxy", "*")  # the test servers are local, whatever proxy is set
    data._reset()
    yield tmp_path / "data"
    data._reset()


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when we leave: connections are refused


@pytest.fixture(scope="module")
def archives():
    """The sample's idx files gzipped under MNIST's names: a small stand-in for full MNIST."""
    raw = {name: (data.SAMPLE_ROOT / "MNIST" / "raw" / name).read_bytes() for name in RAW_NAMES}
    return raw, {f"{name}.gz": gzip.compress(raw[name], mtime=0) for name in RAW_NAMES}


@pytest.fixture
def server(archives, monkeypatch):
    """Mirrors on localhost: /missing/ answers 404, /corrupt/ serves damaged files, /good/ works."""
    raw, gz = archives
    requests, timeouts = [], set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            timeouts.add(socket.getdefaulttimeout())  # global: what the downloading thread has set
            mirror, _, name = self.path.strip("/").partition("/")
            body = gz.get(name)
            if mirror == "corrupt" and body:
                body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
            if mirror == "missing" or body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep the server off stderr
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    mirrors = f"{base}/missing/ {base}/corrupt/, {base}/good/"  # spaces and commas both separate
    monkeypatch.setenv("HANDWRITTEN_MNIST_MIRRORS", mirrors)
    files = {name: (hashlib.md5(gz[f"{name}.gz"]).hexdigest(),
                    hashlib.sha256(gz[f"{name}.gz"]).hexdigest(),
                    hashlib.sha256(raw[name]).hexdigest()) for name in RAW_NAMES}
    monkeypatch.setattr(data, "FILES", files)
    monkeypatch.setattr(data, "FULL_COUNTS", {"train": 8000, "test": 2000})
    yield requests
    httpd.shutdown()
    httpd.server_close()
    thread.join()
    assert timeouts <= {data.TIMEOUT_S}  # downloads ran under the module's socket timeout


def same(a: data.MNIST, b: data.MNIST) -> bool:
    fields = ("train_images", "train_labels", "test_images", "test_labels")
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in fields)


# --- the bundled sample -------------------------------------------------------------------


def test_sample_is_real_looking_mnist(capsys):
    m = data.load_mnist("sample")
    assert m.kind == "sample" and m.root == data.SAMPLE_ROOT
    assert m.train_images.shape == (8000, 28, 28) and m.test_images.shape == (2000, 28, 28)
    assert m.train_images.dtype == m.test_images.dtype == torch.uint8
    assert m.train_labels.dtype == m.test_labels.dtype == torch.int64
    assert m.train_labels.shape == (8000,) and m.test_labels.shape == (2000,)
    for labels in (m.train_labels, m.test_labels):
        assert torch.bincount(labels, minlength=10).min() > 100  # all ten digits, well represented
        assert labels.max() == 9
    assert m.train_images.min() == 0 and m.train_images.max() == 255
    assert 25 < m.train_images.float().mean() < 40  # MNIST's mean pixel is about 33
    out, err = capsys.readouterr()
    assert out == "MNIST: bundled sample of real MNIST digits, 8,000 train / 2,000 test images\n"
    assert err == ""
    files = sorted(str(p.relative_to(data.SAMPLE_ROOT)) for p in data.SAMPLE_ROOT.rglob("*"))
    assert files == ["MNIST", "MNIST/raw", *sorted(f"MNIST/raw/{n}" for n in RAW_NAMES),
                     "README.md", "SHA256SUMS"]  # and torchvision wrote nothing there


def test_sample_checksums_cover_the_idx_files():
    lines = (data.SAMPLE_ROOT / "SHA256SUMS").read_text().splitlines()
    listed = {name: digest for digest, name in (line.split() for line in lines)}
    assert sorted(listed) == sorted(f"MNIST/raw/{name}" for name in RAW_NAMES)
    for name, digest in listed.items():
        assert hashlib.sha256((data.SAMPLE_ROOT / name).read_bytes()).hexdigest() == digest


def test_torchvision_reads_the_sample_as_is():
    m = data.load_mnist("sample", quiet=True)
    train = torchvision.datasets.MNIST(root=data.SAMPLE_ROOT, train=True)
    test = torchvision.datasets.MNIST(root=data.SAMPLE_ROOT, train=False)
    assert (len(train), len(test)) == (8000, 2000)
    assert torch.equal(train.data, m.train_images) and torch.equal(test.targets, m.test_labels)
    image, label = test[0]
    assert image.size == (28, 28) and label == int(m.test_labels[0])


def test_tampered_sample_is_refused(tmp_path, monkeypatch, capsys):
    copy = tmp_path / "sample"
    shutil.copytree(data.SAMPLE_ROOT, copy)
    target = copy / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    payload = bytearray(target.read_bytes())
    payload[5000] ^= 1
    target.write_bytes(payload)
    monkeypatch.setattr(data, "SAMPLE_ROOT", copy)
    with pytest.raises(data.DataError, match="damaged.*reinstall"):
        data.load_mnist("sample")
    assert capsys.readouterr().err == ""


# --- no network ---------------------------------------------------------------------------


def test_auto_without_network_uses_the_sample_once(closed_port, monkeypatch, capsys):
    monkeypatch.setenv("HANDWRITTEN_MNIST_MIRRORS", f"http://127.0.0.1:{closed_port}/")
    m = data.load_mnist()
    assert m.kind == "sample"
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and err == ""
    assert out.startswith("MNIST: full dataset unavailable (no network?: ")
    assert "8,000 train / 2,000 test" in out and "HANDWRITTEN_DATA=sample" in out

    def no_retry():
        raise AssertionError("retried the download")

    monkeypatch.setattr(data, "_load_full", no_retry)
    assert data.load_mnist() is m
    assert capsys.readouterr().out == m.describe() + "\n"


def test_full_without_network_is_an_error(closed_port, monkeypatch, capsys):
    mirrors = [f"http://127.0.0.1:{closed_port}/a/", f"http://127.0.0.1:{closed_port}/b/"]
    monkeypatch.setenv("HANDWRITTEN_MNIST_MIRRORS", ",".join(mirrors))
    monkeypatch.setenv("HANDWRITTEN_DATA", "full")
    with pytest.raises(data.DataError) as info:
        data.load_mnist()
    message = str(info.value)
    assert "could not be downloaded" in message and "HANDWRITTEN_DATA=sample" in message
    assert all(f"  {url}: " in message for url in mirrors)
    assert capsys.readouterr() == ("", "")


# --- full MNIST, served from localhost ------------------------------------------------------


def test_full_download_skips_bad_mirrors_and_caches(server, env, capsys):
    m = data.load_mnist("full")
    assert m.kind == "full" and m.root == env
    assert same(m, data.load_mnist("sample", quiet=True))  # the served "full MNIST" is the sample
    assert any(p.startswith("/missing/") for p in server)  # tried first, in order
    assert any(p.startswith("/corrupt/") for p in server)
    cache = env / "mnist-full.pt"
    digest = (env / "mnist-full.pt.sha256").read_text().split()[0]
    assert digest == hashlib.sha256(cache.read_bytes()).hexdigest()
    assert not list(env.glob(".mnist-full.pt.*"))  # no temp file left behind
    out, err = capsys.readouterr()
    assert out == f"MNIST: full dataset, 8,000 train / 2,000 test images (cache: {env})\n"
    assert err == ""  # torchvision's progress bars are kept off stderr
    assert socket.getdefaulttimeout() is None  # restored after the download
    # torchvision reads the same folder
    assert len(torchvision.datasets.MNIST(root=data.mnist_root("full"), train=False)) == 2000

    served = len(server)
    data._reset()
    again = data.load_mnist(quiet=True)  # auto mode, fresh memo: reads the cache, no HTTP at all
    assert again.kind == "full" and same(again, m) and len(server) == served
    assert capsys.readouterr() == ("", "")


def test_damaged_raw_file_is_fetched_again(server, env, archives):
    raw = env / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, payload in archives[0].items():  # as if an earlier run had been interrupted
        (raw / name).write_bytes(payload[:-1] if name == "t10k-labels-idx1-ubyte" else payload)
    m = data.load_mnist("full", quiet=True)
    assert m.kind == "full" and len(m.test_labels) == 2000
    assert any(p.endswith("/good/t10k-labels-idx1-ubyte.gz") for p in server)


@pytest.mark.parametrize("damage", ["flip", "truncate", "no sidecar"])
def test_corrupt_cache_is_rebuilt(server, env, capsys, damage):
    m = data.load_mnist("full", quiet=True)
    cache, sidecar = env / "mnist-full.pt", env / "mnist-full.pt.sha256"
    payload = cache.read_bytes()
    if damage == "flip":
        cache.write_bytes(payload[:1000] + bytes([payload[1000] ^ 1]) + payload[1001:])
    elif damage == "truncate":
        cache.write_bytes(payload[: len(payload) // 2])
    else:
        sidecar.unlink()
    served = len(server)
    data._reset()
    again = data.load_mnist("full")
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith(f"MNIST: the cache {cache} was corrupt")
    assert out.splitlines()[1] == again.describe() and err == ""
    assert same(again, m) and cache.read_bytes() == payload
    assert len(server) == served  # rebuilt from the raw files already there, no download


def test_wrong_shapes_in_cache_are_rebuilt(server, env, capsys):
    data.load_mnist("full", quiet=True)
    cache = env / "mnist-full.pt"
    tensors = torch.load(cache, weights_only=True)
    tensors["test_labels"] = tensors["test_labels"][:-1]
    torch.save(tensors, cache)
    (env / "mnist-full.pt.sha256").write_text(hashlib.sha256(cache.read_bytes()).hexdigest())
    data._reset()
    assert len(data.load_mnist("full", quiet=True).test_labels) == 2000
    assert "was corrupt (ValueError: test_labels is (1999,)" in capsys.readouterr().out


def test_file_with_wrong_sha256_is_deleted(server, env, monkeypatch):
    name = "train-labels-idx1-ubyte"
    md5, gz_sha, _ = data.FILES[name]
    monkeypatch.setitem(data.FILES, name, (md5, gz_sha, "0" * 64))
    with pytest.raises(data.DataError, match="sha256 mismatch"):
        data.load_mnist("full")
    assert not (env / "MNIST" / "raw" / name).exists()
    with pytest.raises(data.DataError):  # not a network problem: auto mode must not hide it
        data.load_mnist("auto")


def test_prefetch_drops_archives(server, env, capsys):
    raw = env / "MNIST" / "raw"
    assert data.prefetch().kind == "full" and len(list(raw.glob("*.gz"))) == 4
    data._reset()
    assert data.main(["--drop-archives"]) == 0
    assert sorted(p.name for p in raw.iterdir()) == sorted(RAW_NAMES)
    assert capsys.readouterr().out.startswith("MNIST: full dataset, 8,000 train")


def test_prefetch_command_reports_failure(closed_port, monkeypatch, capsys):
    monkeypatch.setenv("HANDWRITTEN_MNIST_MIRRORS", f"http://127.0.0.1:{closed_port}/")
    assert data.main([]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "could not be downloaded" in err


# --- configuration --------------------------------------------------------------------------


def test_unwritable_data_dir(tmp_path, monkeypatch, capsys):
    (tmp_path / "afile").write_text("a file, so nothing can be created under it, even by root")
    folder = tmp_path / "afile" / "data"
    monkeypatch.setenv("HANDWRITTEN_DATA_DIR", str(folder))
    with pytest.raises(data.DataError, match="HANDWRITTEN_DATA_DIR") as info:
        data.load_mnist("full")
    assert str(folder) in str(info.value)
    m = data.load_mnist("auto")
    assert m.kind == "sample"
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and err == ""
    assert str(folder) in out and "HANDWRITTEN_DATA_DIR" in out


def test_unknown_mode(monkeypatch):
    monkeypatch.setenv("HANDWRITTEN_DATA", "nonsense")
    with pytest.raises(data.DataError, match=r"'nonsense'.*auto\|full\|sample"):
        data.load_mnist()
    with pytest.raises(data.DataError, match=r"auto\|full\|sample"):
        data.load_mnist("everything")
    monkeypatch.setenv("HANDWRITTEN_DATA", " Sample ")
    assert data.data_mode() == "sample"


def test_data_dir_and_mirrors_from_the_environment(tmp_path, monkeypatch):
    assert data.data_dir() == tmp_path / "data"
    monkeypatch.delenv("HANDWRITTEN_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_dir() == tmp_path / "xdg" / "handwritten"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.data_dir() == tmp_path / "home" / ".cache" / "handwritten"

    assert data._mirrors() == data.MIRRORS
    monkeypatch.setenv("HANDWRITTEN_MNIST_MIRRORS", " http://a/ ,http://b/\nhttp://c/ ")
    assert data._mirrors() == ["http://a/", "http://b/", "http://c/"]


def test_memo_and_quiet(capsys):
    first = data.load_mnist("sample")
    assert data.load_mnist("sample", quiet=True) is first
    assert data.mnist_root("sample") == data.SAMPLE_ROOT
    assert data.load_mnist("sample") is first
    assert capsys.readouterr().out == 2 * (first.describe() + "\n")


def test_validation_is_carved_from_training_digits_stratified_and_seeded():
    from handwritten.data import load_mnist, split_validation

    mnist = load_mnist("sample", quiet=True)
    x, y, vx, vy = split_validation(mnist.train_images, mnist.train_labels)
    assert len(x) + len(vx) == len(mnist.train_labels) and abs(len(vx) - len(mnist.train_labels) / 6) <= 10
    for digit in range(10):  # every digit keeps its share, to the image
        share = (mnist.train_labels == digit).sum().item() / 6
        assert abs((vy == digit).sum().item() - share) <= 0.5
    # disjoint: no training image is also a validation image (the images are distinct rows of the training split)
    rows = {bytes(image.numpy()) for image in vx}
    assert not any(bytes(image.numpy()) in rows for image in x[:500])
    again = split_validation(mnist.train_images, mnist.train_labels)
    assert torch.equal(again[3], vy) and torch.equal(again[2], vx)
    other = split_validation(mnist.train_images, mnist.train_labels, seed=1)
    assert not torch.equal(other[2], vx)
    with pytest.raises(ValueError, match="fraction"):
        split_validation(mnist.train_images, mnist.train_labels, fraction=1.5)
