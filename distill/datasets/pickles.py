"""Reading numpy pickles (the CIFAR batches) without running code from the file.

A pickle names Python globals and calls them while it loads, so ``pickle.load`` on a crafted
file can call ``os.system``. Even numpy's own reconstruction functions are unsafe on crafted
input: ``dtype.__setstate__`` accepts flags that make a uint8 dtype claim to hold object
pointers. :class:`DataUnpickler` therefore imports nothing: the few globals a numpy pickle
names map to stand-ins written here, which accept only integer and float dtypes and build
every array with ``np.frombuffer`` from bytes whose length they check. Lists, dicts,
tuples, strings and numbers need no global. Any other global is refused with a UserError.

What numpy writes, and the stand-in each call reaches:

    numpy.dtype("u1", align, copy) + BUILD (3, "|", None, None, None, -1, -1, 0)  -> PickledDtype
    numpy[._]core.multiarray._reconstruct(ndarray, (0,), b"b")
        + BUILD (1, shape, dtype, is_fortran, raw bytes)          -> PickledArray (protocols 0-4)
    numpy[._]core.numeric._frombuffer(buffer, dtype, shape, order)  -> frombuffer (protocol 5)
    numpy[._]core.multiarray.scalar(dtype, raw bytes)               -> scalar (a numpy number)
    _codecs.encode(text, "latin1")                                  -> latin1_encode (bytes, protocols 0-2)
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from distill.errors import UserError

# What loading a malformed pickle raises (a refused global is a UserError instead).
PICKLE_ERRORS = (
    EOFError,
    pickle.UnpicklingError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
)
NUMBER_TYPE = re.compile(r"[iuf]\d{1,2}")  # dtype.str without the byte order: u1, i8, f4 ...
BYTE_ORDERS = ("<", ">", "|", "=")
NUMBER_STATE = (None, None, None, -1, -1, 0)  # a dtype state after its version and byte order: no fields, no flags
MEMO_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")


class PickledDtype:
    """What ``numpy.dtype(obj, align, copy)`` stands for in a pickle: an integer or float dtype."""

    def __init__(self, obj: object, align: object = False, copy: object = True) -> None:
        if not isinstance(obj, str) or not NUMBER_TYPE.fullmatch(obj):
            raise ValueError(f"dtype {obj!r:.20} is not an integer or float type")
        self.dtype = np.dtype(obj)

    def __setstate__(self, state: object) -> None:
        """numpy's state of a number type, ``(3, byteorder, None, None, None, -1, -1, 0)``: only the byte order varies.

        Anything else (fields, a subarray, flags) is refused: numpy's own ``__setstate__``
        takes flags that make a uint8 dtype claim to hold object pointers.
        """
        if not (
            isinstance(state, tuple)
            and len(state) == 8
            and state[0] == 3
            and state[1] in BYTE_ORDERS
            and state[2:] == NUMBER_STATE
        ):
            raise ValueError(f"not the state of a number dtype: {state!r:.80}")
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


NDARRAY = object()
"""What ``numpy.ndarray`` stands for: only the class argument of ``_reconstruct``, never called."""


class PickledArray:
    """What ``_reconstruct(ndarray, shape, typecode)`` stands for; BUILD then supplies the data."""

    array: np.ndarray | None = None

    def __init__(self, subtype: object, shape: object, typecode: object) -> None:
        if subtype is not NDARRAY:
            raise ValueError("an array of a type other than numpy.ndarray")

    def __setstate__(self, state: object) -> None:
        """numpy's array state ``(1, shape, dtype, is_fortran, raw bytes)``."""
        if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
            raise ValueError(f"bad array state {state!r:.80}")
        _, shape, dtype, fortran, data = state
        self.array = array_from(data, dtype, shape, "F" if fortran else "C")


def raw_bytes(data: object) -> bytes:
    """The raw bytes of an array: bytes as they are, a str written by Python 2 as latin-1."""
    if isinstance(data, str):
        return data.encode("latin-1")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    raise ValueError(f"array data is {type(data).__name__}, not bytes")


