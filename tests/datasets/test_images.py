"""The dataset registry and the image readers (distill.datasets.images), on the bundled digits
and on tiny files written here; SVHN's .mat files are test_matlab's, resizing test_reshape's."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import hashlib
import pickle
import re
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from distill.datasets import DATASETS, ArrayDataset, images, load_dataset
from distill.errors import UserError

from .util import assert_pixels, flip_byte, unnormalise

RNG = np.random.default_rng(0)
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def sha256_of(path: Path) -> str:
    """``path``'s hash as pooch takes it."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


# --- registry -----------------------------------------------------------------------------


def test_registry_names():
    assert set(DATASETS) == {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "usps", "imdb", "sst5", "trec6", "trec50"}


def test_unknown_name_suggests_closest():
    with pytest.raises(UserError, match="unknown dataset 'mnsit'.*did you mean 'mnist'"):
        load_dataset("mnsit")


# --- digits -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> ArrayDataset:
    return load_dataset("digits")


def test_digits_shapes(digits):
    assert digits.name == "digits"
    assert digits.train_x.shape == (1437, 1, 8, 8) and digits.test_x.shape == (360, 1, 8, 8)
    assert digits.train_y.shape == (1437,) and digits.test_y.shape == (360,)
    assert digits.train_x.dtype == torch.float32 and digits.train_y.dtype == torch.int64
    assert digits.input_shape == (1, 8, 8)
    assert digits.num_classes == 10 and digits.class_names == tuple("0123456789")


def test_digits_normalised_with_train_statistics(digits):
    assert len(digits.mean) == len(digits.std) == 1
    assert abs(digits.train_x.mean().item()) < 1e-5
    assert digits.train_x.std(unbiased=False).item() == pytest.approx(1, abs=1e-5)
    pixels = unnormalise(torch.cat([digits.train_x, digits.test_x]), digits)
    assert pixels.min().item() == pytest.approx(0, abs=1e-6) and pixels.max().item() == pytest.approx(1, abs=1e-5)


def test_digits_split_is_a_stratified_partition(digits):
    full = load_digits()
    pixels = unnormalise(torch.cat([digits.train_x, digits.test_x]), digits).reshape(len(full.target), -1)
    rows = sorted(map(tuple, np.round(pixels.numpy() * 16).astype(int)))
    assert rows == sorted(map(tuple, full.data.astype(int)))
    per_class = np.bincount(full.target)
    assert np.all(np.abs(digits.test_y.bincount().numpy() - 0.2 * per_class) <= 1)


def test_digits_deterministic_and_needs_no_root(digits, tmp_path):
    again = load_dataset("digits", root=tmp_path / "nowhere")
    assert torch.equal(again.train_x, digits.train_x) and torch.equal(again.test_y, digits.test_y)
    assert again.mean == digits.mean and again.std == digits.std


