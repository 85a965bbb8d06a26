"""MATLAB v5 files (distill.datasets.matlab) through the SVHN reader: what scipy and MATLAB
write loads, and every malformed or crafted file is a one-line error naming it."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from distill.datasets import load_dataset
from distill.errors import UserError

from .util import assert_pixels, flip_byte

RNG = np.random.default_rng(0)


def write_svhn(path: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A .mat with X [H, W, C, N] = [5, 4, 3, N] and y [N, 1] in 1..10; returns X and y."""
    x = RNG.integers(0, 256, (5, 4, 3, count), dtype=np.uint8)
    y = RNG.integers(1, 11, (count, 1)).astype(np.uint8)
    y[0] = 10
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"X": x, "y": y})
    return x, y


def test_svhn(tmp_path):
    train_x, train_y = write_svhn(tmp_path / "SVHN" / "train_32x32.mat", 6)
    write_svhn(tmp_path / "SVHN" / "test_32x32.mat", 2)
    data = load_dataset("svhn", root=tmp_path)
    assert data.input_shape == (3, 5, 4) and len(data.test_y) == 2
    expected = np.einsum("hwcn->nchw", train_x) / 255
    assert_pixels(data.train_x, data, expected)
    assert data.train_y[0].item() == 0
    assert data.train_y.tolist() == [label % 10 for label in train_y[:, 0].tolist()]


def mat_bytes(variables: dict, compress: bool = False) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables, do_compression=compress)
    return buffer.getvalue()


SVHN_X = np.zeros((5, 4, 3, 2), np.uint8)
SVHN_Y = np.array([[1], [10]], np.uint8)
MAT_V73 = b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116) + bytes(8) + b"\x00\x02IM" + b"\x89HDF\r\n\x1a\n" + bytes(64)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (mat_bytes({"X": SVHN_X, "y": np.array([[1], [11]], np.uint8)}), "label 11 is not one of the classes 1..10"),
        (mat_bytes({"X": SVHN_X, "y": np.array([[0], [1]], np.uint8)}), "label 0 is not one"),
        (mat_bytes({"X": SVHN_X, "y": np.array([[1.5], [2.0]])}), "label 1.5 is not one"),
        (mat_bytes({"X": SVHN_X * 0.5, "y": SVHN_Y}), "expected X as uint8 \\[H, W, 3, N\\], found float64"),
        (mat_bytes({"X": SVHN_X[:, :, :2], "y": SVHN_Y}), "found uint8 \\(5, 4, 2, 2\\)"),
        (mat_bytes({"X": np.array([[1, "a"]], dtype=object), "y": SVHN_Y}), "X is a cell array"),
        (mat_bytes({"X": {"a": 1}, "y": SVHN_Y}), "X is a struct array"),
        (mat_bytes({"X": SVHN_X, "y": "ab"}), "y is a char array"),
        (mat_bytes({"X": SVHN_X}), "KeyError\\('y'\\)"),
        (mat_bytes({"X": SVHN_X[:3], "y": SVHN_Y}), "test images are \\(3, 3, 4\\)"),
        (mat_bytes({"X": SVHN_X, "y": SVHN_Y})[:100], "not an SVHN .mat file"),  # truncated header
        (flip_byte(mat_bytes({"X": SVHN_X, "y": SVHN_Y}, compress=True), 180), "not an SVHN .mat file"),
        (MAT_V73, "not an SVHN .mat file .*v7.3"),
    ],
    ids=[
        "label 11", "label 0", "label 1.5", "float X", "two channels", "cell X", "struct X", "str y", "no y",
        "test size", "truncated", "corrupt compressed", "v7.3",
    ],
)
def test_bad_svhn_contents_name_the_file(tmp_path, content, reason):
    write_svhn(tmp_path / "SVHN" / "train_32x32.mat", 2)
    path = tmp_path / "SVHN" / "test_32x32.mat"
    path.write_bytes(content)
    with pytest.raises(UserError, match=reason) as error:
        load_dataset("svhn", root=tmp_path)
    assert str(path) in str(error.value)


def mat_element(mdtype: int, data: bytes, order: str) -> bytes:
    """A MAT v5 data element: tag, data, padding to 8 bytes."""
    return struct.pack(f"{order}II", mdtype, len(data)) + data + bytes(-len(data) % 8)