def array_from(data: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` (a PickledDtype) read from ``data``, which must hold exactly its bytes."""
    if not isinstance(dtype, PickledDtype):
        raise ValueError("an array whose dtype is not a dtype")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"bad array shape {shape!r:.80}")
    if order not in ("C", "F"):
        raise ValueError(f"bad array order {order!r:.20}")
    data = raw_bytes(data)
    if len(data) != math.prod(shape) * dtype.dtype.itemsize:
        raise ValueError(f"{len(data)} bytes of data for an array {shape} of {dtype.dtype}")
    return np.frombuffer(data, dtype.dtype).reshape(shape, order=order)


def frombuffer(buffer: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """numpy's ``_frombuffer`` (protocol 5): the array in ``buffer``."""
    return array_from(buffer, dtype, shape, order)


def scalar(dtype: object, data: object) -> np.generic:
    """numpy's ``scalar``: the one number of ``dtype`` in ``data``."""
    return array_from(data, dtype, (), "C")[()]


def latin1_encode(text: object, encoding: object) -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes for protocols 0-2: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError(f"_codecs.encode of {type(text).__name__} to {encoding!r:.20}")
    return text.encode("latin-1")


class Function:
    """A function a pickle may call but not change: BUILD on it, which would set its attributes, is refused."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[..., object]) -> None:
        self.function = function

    def __call__(self, *args: object) -> object:
        return self.function(*args)

    def __setstate__(self, state: object) -> None:
        raise ValueError(f"BUILD on the function {self.function.__name__}")


STAND_INS: dict[tuple[str, str], object] = {
    ("numpy", "dtype"): PickledDtype,
    ("numpy", "ndarray"): NDARRAY,
    ("numpy.core.multiarray", "_reconstruct"): PickledArray,  # numpy < 2 (and Python 2's files)
    ("numpy._core.multiarray", "_reconstruct"): PickledArray,  # numpy >= 2
    ("numpy.core.numeric", "_frombuffer"): Function(frombuffer),
    ("numpy._core.numeric", "_frombuffer"): Function(frombuffer),
    ("numpy.core.multiarray", "scalar"): Function(scalar),
    ("numpy._core.multiarray", "scalar"): Function(scalar),
    ("_codecs", "encode"): Function(latin1_encode),
}


class DataUnpickler(pickle.Unpickler):
    """An unpickler of containers, strings, numbers and numpy arrays that imports nothing (see the module docstring).

    Strings written by Python 2 are decoded as latin-1, as CIFAR's files need.
    """

    def __init__(self, data: bytes, path: Path) -> None:
        super().__init__(io.BytesIO(data), encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> object:
        """The stand-in for ``module.name``; a UserError naming the file and the global for any other."""
        try:
            return STAND_INS[module, name]
        except KeyError:
            name = ascii(f"{module}.{name}")[:100]  # one line, whatever the file holds
            raise UserError(
                f"refused to load {self.path}: it asks for the Python global {name}, which a data file never "
                f"needs (only numpy arrays, lists, dicts, strings and numbers are allowed, since a pickle can "
                f"run code); it is not a genuine dataset file, delete it and download it again"
            ) from None


def check_opcodes(data: bytes) -> None:
    """A ValueError for a malformed pickle: pickletools parses every opcode without building anything.

    Also refused: a memo index above the count of opcodes before it, which no pickler
    writes; CPython's unpickler sizes its memo by the largest index, so one corrupt index
    would take gigabytes before the load failed.
    """
    for count, (opcode, argument, _) in enumerate(pickletools.genops(data)):
        if opcode.name in MEMO_PUTS and argument > count:
            raise ValueError(f"memo index {argument} at opcode {count}")


def plain(value: object) -> object:
    """``value``, or the numpy array a PickledArray holds."""
    if isinstance(value, PickledArray):
        if value.array is None:
            raise ValueError("an array without data")
        return value.array
    return value


def load_pickle(data: bytes, path: Path) -> object:
    """The object pickled in ``data`` (read from ``path``), built without running code from the file.

    A dict's values that are arrays come back as numpy arrays. A global other than numpy's
    is a UserError; a malformed pickle raises one of :data:`PICKLE_ERRORS`.
    """
    check_opcodes(data)
    content = DataUnpickler(data, path).load()
    if isinstance(content, dict):
        return {key: plain(value) for key, value in content.items()}
    return plain(content)
