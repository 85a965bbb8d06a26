"""Numeric arrays from MATLAB v5 ``.mat`` files (SVHN's format), read without scipy's parser.

``scipy.io.loadmat`` is not hardened against crafted files: one byte that puts a data element's
type code out of range makes it read a wild pointer and crash the interpreter (scipy 1.17; see
scipy/scipy#25349). This reader knows only what SVHN needs, real numeric matrices stored plain
or zlib-compressed, checks every length against the file, and builds each array with
``np.frombuffer``; anything else (cells, structs, objects, strings) is a ValueError.

The layout (MathWorks, "MAT-File Format", version 5):

    header      128 bytes: text, subsystem offset, version 0x0100, endian indicator "IM" or "MI"
    element     tag (uint32 type, uint32 byte count) + data padded to 8 bytes; a "small" element
                of at most 4 bytes packs ``count << 16 | type`` into one uint32 and its data after it
    miCOMPRESSED (15)  the zlib-compressed bytes of one element (not padded)
    miMATRIX (14)      the sub-elements array flags (class in the low byte), dimensions, name, real part
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np

HEADER_BYTES = 128
VERSION_5 = 0x0100
BYTE_ORDERS = {b"IM": "<", b"MI": ">"}
MI_INT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 1, 5, 6, 14, 15
MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}
MX_KINDS = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 16: "function", 17: "opaque"}
COMPLEX_FLAG = 0x0800


def read_mat(path: Path, names: Collection[str]) -> dict[str, np.ndarray]:
    """The variables ``names`` of the .mat file ``path`` that it holds, as numpy arrays (others are skipped).

    A malformed file, or a wanted variable that is not a real numeric matrix, is a ValueError
    (or ``zlib.error`` for a corrupt compressed element).
    """
    data = memoryview(path.read_bytes())
    order = byte_order(data)
    arrays = {}
    for mdtype, body in elements(data, HEADER_BYTES, order):
        if mdtype == MI_COMPRESSED:
            mdtype, body, _ = element(memoryview(zlib.decompress(body)), 0, order)
        if mdtype != MI_MATRIX:
            raise ValueError(f"a top-level data element of type {mdtype}, expected a matrix (14)")
        name = matrix_header(body, order)[0]
        if name in names:
            arrays[name] = matrix_values(body, order)
    return arrays


def byte_order(data: memoryview) -> str:
    """``"<"`` or ``">"`` from the header of a version 5 file."""
    if len(data) < HEADER_BYTES:
        raise ValueError(f"{len(data)} bytes, shorter than the {HEADER_BYTES}-byte MAT-file header")
    order = BYTE_ORDERS.get(bytes(data[126:128]))
    if order is None:
        raise ValueError("no MAT-file endian indicator ('IM' or 'MI') at byte 126")
    (version,) = struct.unpack(f"{order}H", data[124:126])
    if version != VERSION_5:
        raise ValueError(f"MAT-file version {version:#06x}; only version 5 (0x0100) files are read, not v7.3 (HDF5)")
    return order


def elements(data: memoryview, offset: int, order: str) -> Iterator[tuple[int, memoryview]]:
    """``(type, data)`` of each element from ``offset`` to the end of ``data``."""
    while offset < len(data):
        mdtype, body, offset = element(data, offset, order)
        yield mdtype, body


def element(data: memoryview, offset: int, order: str) -> tuple[int, memoryview, int]:
    """``(type, data, offset of the next element)`` of the element at ``offset``."""
    if offset + 8 > len(data):
        raise ValueError(f"a data element tag at byte {offset} is cut off")
    first, count = struct.unpack_from(f"{order}II", data, offset)
    if first >> 16:  # a small element
        mdtype, count = first & 0xFFFF, first >> 16
        if count > 4:
            raise ValueError(f"a small data element of {count} bytes at byte {offset}")
        return mdtype, data[offset + 4 : offset + 4 + count], offset + 8
    end = offset + 8 + count
    if end > len(data):
        raise ValueError(f"the data element at byte {offset} ({count} bytes) runs past the end")
    return first, data[offset + 8 : end], end if first == MI_COMPRESSED else end + (-count) % 8


def matrix_header(body: memoryview, order: str) -> tuple[str, int, tuple[int, ...], int]:
    """``(name, flag word, shape, offset of the real part)`` of the miMATRIX element ``body``."""
    flags_type, flags, offset = element(body, 0, order)
    dims_type, dims, offset = element(body, offset, order)
    name_type, name, offset = element(body, offset, order)
    if flags_type != MI_UINT32 or len(flags) != 8 or dims_type != MI_INT32 or len(dims) % 4 or name_type != MI_INT8:
        raise ValueError(f"a matrix header with sub-elements of types {flags_type}, {dims_type}, {name_type}")
    (flag_word,) = struct.unpack_from(f"{order}I", flags)
    shape = struct.unpack(f"{order}{len(dims) // 4}i", dims)
    return bytes(name).decode("ascii"), flag_word, shape, offset


def matrix_values(body: memoryview, order: str) -> np.ndarray:
    """The array of the miMATRIX element ``body``: a real numeric matrix, else a ValueError."""
    name, flag_word, shape, offset = matrix_header(body, order)
    mxclass = flag_word & 0xFF
    if mxclass not in MX_DTYPES:
        raise ValueError(f"{name} is a {MX_KINDS.get(mxclass, f'class {mxclass}')} array, not a numeric one")
    if flag_word & COMPLEX_FLAG:
        raise ValueError(f"{name} is a complex array")
    real_type, real, _ = element(body, offset, order)
    if real_type not in MI_DTYPES or min(shape) < 0:
        raise ValueError(f"{name}: data of type {real_type} for the shape {shape}")
    stored = np.dtype(MI_DTYPES[real_type]).newbyteorder(order)
    if len(real) != math.prod(shape) * stored.itemsize:
        raise ValueError(f"{name}: {len(real)} bytes of {stored} for the shape {shape}")
    return np.frombuffer(real, stored).astype(MX_DTYPES[mxclass], copy=False).reshape(shape, order="F")
