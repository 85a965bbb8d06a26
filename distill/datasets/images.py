"""Readers for the standard on-disk formats of image datasets.

Every reader takes ``(root, download)`` and returns an :class:`ImageArrays`: pixels scaled to
[0, 1], integer labels, class names and the per-channel normalisation constants the
literature uses for that dataset. Files live under ``root`` as torchvision lays them out:

    digits          bundled with scikit-learn (no files)
    mnist           <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    fashion_mnist   <root>/FashionMNIST/raw/... (same names as MNIST)
    cifar10         <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    cifar100        <root>/cifar-100-python/{train, test, meta}
    svhn            <root>/SVHN/{train,test}_32x32.mat
    usps            <root>/USPS/usps.bz2, usps.t.bz2 (libsvm format)

No reader runs code from a file (CIFAR's pickles go through :mod:`distill.datasets.pickles`),
and each checks the types, shapes and label ranges it reads: a bad file is a one-line
UserError that names it.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits, load_svmlight_file
from sklearn.model_selection import train_test_split

from distill.datasets.download import Remote, extract_tar, fetch
from distill.datasets.matlab import read_mat
from distill.datasets.pickles import PICKLE_ERRORS, load_pickle
from distill.errors import UserError

DIGIT_NAMES = tuple(str(d) for d in range(10))
FASHION_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class ImageArrays:
    """A dataset as read from disk: float32 [N, C, H, W] pixels in [0, 1] and int64 [N] labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]


def missing_error(dataset: str, path: Path) -> UserError:
    """The error for a dataset file or folder that is not on disk."""
    return UserError(
        f"dataset '{dataset}' not found: {path} does not exist (looked in {path.parent}). "
        f"Set `dataset.download: true` in the config (download=True in Python) to fetch it, "
        f"or place the files there."
    )


def corrupt_error(path: Path, reason: object) -> UserError:
    """The error for a dataset file that exists but cannot be parsed (one line, whatever ``reason`` holds)."""
    reason = " ".join(str(reason).split())
    return UserError(
        f"cannot read {path}: {reason}; the file is corrupt or incomplete, delete it and download it again"
    )


def as_labels(values: np.ndarray, path: Path, first: int, last: int) -> np.ndarray:
    """``values`` as int64 labels; a UserError naming ``path`` unless they are whole numbers in ``first..last``."""
    if values.dtype.kind not in "iuf":
        raise corrupt_error(path, f"labels must be numbers, found {values.dtype}")
    bad = values[~((values >= first) & (values <= last) & (values == np.round(values)))]
    if bad.size:
        raise corrupt_error(path, f"label {bad[0]} is not one of the classes {first}..{last}")
    return values.astype(np.int64)


def check_image_size(train_x: np.ndarray, test_x: np.ndarray, test_path: Path) -> None:
    """A UserError naming ``test_path`` unless the test images have the train images' [C, H, W]."""
    if train_x.shape[1:] != test_x.shape[1:]:
        raise corrupt_error(
            test_path, f"test images are {test_x.shape[1:]} [C, H, W] but the train images are {train_x.shape[1:]}"
        )