# --- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    path = path.with_name(path.name + ".gz") if gz else path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_idx_dataset(raw: Path, gz: bool) -> dict[str, np.ndarray]:
    arrays = {
        "train-images-idx3-ubyte": RNG.integers(0, 256, (5, 3, 4), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([3, 1, 4, 1, 5], np.uint8),
        "t10k-images-idx3-ubyte": RNG.integers(0, 256, (2, 3, 4), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([9, 2], np.uint8),
    }
    for stem, array in arrays.items():
        write_idx(raw / stem, array, gz)
    return arrays


def assert_idx_dataset(data: ArrayDataset, arrays: dict[str, np.ndarray]) -> None:
    assert data.input_shape == (1, 3, 4) and data.num_classes == 10
    assert_pixels(data.train_x, data, arrays["train-images-idx3-ubyte"][:, None] / 255)
    assert_pixels(data.test_x, data, arrays["t10k-images-idx3-ubyte"][:, None] / 255)
    assert data.train_y.dtype == torch.int64
    assert data.train_y.tolist() == [3, 1, 4, 1, 5] and data.test_y.tolist() == [9, 2]


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_datasets(tmp_path, name, folder, gz):
    arrays = make_idx_dataset(tmp_path / folder / "raw", gz)
    data = load_dataset(name, root=tmp_path)
    assert_idx_dataset(data, arrays)
    assert data.name == name
    assert data.mean == ((0.1307,) if name == "mnist" else (0.2860,))
    assert (data.class_names[0] == "0") == (name == "mnist")


def test_read_idx_other_types(tmp_path):
    array = np.arange(-6, 6, dtype=np.int32).reshape(2, 3, 2)
    path = write_idx(tmp_path / "ints", array, gz=False)
    np.testing.assert_array_equal(images.read_idx(path), array)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "magic"),
        (b"\x00\x01\x08\x01\x00\x00\x00\x02ab", "magic"),
        (b"\x00\x00\x08\x03\x00\x00", "header"),
        (idx_bytes(np.zeros((2, 3, 4), np.uint8))[:-1], "expected"),
        (idx_bytes(np.zeros((2, 3, 4), np.uint8)) + b"x", "expected"),
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path, content, reason):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(UserError, match=reason) as error:
        images.read_idx(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("content", [gzip.compress(idx_bytes(np.zeros((9, 9), np.uint8)))[:-12], b"not gzip"])
def test_read_idx_rejects_corrupt_gzip(tmp_path, content):
    path = tmp_path / "bad-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(UserError, match="corrupt") as error:
        images.read_idx(path)
    assert str(path) in str(error.value)


def test_mnist_label_count_mismatch_names_the_file(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    make_idx_dataset(raw, gz=False)
    labels = write_idx(raw / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], np.uint8), gz=False)
    with pytest.raises(UserError, match="expected 2 labels") as error:
        load_dataset("mnist", root=tmp_path)
    assert str(labels) in str(error.value)