def mat_matrix(name: str, mxclass: int, shape: tuple[int, ...], mitype: int, data: bytes, order: str) -> bytes:
    """An miMATRIX element as MATLAB writes one: flags (class), dimensions, name, real part."""
    return mat_element(
        14,
        mat_element(6, struct.pack(f"{order}II", mxclass, 0), order)
        + mat_element(5, struct.pack(f"{order}{len(shape)}i", *shape), order)
        + mat_element(1, name.encode(), order)
        + mat_element(mitype, data, order),
        order,
    )


def mat_file(matrices: list[bytes], order: str, compress: bool) -> bytes:
    """A MAT v5 file of ``matrices``, each zlib-compressed (as MATLAB's default -v7 writes) if ``compress``."""
    header = b"MATLAB 5.0 MAT-file, written by hand".ljust(116) + bytes(8) + struct.pack(f"{order}H", 0x0100)
    header += b"IM" if order == "<" else b"MI"
    if compress:
        matrices = [struct.pack(f"{order}II", 15, len(z)) + z for z in map(zlib.compress, matrices)]
    return header + b"".join(matrices)


MX_DOUBLE, MX_UINT8, MI_UINT8, MI_INT16 = 6, 9, 2, 3


@pytest.mark.parametrize(("order", "compress"), [("<", True), ("<", False), (">", True)])
def test_svhn_as_matlab_writes_it(tmp_path, order, compress):
    """X uint8; y double, but stored in the smallest type that holds it (uint8 or int16), as MATLAB does."""
    x = RNG.integers(0, 256, (5, 4, 3, 3), dtype=np.uint8)
    labels = np.array([10, 1, 7], np.dtype(">i2" if order == ">" else "<i2"))
    matrices = [
        mat_matrix("X", MX_UINT8, x.shape, MI_UINT8, x.tobytes(order="F"), order),
        mat_matrix("y", MX_DOUBLE, (3, 1), MI_INT16, labels.tobytes(), order),
    ]
    write_svhn(tmp_path / "SVHN" / "train_32x32.mat", 2)
    (tmp_path / "SVHN" / "test_32x32.mat").write_bytes(mat_file(matrices, order, compress))
    data = load_dataset("svhn", root=tmp_path)
    assert data.test_y.tolist() == [0, 1, 7]
    assert_pixels(data.test_x, data, np.einsum("hwcn->nchw", x) / 255)


@pytest.mark.parametrize(
    ("mitype", "payload", "reason"),
    [
        (48, b"\x01\x0a", "y: data of type 48"),  # scipy 1.17's loadmat reads a wild pointer here and crashes
        (MI_UINT8, b"\x01", "y: 1 bytes of uint8 for the shape \\(2, 1\\)"),
    ],
)
def test_svhn_crafted_data_element(tmp_path, mitype, payload, reason):
    matrices = [mat_matrix("X", MX_UINT8, SVHN_X.shape, MI_UINT8, SVHN_X.tobytes(), "<"),
                mat_matrix("y", MX_UINT8, (2, 1), mitype, payload, "<")]
    write_svhn(tmp_path / "SVHN" / "train_32x32.mat", 2)
    path = tmp_path / "SVHN" / "test_32x32.mat"
    path.write_bytes(mat_file(matrices, "<", compress=False))
    with pytest.raises(UserError, match=reason) as error:
        load_dataset("svhn", root=tmp_path)
    assert str(path) in str(error.value)


def test_svhn_labels_stored_as_whole_doubles(tmp_path):
    write_svhn(tmp_path / "SVHN" / "train_32x32.mat", 2)
    (tmp_path / "SVHN" / "test_32x32.mat").write_bytes(mat_bytes({"X": SVHN_X, "y": np.array([[1.0], [10.0]])}))
    assert load_dataset("svhn", root=tmp_path).test_y.tolist() == [1, 0]


def test_corrupt_svhn_names_the_file(tmp_path):
    write_svhn(tmp_path / "SVHN" / "train_32x32.mat", 2)
    bad = tmp_path / "SVHN" / "test_32x32.mat"
    bad.write_bytes(b"MATLAB? no")
    with pytest.raises(UserError) as error:
        load_dataset("svhn", root=tmp_path)
    assert str(bad) in str(error.value)
