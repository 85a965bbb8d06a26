"""Downloads through pooch, end to end against an HTTP server on 127.0.0.1 (no network needed)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import struct
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from distill.cli import main
from distill.datasets import images, load_dataset, text
from distill.datasets.download import UNVERIFIED_ENV, Remote, extract_tar, fetch
from distill.errors import UserError

from conftest import QUICK

PAYLOAD = b"the bytes of a dataset file\n" * 100
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Handler(http.server.SimpleHTTPRequestHandler):
    """Files from the served folder; ``/truncated`` promises more bytes than it sends."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:10])
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@dataclasses.dataclass
class Server:
    folder: Path
    url: str
    requests: list[str]


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``server.folder`` at ``server.url``."""
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
    httpd.requests = []
    # polled often, so that shutdown() returns at once rather than after serve_forever's 0.5 s poll
    thread = threading.Thread(target=partial(httpd.serve_forever, poll_interval=0.01), daemon=True)
    thread.start()
    yield Server(folder, f"http://127.0.0.1:{httpd.server_address[1]}/", httpd.requests)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_fetch_verifies_and_keeps_the_file(server, tmp_path):
    (server.folder / "file.bin").write_bytes(PAYLOAD)
    dest = tmp_path / "data" / "file.bin"
    assert fetch(Remote((f"{server.url}file.bin",), sha256(PAYLOAD)), dest) == dest
    assert dest.read_bytes() == PAYLOAD
    assert list(dest.parent.iterdir()) == [dest]


def test_md5_hashes_are_accepted(server, tmp_path):
    (server.folder / "file.bin").write_bytes(PAYLOAD)
    fetch(Remote((f"{server.url}file.bin",), "md5:" + hashlib.md5(PAYLOAD).hexdigest()), tmp_path / "file.bin")
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_wrong_hash_is_refused_and_leaves_nothing(server, tmp_path):
    (server.folder / "file.bin").write_bytes(PAYLOAD)
    dest = tmp_path / "data" / "file.bin"
    url = f"{server.url}file.bin"
    with pytest.raises(UserError) as error:
        fetch(Remote((url,), sha256(b"other bytes")), dest)
    message = str(error.value)
    assert "\n" not in message
    assert f"could not download file.bin to {dest.parent}" in message
    assert url in message and "does not match" in message
    assert list(dest.parent.iterdir()) == []


def test_truncated_download_leaves_nothing(server, tmp_path):
    dest = tmp_path / "data" / "file.bin"
    with pytest.raises(UserError, match="could not download file.bin"):
        fetch(Remote((f"{server.url}truncated",), sha256(PAYLOAD)), dest)
    assert list(dest.parent.iterdir()) == []


def test_second_mirror_is_tried_when_the_first_fails(server, tmp_path):
    (server.folder / "second").mkdir()
    (server.folder / "second" / "file.bin").write_bytes(PAYLOAD)
    remote = Remote((f"{server.url}first/file.bin", f"{server.url}second/file.bin"), sha256(PAYLOAD))
    fetch(remote, tmp_path / "file.bin")
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert server.requests == ["/first/file.bin", "/second/file.bin"]


def test_every_failed_mirror_is_named(server, tmp_path):
    urls = (f"{server.url}a/file.bin", "http://127.0.0.1:1/file.bin")  # a 404, then a closed port
    with pytest.raises(UserError) as error:
        fetch(Remote(urls, sha256(PAYLOAD)), tmp_path / "data" / "file.bin")
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "data") in message
    assert f"{urls[0]}: 404" in message and f"{urls[1]}: " in message
    assert not (tmp_path / "data" / "file.bin").exists()


def test_unpinned_file_needs_opt_in(server, tmp_path, monkeypatch):
    (server.folder / "file.bin").write_bytes(PAYLOAD)
    remote = Remote((f"{server.url}file.bin",), None)
    monkeypatch.delenv(UNVERIFIED_ENV, raising=False)
    with pytest.raises(UserError, match=rf"no checksum is pinned for {remote.urls[0]}.*{UNVERIFIED_ENV}=1"):
        fetch(remote, tmp_path / "file.bin")
    assert server.requests == [] and not (tmp_path / "file.bin").exists()
    monkeypatch.setenv(UNVERIFIED_ENV, "1")
    fetch(remote, tmp_path / "file.bin")
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


# --- a dataset end to end -----------------------------------------------------------------------

IDX_SPLITS = {"train": 5, "t10k": 3}


def write_fake_mnist(folder: Path) -> dict[str, np.ndarray]:
    """The four MNIST .gz files under their real names, with a few 3x4 images; returns the arrays."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in IDX_SPLITS.items():
        arrays[f"{split}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 3, 4), dtype=np.uint8)
        arrays[f"{split}-labels-idx1-ubyte"] = rng.integers(0, 10, n).astype(np.uint8)
    for stem, array in arrays.items():
        header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
        (folder / f"{stem}.gz").write_bytes(gzip.compress(header + array.tobytes()))
    return arrays


@pytest.fixture
def served_mnist(server, monkeypatch):
    """Fake MNIST files behind a broken first mirror and a working second, their hashes pinned."""
    (server.folder / "mnist").mkdir()
    arrays = write_fake_mnist(server.folder / "mnist")
    hashes = {stem: sha256((server.folder / "mnist" / f"{stem}.gz").read_bytes()) for stem in arrays}
    mirrors = (f"{server.url}gone/", f"{server.url}mnist/")
    monkeypatch.setattr(images, "MNIST", dataclasses.replace(images.MNIST, mirrors=mirrors, hashes=hashes))
    return arrays


def test_mnist_downloads_and_loads(server, served_mnist, tmp_path):
    root = tmp_path / "root"
    data = load_dataset("mnist", root=root, download=True)
    assert data.train_y.tolist() == served_mnist["train-labels-idx1-ubyte"].tolist()
    assert data.test_y.tolist() == served_mnist["t10k-labels-idx1-ubyte"].tolist()
    pixels = data.train_x * images.MNIST.std[0] + images.MNIST.mean[0]
    np.testing.assert_allclose(pixels[:, 0].numpy(), served_mnist["train-images-idx3-ubyte"] / 255, atol=1e-6)
    raw = root / "MNIST" / "raw"
    assert sorted(path.name for path in raw.iterdir()) == sorted(f"{stem}.gz" for stem in served_mnist)
    requests = len(server.requests)
    load_dataset("mnist", root=root, download=True)
    assert len(server.requests) == requests  # on disk now: nothing is fetched again


def test_mnist_hash_mismatch_through_the_cli(server, served_mnist, tmp_path, monkeypatch, capfd):
    """Exit code 2 and a one-line error, no traceback."""
    broken = dict.fromkeys(images.MNIST.hashes, sha256(b"not these bytes"))
    monkeypatch.setattr(images, "MNIST", dataclasses.replace(images.MNIST, hashes=broken))
    root = tmp_path / "root"
    overrides = [*QUICK, "dataset.name=mnist", f"dataset.root={root}", "dataset.download=true"]
    code = main(["run", "-o", str(tmp_path / "out"), *[arg for o in overrides for arg in ("--set", o)]])
    stderr = capfd.readouterr().err
    error = stderr.splitlines()[-1]
    raw = root / "MNIST" / "raw"
    assert code == 2 and "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    assert error.startswith(f"distill: error: could not download train-images-idx3-ubyte.gz to {raw} (")
    assert f"{server.url}gone/train-images-idx3-ubyte.gz: 404" in error
    assert f"{server.url}mnist/train-images-idx3-ubyte.gz: SHA256 hash of downloaded file" in error
    assert list(raw.iterdir()) == []


# --- the pinned hashes --------------------------------------------------------------------------


def test_pinned_trec_hash_matches_the_exact_copy():
    """TREC_10.label in the shared data folder is byte-identical to the published file."""
    copy = SHARED_DATA / "trec" / "TREC_10.label"
    if not copy.is_file():
        pytest.skip(f"no copy at {copy}")
    assert text.TREC_SOURCES["TREC_10.label"].known_hash == sha256(copy.read_bytes())


def test_extract_corrupt_tar(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"not a tar")
    with pytest.raises(UserError, match="broken.tar.gz"):
        extract_tar(archive, tmp_path)