@pytest.mark.parametrize(
    ("stem", "array", "reason"),
    [
        ("train-labels-idx1-ubyte", np.array([3, 1, 12, 1, 5], np.uint8), "label 12 is not one of the classes 0..9"),
        ("t10k-labels-idx1-ubyte", np.array([9, 10], np.uint8), "label 10 is not one of the classes 0..9"),
        ("train-labels-idx1-ubyte", np.array([3, 1, -2, 1, 5], np.int32), "expected 5 labels \\(uint8\\), found >i4"),
        ("train-images-idx3-ubyte", np.zeros((5, 3, 4), np.int32), "expected uint8 images"),
        ("train-images-idx3-ubyte", np.zeros((5, 1, 3, 4), np.uint8), "expected uint8 images \\[N, H, W\\]"),
        ("train-images-idx3-ubyte", np.zeros((0, 3, 4), np.uint8), "no size 0"),
        ("t10k-images-idx3-ubyte", np.zeros((2, 4, 4), np.uint8), "test images are \\(1, 4, 4\\) .* train images are \\(1, 3, 4\\)"),
    ],
)
def test_bad_idx_contents_name_the_file(tmp_path, stem, array, reason):
    raw = tmp_path / "MNIST" / "raw"
    make_idx_dataset(raw, gz=False)
    path = write_idx(raw / stem, array, gz=False)
    with pytest.raises(UserError, match=reason) as error:
        load_dataset("mnist", root=tmp_path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_corrupt_error_is_one_line():
    assert str(images.corrupt_error(Path("f.mat"), "first\n  second")).startswith("cannot read f.mat: first second;")


# --- CIFAR ------------------------------------------------------------------------------------


def write_pickle(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(content))


def make_cifar10(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Five train batches of two images and a test batch of three; returns (all images, all labels)."""
    pixels = RNG.integers(0, 256, (13, 3072), dtype=np.uint8)
    labels = RNG.integers(0, 10, 13)
    for i in range(5):
        rows = slice(2 * i, 2 * i + 2)
        write_pickle(folder / f"data_batch_{i + 1}", {"data": pixels[rows], "labels": labels[rows].tolist()})
    write_pickle(folder / "test_batch", {"data": pixels[10:], "labels": labels[10:].tolist()})
    write_pickle(folder / "batches.meta", {"label_names": [f"class{k}" for k in range(10)], "num_vis": 3072})
    return pixels.reshape(-1, 3, 32, 32) / 255, labels


def test_cifar10(tmp_path):
    pixels, labels = make_cifar10(tmp_path / "cifar-10-batches-py")
    data = load_dataset("cifar10", root=tmp_path)
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert data.class_names[3] == "class3" and data.mean == (0.4914, 0.4822, 0.4465)
    assert_pixels(data.train_x, data, pixels[:10])
    assert_pixels(data.test_x, data, pixels[10:])
    assert data.train_y.tolist() == labels[:10].tolist() and data.test_y.tolist() == labels[10:].tolist()


def test_cifar100_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    pixels = RNG.integers(0, 256, (4, 3072), dtype=np.uint8)
    write_pickle(folder / "train", {"data": pixels[:3], "fine_labels": [99, 0, 42], "coarse_labels": [19, 0, 7]})
    write_pickle(folder / "test", {"data": pixels[3:], "fine_labels": [7], "coarse_labels": [1]})
    write_pickle(folder / "meta", {"fine_label_names": [f"f{k}" for k in range(100)], "coarse_label_names": ["c"]})
    data = load_dataset("cifar100", root=tmp_path)
    assert data.num_classes == 100 and data.class_names[99] == "f99"
    assert data.train_y.tolist() == [99, 0, 42] and data.test_y.tolist() == [7]
    assert_pixels(data.test_x, data, pixels[3:].reshape(1, 3, 32, 32) / 255)


@pytest.mark.parametrize("content", [b"garbage", pickle.dumps({"labels": [1]}), pickle.dumps([1, 2])])
def test_corrupt_cifar_batch_names_the_file(tmp_path, content):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    (folder / "data_batch_3").write_bytes(content)
    with pytest.raises(UserError) as error:
        load_dataset("cifar10", root=tmp_path)
    assert str(folder / "data_batch_3") in str(error.value)


PIXELS = RNG.integers(0, 256, (2, 3072), dtype=np.uint8)


@pytest.mark.parametrize(
    ("batch", "reason"),
    [
        ({"data": PIXELS, "labels": [1, 10]}, "label 10 is not one of the classes 0..9"),
        ({"data": PIXELS, "labels": [-1, 2]}, "label -1 is not one"),
        ({"data": PIXELS, "labels": [1.5, 2]}, "label 1.5 is not one"),
        ({"data": PIXELS, "labels": ["1", "2"]}, "labels must be numbers, found <U1"),
        ({"data": PIXELS, "labels": [True, False]}, "labels must be numbers, found bool"),
        ({"data": PIXELS, "labels": [1, 2**70]}, "labels must be numbers, found object"),
        ({"data": PIXELS, "labels": None}, "2 images but labels of shape \\(\\)"),
        ({"data": PIXELS, "labels": [[1], [2]]}, "2 images but labels of shape \\(2, 1\\)"),
        ({"data": PIXELS, "labels": [[1, 2], 3]}, "labels are not a flat list of numbers"),
        ({"data": PIXELS * 1.5, "labels": [1, 2]}, "expected 'data' as a uint8 array \\[N, 3072\\], found float64"),
        ({"data": [[300] * 3072, [1] * 3072], "labels": [1, 2]}, "found list"),
        ({"data": PIXELS.reshape(-1), "labels": [1, 2]}, "found uint8 \\(6144,\\)"),
        ({"data": PIXELS.reshape(2, 32, 32, 3), "labels": [1, 2]}, "found uint8 \\(2, 32, 32, 3\\)"),
        ({"data": PIXELS.tobytes(), "labels": [1, 2]}, "found bytes"),
        ({"data": PIXELS[:0], "labels": []}, "the batch holds no images"),
        ({"labels": [1]}, "expected the keys 'data' and 'labels'"),
    ],
)
def test_bad_cifar_batch_contents_name_the_file(tmp_path, batch, reason):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    write_pickle(folder / "data_batch_2", batch)
    with pytest.raises(UserError, match=reason) as error:
        load_dataset("cifar10", root=tmp_path)
    assert str(folder / "data_batch_2") in str(error.value)


def test_cifar100_label_range_is_100_classes(tmp_path):
    folder = tmp_path / "cifar-100-python"
    write_pickle(folder / "train", {"data": PIXELS, "fine_labels": [99, 100]})
    write_pickle(folder / "test", {"data": PIXELS[:1], "fine_labels": [7]})
    write_pickle(folder / "meta", {"fine_label_names": [f"f{k}" for k in range(100)]})
    with pytest.raises(UserError, match=f"{folder / 'train'}: label 100 is not one of the classes 0..99"):
        load_dataset("cifar100", root=tmp_path)


@pytest.mark.parametrize("names", [5, ["a", "b"], [b"x%d" % k for k in range(10)], {"a": 1}, None])
def test_bad_cifar_class_names_name_the_file(tmp_path, names):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    write_pickle(folder / "batches.meta", {"label_names": names} if names is not None else {"num_vis": 3072})
    with pytest.raises(UserError, match="expected 'label_names' to be a list of 10 class names") as error:
        load_dataset("cifar10", root=tmp_path)
    assert str(folder / "batches.meta") in str(error.value)


def test_cifar_missing_file_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(folder)
    (folder / "test_batch").unlink()
    with pytest.raises(UserError, match="download") as error:
        load_dataset("cifar10", root=tmp_path)
    assert str(folder / "test_batch") in str(error.value)


# --- USPS -------------------------------------------------------------------------------------


def write_usps(path: Path, labels: list[int], values: np.ndarray) -> None:
    """libsvm lines ``label 1:v1 ... 256:v256`` (feature 7 omitted in the first row: sparse zero)."""
    lines = []
    for row, (label, features) in enumerate(zip(labels, values, strict=True)):
        pairs = [f"{k + 1}:{v:.6f}" for k, v in enumerate(features) if not (row == 0 and k == 6)]
        lines.append(f"{label} " + " ".join(pairs))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))


def test_usps(tmp_path):
    values = RNG.uniform(-1, 1, (3, 256))
    write_usps(tmp_path / "USPS" / "usps.bz2", [1, 10, 5], values)
    write_usps(tmp_path / "USPS" / "usps.t.bz2", [2], values[:1])
    data = load_dataset("usps", root=tmp_path)
    assert data.input_shape == (1, 16, 16) and data.num_classes == 10
    assert data.train_y.tolist() == [0, 9, 4] and data.test_y.tolist() == [1]
    values[0, 6] = 0
    expected = ((values + 1) / 2).reshape(3, 1, 16, 16)
    np.testing.assert_allclose(unnormalise(data.train_x, data).numpy(), expected, atol=1e-5)
    assert unnormalise(data.train_x, data)[0, 0, 0, 6].item() == pytest.approx(0.5)


USPS_BZ2 = bz2.compress(b"1 1:0.5 2:-0.5\n2 3:1\n")


@pytest.mark.parametrize(
    "content",
    [
        b"garbage",
        bz2.compress(b"1 1:0.5 x:y\n"),
        bz2.compress(b"11 1:0.5\n"),
        bz2.compress(b"1 1:nan\n"),
        bz2.compress(b"1 1:inf\n"),
        bz2.compress(b"1 1:7\n"),  # values are in [-1, 1]
        bz2.compress(b""),  # no samples
        b"",
        USPS_BZ2[:-10],  # truncated
        flip_byte(USPS_BZ2, 20),
    ],
    ids=["garbage", "bad index", "label 11", "nan", "inf", "value 7", "no samples", "empty", "truncated", "flipped"],
)
def test_corrupt_usps_names_the_file(tmp_path, content):
    write_usps(tmp_path / "USPS" / "usps.bz2", [1], np.zeros((1, 256)))
    bad = tmp_path / "USPS" / "usps.t.bz2"
    bad.write_bytes(content)
    with pytest.raises(UserError) as error:
        load_dataset("usps", root=tmp_path)
    assert str(bad) in str(error.value)


# --- missing data and downloads ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "looked_in"),
    [
        ("mnist", "MNIST/raw"),
        ("fashion_mnist", "FashionMNIST/raw"),
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("svhn", "SVHN"),
        ("usps", "USPS"),
    ],
)
def test_missing_dataset_names_folder_and_download_option(tmp_path, name, looked_in):
    with pytest.raises(UserError, match="dataset.download: true") as error:
        load_dataset(name, root=tmp_path)
    assert str(tmp_path / looked_in) in str(error.value)
    assert not any(tmp_path.iterdir())


def test_mnist_download(tmp_path, monkeypatch, file_urls):
    mirror = tmp_path / "mirror"
    arrays = make_idx_dataset(mirror, gz=True)
    hashes = {stem: sha256_of(mirror / f"{stem}.gz") for stem in IDX_STEMS}
    urls = ((tmp_path / "down").as_uri() + "/", mirror.as_uri() + "/")
    monkeypatch.setattr(images, "MNIST", dataclasses.replace(images.MNIST, mirrors=urls, hashes=hashes))
    root = tmp_path / "root"
    assert_idx_dataset(load_dataset("mnist", root=root, download=True), arrays)
    assert sorted(path.name for path in (root / "MNIST" / "raw").iterdir()) == sorted(f"{s}.gz" for s in IDX_STEMS)


def test_mnist_download_hash_mismatch(tmp_path, monkeypatch, file_urls):
    mirror = tmp_path / "mirror"
    make_idx_dataset(mirror, gz=True)
    hashes = dict.fromkeys(IDX_STEMS, "md5:" + "0" * 32)
    mnist = dataclasses.replace(images.MNIST, mirrors=(mirror.as_uri() + "/",), hashes=hashes)
    monkeypatch.setattr(images, "MNIST", mnist)
    with pytest.raises(UserError, match="could not download train-images-idx3-ubyte.gz .*does not match"):
        load_dataset("mnist", root=tmp_path / "root", download=True)
    assert list((tmp_path / "root" / "MNIST" / "raw").iterdir()) == []


def test_cifar10_download_extracts_archive(tmp_path, monkeypatch, file_urls):
    source = tmp_path / "source"
    pixels, labels = make_cifar10(source / "cifar-10-batches-py")
    archive = tmp_path / "cifar.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    remote = images.Remote((archive.as_uri(),), sha256_of(archive))
    monkeypatch.setattr(images, "CIFAR10", dataclasses.replace(images.CIFAR10, remote=remote))
    root = tmp_path / "root"
    data = load_dataset("cifar10", root=root, download=True)
    assert_pixels(data.test_x, data, pixels[10:])
    assert data.train_y.tolist() == labels[:10].tolist()
    assert (root / "cifar-10-python.tar.gz").is_file()


def test_usps_download(tmp_path, monkeypatch, file_urls):
    mirror = tmp_path / "mirror"
    for name, labels in (("usps.bz2", [3, 4]), ("usps.t.bz2", [5])):
        write_usps(mirror / name, labels, np.zeros((len(labels), 256)))
        remote = images.Remote(((mirror / name).as_uri(),), sha256_of(mirror / name))
        monkeypatch.setitem(images.USPS_FILES, name, remote)
    data = load_dataset("usps", root=tmp_path / "root", download=True)
    assert data.train_y.tolist() == [2, 3] and data.test_y.tolist() == [4]


def test_every_image_download_has_a_pinned_hash():
    remotes = [images.CIFAR10.remote, images.CIFAR100.remote, *images.SVHN_FILES.values(), *images.USPS_FILES.values()]
    hashes = [remote.known_hash for remote in remotes]
    hashes += [h for spec in (images.MNIST, images.FASHION_MNIST) for h in spec.hashes.values()]
    assert all(re.fullmatch(r"md5:[0-9a-f]{32}|sha256:[0-9a-f]{64}", h) for h in hashes)
