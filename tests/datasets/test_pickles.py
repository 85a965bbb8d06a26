"""No dataset file runs code: crafted CIFAR pickles are refused, genuine ones (every pickle format) load."""

from __future__ import annotations

import builtins
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from distill.cli import main
from distill.datasets import images, load_dataset
from distill.errors import UserError

RNG = np.random.default_rng(0)
RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's _reconstruct, whatever its module
FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # numpy's _frombuffer (protocol 5)
SHARED_CIFAR = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar-10-batches-py"


class Call:
    """Pickles as ``function(*args)``: what a crafted file makes a plain ``pickle.load`` run."""

    def __init__(self, function, *args, state=None):
        self.function, self.args, self.state = function, args, state

    def __reduce__(self):
        return (self.function, self.args) if self.state is None else (self.function, self.args, self.state)


def write_cifar10(folder: Path, batch: dict | None = None) -> None:
    """A CIFAR-10 folder of one-image batches; ``data_batch_1`` holds ``batch`` pickled, if given."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*images.CIFAR10.train_files, *images.CIFAR10.test_files):
        pixels = RNG.integers(0, 256, (1, 3072), dtype=np.uint8)
        (folder / name).write_bytes(pickle.dumps({"data": pixels, "labels": [3]}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{k}" for k in range(10)]}))
    if batch is not None:
        (folder / "data_batch_1").write_bytes(pickle.dumps(batch))


def run_cifar10(root: Path, out: Path) -> int:
    return main(["run", "--set", "dataset.name=cifar10", "--set", f"dataset.root={root}", "-o", str(out)])


# --- crafted files -----------------------------------------------------------------------------


def payload(kind: str, marker: Path) -> object:
    """A pickled object that creates ``marker`` when a plain ``pickle.load`` reads it."""
    return {
        "os.system": Call(os.system, f"touch {marker}"),
        "builtins.open": Call(builtins.open, str(marker), "w"),
        "builtins.exec": Call(builtins.exec, f"open({str(marker)!r}, 'w')"),
        "nested in the batch": {"data": Call(os.system, f"touch {marker}"), "labels": [1]},
    }[kind]


@pytest.mark.parametrize(
    ("kind", "refused"),
    [
        ("os.system", ".system'"),  # posix.system or nt.system
        ("builtins.open", "'io.open'"),  # builtins.open is io.open
        ("builtins.exec", "'builtins.exec'"),
        ("nested in the batch", ".system'"),
    ],
)
def test_crafted_cifar_batch_runs_no_code(tmp_path, capsys, kind, refused):
    marker = tmp_path / "MARKER"
    root = tmp_path / "data"
    write_cifar10(root / "cifar-10-batches-py")
    batch = root / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps(payload(kind, marker)))
    assert run_cifar10(root, tmp_path / "out") == 2
    message = capsys.readouterr().err
    assert not marker.exists()
    assert message.startswith(f"distill: error: refused to load {batch}: it asks for the Python global")
    assert refused in message and message.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (Call(np.dtype, "O"), "'O' is not an integer or float type"),  # object arrays hold pickled objects
        (np.zeros(2, object), "'O8' is not an integer or float type"),
        (Call(RECONSTRUCT, np.matrix, (0,), b"b"), "refused .*matrix"),  # an ndarray subclass
        (Call(np.ndarray, (3,), "u1"), "TypeError"),  # numpy.ndarray called, not reconstructed
        (Call(RECONSTRUCT, np.ndarray, (0,), b"b", state=(1, (4,), np.dtype("u1"), False, b"abc")), "3 bytes of data"),
        (Call(FROMBUFFER, b"abc", np.dtype("u1"), (-3,), "C"), "bad array shape"),
        (Call(FROMBUFFER, b"abc", np.dtype("u1"), (3,), "K"), "bad array order"),
    ],
    ids=["object dtype", "object array", "subclass", "ndarray call", "short data", "negative shape", "order"],
)
def test_numpy_globals_build_only_numeric_arrays(tmp_path, content, reason):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": content, "labels": [1]}, protocol=2))
    with pytest.raises(UserError, match=reason) as error:
        images.unpickle(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("flags", [1, 63])
def test_dtype_state_cannot_claim_object_items(tmp_path, flags):
    """numpy's own dtype.__setstate__ takes these flags: the "uint8" array would hold object pointers."""
    dtype = Call(np.dtype, "u1", False, True, state=(3, "|", None, None, None, -1, -1, flags))
    data = Call(RECONSTRUCT, np.ndarray, (0,), b"b", state=(1, (1, 3072), dtype, False, b"\x41" * 3072))
    root = tmp_path / "data"
    write_cifar10(root / "cifar-10-batches-py", {"data": data, "labels": [1]})
    with pytest.raises(UserError, match="not the state of a number dtype") as error:
        load_dataset("cifar10", root=root)
    assert str(root / "cifar-10-batches-py" / "data_batch_1") in str(error.value)
    assert np.dtype(np.uint8).flags == 0