def ensure_file(dataset: str, path: Path, remote: Remote, download: bool) -> Path:
    """``path`` if it exists; else download it when allowed, else a UserError naming it."""
    if not path.is_file():
        if not download:
            raise missing_error(dataset, path)
        fetch(remote, path)
    return path


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels as float32 in [0, 1]."""
    return np.multiply(pixels, np.float32(1 / 255), dtype=np.float32)


# --- digits (scikit-learn) -------------------------------------------------------------

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def read_digits(root: Path, download: bool) -> ImageArrays:
    """scikit-learn's 8x8 digits (values 0..16), a stratified 80/20 split with a fixed seed.

    Normalised with the train split's own mean and std; ``root`` and ``download`` are unused.
    """
    digits = load_digits()
    images = (digits.images / 16).astype(np.float32)[:, None]
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=labels
    )
    return ImageArrays(train_x, train_y, test_x, test_y, (float(train_x.mean()),), (float(train_x.std()),), DIGIT_NAMES)


# --- MNIST and Fashion-MNIST (IDX files) --------------------------------------------------

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file, gzipped when its name ends in ``.gz``.

    Layout: magic ``0x00 0x00 <type> <ndim>``, ``ndim`` big-endian uint32 sizes, then the
    data in row-major order. The magic and the total size are checked.
    """
    data = read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_DTYPES:
        raise corrupt_error(path, f"bad IDX magic number {data[:4].hex() or '(empty file)'}")
    header = 4 + 4 * data[3]
    if len(data) < header:
        raise corrupt_error(path, "truncated IDX header")
    shape = struct.unpack(f">{data[3]}I", data[4:header])
    dtype = np.dtype(IDX_DTYPES[data[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise corrupt_error(path, f"{len(data)} bytes, expected {expected} for an IDX array of shape {shape}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape)


def read_bytes(path: Path) -> bytes:
    """The contents of ``path``, decompressed when it ends in ``.gz``."""
    try:
        return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise corrupt_error(path, err) from err


@dataclass(frozen=True)
class IdxSpec:
    """An MNIST-like dataset: its folder under root, mirrors, the pinned hashes of the .gz files, constants."""

    name: str
    folder: str
    mirrors: tuple[str, ...]
    hashes: dict[str, str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]


MNIST = IdxSpec(
    name="mnist",
    folder="MNIST",
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    hashes={
        "train-images-idx3-ubyte": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "md5:d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "md5:9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "md5:ec29112dd5afa0611ce80d1b7f02629c",
    },
    mean=(0.1307,),
    std=(0.3081,),
    class_names=DIGIT_NAMES,
)

FASHION_MNIST = IdxSpec(
    name="fashion_mnist",
    folder="FashionMNIST",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    hashes={
        "train-images-idx3-ubyte": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "md5:25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "md5:bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "md5:bb300cfdad3c16e7a12a480ee83cd310",
    },
    mean=(0.2860,),
    std=(0.3530,),
    class_names=FASHION_NAMES,
)


def idx_file(spec: IdxSpec, raw: Path, stem: str, download: bool) -> Path:
    """The plain or gzipped IDX file ``stem`` in ``raw``, downloading the .gz if allowed."""
    plain = raw / stem
    if plain.is_file():
        return plain
    remote = Remote(tuple(f"{mirror}{stem}.gz" for mirror in spec.mirrors), spec.hashes[stem])
    return ensure_file(spec.name, raw / f"{stem}.gz", remote, download)


def read_idx_split(spec: IdxSpec, raw: Path, prefix: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """One split (``train`` or ``t10k``): images [N, 1, H, W] in [0, 1] and labels [N]."""
    images_path = idx_file(spec, raw, f"{prefix}-images-idx3-ubyte", download)
    labels_path = idx_file(spec, raw, f"{prefix}-labels-idx1-ubyte", download)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8 or 0 in images.shape:
        found = f"{images.dtype} {images.shape}"
        raise corrupt_error(images_path, f"expected uint8 images [N, H, W] (no size 0), found {found}")
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise corrupt_error(labels_path, f"expected {len(images)} labels (uint8), found {labels.dtype} {labels.shape}")
    return to_unit(images[:, None]), as_labels(labels, labels_path, 0, len(spec.class_names) - 1)


def read_idx_dataset(spec: IdxSpec, root: Path, download: bool) -> ImageArrays:
    """An MNIST-like dataset from ``<root>/<folder>/raw``."""
    raw = root / spec.folder / "raw"
    train_x, train_y = read_idx_split(spec, raw, "train", download)
    test_x, test_y = read_idx_split(spec, raw, "t10k", download)
    check_image_size(train_x, test_x, idx_file(spec, raw, "t10k-images-idx3-ubyte", False))
    return ImageArrays(train_x, train_y, test_x, test_y, spec.mean, spec.std, spec.class_names)


def read_mnist(root: Path, download: bool) -> ImageArrays:
    """MNIST: 60,000 / 10,000 grey 28x28 handwritten digits."""
    return read_idx_dataset(MNIST, root, download)


def read_fashion_mnist(root: Path, download: bool) -> ImageArrays:
    """Fashion-MNIST: 60,000 / 10,000 grey 28x28 clothing images."""
    return read_idx_dataset(FASHION_MNIST, root, download)


# --- CIFAR-10 and CIFAR-100 (python pickles) -------------------------------------------------


@dataclass(frozen=True)
class CifarSpec:
    """A CIFAR variant: its folder, files, pickle keys, archive and constants."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    archive: str
    remote: Remote
    mean: tuple[float, ...]
    std: tuple[float, ...]


CIFAR10 = CifarSpec(
    name="cifar10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    num_classes=10,
    archive="cifar-10-python.tar.gz",
    remote=Remote(
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",), "md5:c58f30108f718f92721af3b95e74349a"
    ),
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2023, 0.1994, 0.2010),
)

CIFAR100 = CifarSpec(
    name="cifar100",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
    archive="cifar-100-python.tar.gz",
    remote=Remote(
        ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",), "md5:eb9058c3a382ffc7106e4002c42a8d85"
    ),
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
)


def unpickle(path: Path) -> dict[str, Any]:
    """A CIFAR pickle as a dict, read by :func:`~distill.datasets.pickles.load_pickle` (no code runs)."""
    try:
        content = load_pickle(path.read_bytes(), path)
    except OSError as err:
        raise corrupt_error(path, err) from err
    except PICKLE_ERRORS as err:
        raise corrupt_error(path, f"not a CIFAR pickle ({type(err).__name__}: {err})") from err
    if not isinstance(content, dict):
        raise corrupt_error(path, f"expected a pickled dict, found {type(content).__name__}")
    return content


def label_array(labels: object, path: Path) -> np.ndarray:
    """``labels`` (a list, as CIFAR stores them) as a numpy array; a ragged list is a UserError."""
    try:
        return np.asarray(labels)
    except ValueError as err:
        raise corrupt_error(path, f"labels are not a flat list of numbers ({err})") from err


def read_cifar_batch(path: Path, spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch: ``data`` uint8 [N, 3072] (RGB planes of 32x32) and N integer labels."""
    batch = unpickle(path)
    if "data" not in batch or spec.label_key not in batch:
        raise corrupt_error(path, f"not a CIFAR batch: expected the keys 'data' and '{spec.label_key}'")
    images, labels = batch["data"], label_array(batch[spec.label_key], path)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3072:
        found = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise corrupt_error(path, f"expected 'data' as a uint8 array [N, 3072], found {found}")
    if len(images) == 0:
        raise corrupt_error(path, "the batch holds no images")
    if labels.shape != images.shape[:1]:
        raise corrupt_error(path, f"{len(images)} images but labels of shape {labels.shape}")
    return images.reshape(-1, 3, 32, 32), as_labels(labels, path, 0, spec.num_classes - 1)


def read_cifar_split(spec: CifarSpec, files: tuple[str, ...], folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The batches ``files`` concatenated: images [N, 3, 32, 32] in [0, 1] and labels [N]."""
    batches = [read_cifar_batch(folder / name, spec) for name in files]
    return to_unit(np.concatenate([x for x, _ in batches])), np.concatenate([y for _, y in batches])


def read_cifar_names(spec: CifarSpec, path: Path) -> tuple[str, ...]:
    """The class names in the meta file ``path``: a list of ``num_classes`` strings."""
    names = unpickle(path).get(spec.names_key)
    if not isinstance(names, list) or len(names) != spec.num_classes or not all(isinstance(n, str) for n in names):
        raise corrupt_error(path, f"expected '{spec.names_key}' to be a list of {spec.num_classes} class names")
    return tuple(names)


def ensure_cifar(spec: CifarSpec, root: Path, download: bool) -> Path:
    """The extracted CIFAR folder, downloading and extracting the archive if allowed."""
    folder = root / spec.folder
    missing = [folder / name for name in (*spec.train_files, *spec.test_files, spec.meta_file)]
    missing = [path for path in missing if not path.is_file()]
    if missing:
        if not download:
            raise missing_error(spec.name, folder if not folder.is_dir() else missing[0])
        extract_tar(ensure_file(spec.name, root / spec.archive, spec.remote, download), root)
    return folder


def read_cifar(spec: CifarSpec, root: Path, download: bool) -> ImageArrays:
    """A CIFAR dataset from ``<root>/<folder>``."""
    folder = ensure_cifar(spec, root, download)
    train_x, train_y = read_cifar_split(spec, spec.train_files, folder)
    test_x, test_y = read_cifar_split(spec, spec.test_files, folder)
    names = read_cifar_names(spec, folder / spec.meta_file)
    return ImageArrays(train_x, train_y, test_x, test_y, spec.mean, spec.std, names)


def read_cifar10(root: Path, download: bool) -> ImageArrays:
    """CIFAR-10: 50,000 / 10,000 colour 32x32 images of 10 classes."""
    return read_cifar(CIFAR10, root, download)


def read_cifar100(root: Path, download: bool) -> ImageArrays:
    """CIFAR-100: 50,000 / 10,000 colour 32x32 images of 100 (fine) classes."""
    return read_cifar(CIFAR100, root, download)


# --- SVHN (MATLAB files) ---------------------------------------------------------------------

SVHN_FOLDER = "SVHN"
SVHN_FILES = {
    "train": Remote(
        ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",), "md5:e26dedcc434d2e4c54c9b2d4a06d8373"
    ),
    "test": Remote(("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",), "md5:eb5a983be6a315427106f1b164d9cef3"),
}
SVHN_MEAN = (0.4377, 0.4438, 0.4728)
SVHN_STD = (0.1980, 0.2010, 0.1970)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``X`` [H, W, 3, N] uint8 and ``y`` [N, 1] (digit 0 stored as 10) -> [N, 3, H, W] in [0, 1], [N].

    Read by :func:`~distill.datasets.matlab.read_mat`, not ``scipy.io.loadmat``, which a
    crafted file can crash.
    """
    try:
        mat = read_mat(path, ("X", "y"))
        images, labels = mat["X"], mat["y"]
    except (OSError, ValueError, KeyError, zlib.error) as err:
        raise corrupt_error(path, f"not an SVHN .mat file ({err!r})") from err
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[2] != 3 or 0 in images.shape:
        raise corrupt_error(path, f"expected X as uint8 [H, W, 3, N], found {images.dtype} {images.shape}")
    if labels.size != images.shape[3]:
        raise corrupt_error(path, f"expected {images.shape[3]} labels y, found shape {labels.shape}")
    labels = as_labels(labels.reshape(-1), path, 1, 10)
    labels[labels == 10] = 0
    return to_unit(images.transpose(3, 2, 0, 1)), labels


def read_svhn(root: Path, download: bool) -> ImageArrays:
    """SVHN: 73,257 / 26,032 colour 32x32 house-number digits (the 'extra' split is not used)."""
    folder = root / SVHN_FOLDER
    train_x, train_y = read_svhn_mat(ensure_file("svhn", folder / "train_32x32.mat", SVHN_FILES["train"], download))
    test_x, test_y = read_svhn_mat(ensure_file("svhn", folder / "test_32x32.mat", SVHN_FILES["test"], download))
    check_image_size(train_x, test_x, folder / "test_32x32.mat")
    return ImageArrays(train_x, train_y, test_x, test_y, SVHN_MEAN, SVHN_STD, DIGIT_NAMES)


# --- USPS (libsvm files) ----------------------------------------------------------------------

USPS_FOLDER = "USPS"
USPS_SIDE = 16
USPS_FILES = {
    "usps.bz2": Remote(
        ("https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/usps.bz2",),
        "md5:ec16c51db3855ca6c91edd34d0e9b197",
    ),
    "usps.t.bz2": Remote(
        ("https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/usps.t.bz2",),
        "md5:8ea070ee2aca1ac39742fdd1ef5ed118",
    ),
}
USPS_MEAN = (0.2469,)
USPS_STD = (0.2989,)


def read_usps_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A libsvm file (``label idx:value ...``, labels 1..10, values in [-1, 1], 256 features).

    Returns images [N, 1, 16, 16] in [0, 1] (features in row-major order) and labels 0..9.
    """
    try:
        features, labels = load_svmlight_file(str(path), n_features=USPS_SIDE**2, zero_based=False)
    except (OSError, EOFError, ValueError) as err:
        raise corrupt_error(path, err) from err
    if len(labels) == 0:
        raise corrupt_error(path, "no samples")
    if not np.all((features.data >= -1) & (features.data <= 1)):
        raise corrupt_error(path, "feature values outside [-1, 1] (or nan)")
    images = (features.toarray().astype(np.float32) + 1) / 2
    return images.reshape(-1, 1, USPS_SIDE, USPS_SIDE), as_labels(labels, path, 1, 10) - 1


def read_usps(root: Path, download: bool) -> ImageArrays:
    """USPS: 7,291 / 2,007 grey 16x16 handwritten digits."""
    folder = root / USPS_FOLDER
    paths = [ensure_file("usps", folder / name, remote, download) for name, remote in USPS_FILES.items()]
    train_x, train_y = read_usps_file(paths[0])
    test_x, test_y = read_usps_file(paths[1])
    return ImageArrays(train_x, train_y, test_x, test_y, USPS_MEAN, USPS_STD, DIGIT_NAMES)


READERS: dict[str, Callable[[Path, bool], ImageArrays]] = {
    "digits": read_digits,
    "mnist": read_mnist,
    "fashion_mnist": read_fashion_mnist,
    "cifar10": read_cifar10,
    "cifar100": read_cifar100,
    "svhn": read_svhn,
    "usps": read_usps,
}