def test_corrupt_memo_index_fails_fast(tmp_path):
    """A memo index of 2**26 would make CPython's unpickler allocate a 1 GB memo first."""
    path = tmp_path / "batch"
    path.write_bytes(b"\x80\x02}r" + struct.pack("<I", 2**26) + b".")
    with pytest.raises(UserError, match="memo index 67108864") as error:
        images.unpickle(path)
    assert str(path) in str(error.value)


def test_refused_global_message_is_one_line(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(b"\x80\x04\x8c\x03o\ns\x8c\x03s\ny\x93.")  # STACK_GLOBAL of names with newlines
    with pytest.raises(UserError, match=r"refused to load .*'o\\ns\.s\\ny'") as error:
        images.unpickle(path)
    assert "\n" not in str(error.value)


# --- genuine files -------------------------------------------------------------------------------


def py2_string(value: bytes) -> bytes:
    """A Python 2 ``str`` as protocol 2 writes it (SHORT_BINSTRING or BINSTRING)."""
    return (b"U" + bytes([len(value)]) if len(value) < 256 else b"T" + struct.pack("<i", len(value))) + value


def py2_int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def py2_cifar_batch(pixels: np.ndarray, labels: list[int], filenames: list[bytes]) -> bytes:
    """A CIFAR batch pickled as Python 2 and numpy 1.x wrote the published files: protocol 2,
    ``GLOBAL numpy.core.multiarray _reconstruct``, every str (the pixels too) a BINSTRING."""
    dtype = (
        b"cnumpy\ndtype\n" + py2_string(b"u1") + b"\x89\x88\x87R"
        + b"(" + py2_int(3) + py2_string(b"|") + b"NNN" + py2_int(-1) + py2_int(-1) + py2_int(0) + b"tb"
    )
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + py2_int(0) + b"\x85" + py2_string(b"b") + b"\x87R"
        + b"(" + py2_int(1) + py2_int(pixels.shape[0]) + py2_int(pixels.shape[1]) + b"\x86" + dtype
        + b"\x89" + py2_string(pixels.tobytes()) + b"tb"
    )
    items = {
        b"data": array,
        b"labels": b"](" + b"".join(py2_int(label) for label in labels) + b"e",
        b"batch_label": py2_string(b"training batch 1 of 5"),
        b"filenames": b"](" + b"".join(py2_string(name) for name in filenames) + b"e",
    }
    return b"\x80\x02}(" + b"".join(py2_string(key) + value for key, value in items.items()) + b"u."


def test_python2_cifar_batch_loads(tmp_path):
    pixels = RNG.integers(0, 256, (3, 3072), dtype=np.uint8)
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_cifar_batch(pixels, [0, 9, 4], [b"caf\xe9_s_000.png", b"b.png", b"c.png"]))
    batch = images.unpickle(path)
    np.testing.assert_array_equal(batch["data"], pixels)
    assert batch["labels"] == [0, 9, 4] and batch["filenames"][0] == "caf\xe9_s_000.png"
    assert batch["batch_label"] == "training batch 1 of 5"
    x, y = images.read_cifar_batch(path, images.CIFAR10)
    np.testing.assert_array_equal(x, pixels.reshape(3, 3, 32, 32))
    assert y.tolist() == [0, 9, 4]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol_loads(tmp_path, protocol):
    content = {
        "data": RNG.integers(0, 256, (2, 3072), dtype=np.uint8),
        "labels": [np.int64(7), 2],  # numpy scalars need numpy's scalar()
        "fortran": np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3)),
        "floats": np.linspace(0, 1, 5, dtype=np.float32),
        "filenames": [b"\xff\x00bytes", "caf\xe9"],  # bytes need _codecs.encode below protocol 3
    }
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    loaded = images.unpickle(path)
    assert loaded.keys() == content.keys()
    for key in ("data", "fortran", "floats"):
        np.testing.assert_array_equal(loaded[key], content[key])
        assert loaded[key].dtype.newbyteorder("<") == content[key].dtype.newbyteorder("<")
    assert loaded["labels"] == [7, 2] and isinstance(loaded["labels"][0], np.int64)
    assert loaded["filenames"] == content["filenames"]


@pytest.mark.skipif(not SHARED_CIFAR.is_dir(), reason="the shared CIFAR-10 copy is not on this machine")
def test_published_cifar10_files_load():
    x, y = images.read_cifar_batch(SHARED_CIFAR / "data_batch_1", images.CIFAR10)
    assert x.shape == (10000, 3, 32, 32) and x.dtype == np.uint8
    assert np.bincount(y, minlength=10).min() > 900
    assert images.read_cifar_names(images.CIFAR10, SHARED_CIFAR / "batches.meta")[:2] == ("airplane", "automobile")
