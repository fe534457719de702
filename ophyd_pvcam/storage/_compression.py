"""Frames compressed as HDF5 chunks, before they reach h5py.

``bslz4`` is bitshuffle + LZ4, HDF5 filter 32008 -- what Eiger and Odin detectors write,
decoded by any HDF5 reader that has the filter (``import hdf5plugin`` in Python; tiled
imports it).  The chunks are made here with the bitshuffle library that ``hdf5plugin``
ships, called through ctypes: the call releases the GIL, so compressing one frame on the
writer thread does not hold up the owner thread taking the next.  They are byte for byte
what HDF5 itself would write (a 12-byte header -- uncompressed size and block size, both
big-endian -- then LZ4 blocks of bitshuffled data), and go in with ``write_direct_chunk``.
"""

from __future__ import annotations

import ctypes
import struct
from concurrent.futures import Executor
from functools import cache
from pathlib import Path
from typing import Any

import hdf5plugin
import numpy as np

COMPRESSIONS = ("none", "bslz4")
BLOCK_ELEMENTS = 4096  # bitshuffle's default for 2-byte pixels: 8 KiB blocks
HEADER = struct.Struct(">QI")


@cache
def _library() -> ctypes.CDLL:
    library = ctypes.CDLL(str(Path(hdf5plugin.PLUGIN_PATH) / "libh5bshuf.so"))
    size_t = ctypes.c_size_t
    library.bshuf_compress_lz4.argtypes = [ctypes.c_void_p, ctypes.c_void_p, size_t, size_t, size_t]
    library.bshuf_compress_lz4.restype = ctypes.c_int64
    library.bshuf_compress_lz4_bound.argtypes = [size_t, size_t, size_t]
    library.bshuf_compress_lz4_bound.restype = size_t
    return library


def dataset_options(compression: str) -> dict[str, Any]:
    """What ``create_dataset`` needs to declare the filter (the chunks come compressed)."""
    if compression == "bslz4":
        return dict(hdf5plugin.Bitshuffle(nelems=BLOCK_ELEMENTS, cname="lz4"))
    return {}


class Bslz4:
    """Compresses frames of one shape into filter-32008 chunks, reusing its buffers.

    Given a thread pool, a frame is compressed in two halves at once, each a whole number
    of blocks: the blocks of the second half simply follow those of the first, so the
    chunk is byte for byte the one a single call makes, in half the time (what a step
    scan waits for at every point, and what keeps a fly scan's frames coming on two cores).
    """

    def __init__(self, shape: tuple[int, ...], dtype: Any = np.uint16):
        self.itemsize = np.dtype(dtype).itemsize
        self.elements = int(np.prod(shape))
        self._half = (self.elements // 2) // BLOCK_ELEMENTS * BLOCK_ELEMENTS
        library = _library()
        self._compress = library.bshuf_compress_lz4
        first = library.bshuf_compress_lz4_bound(self._half, self.itemsize, BLOCK_ELEMENTS)
        rest = self.elements - self._half
        second = library.bshuf_compress_lz4_bound(rest, self.itemsize, BLOCK_ELEMENTS)
        self._out = np.empty(HEADER.size + first + second, np.uint8)
        self._second = np.empty(second, np.uint8)

    def chunk(self, frame: np.ndarray, pool: Executor | None = None) -> np.ndarray:
        """The compressed chunk (a view of an internal buffer: valid until the next call;
        one call at a time)."""
        flat = np.ascontiguousarray(frame).reshape(-1)
        # .data: the array's buffer as a memoryview (numpy's stubs give ndarray the buffer
        # protocol only for Python 3.12+)
        HEADER.pack_into(self._out.data, 0, flat.nbytes, BLOCK_ELEMENTS * self.itemsize)
        start = HEADER.size
        if pool is None or self._half == 0:
            return self._out[: start + self._blocks(flat, self._out[start:])]
        second = pool.submit(self._blocks, flat[self._half :], self._second)
        written = self._blocks(flat[: self._half], self._out[start:])
        more = second.result()
        self._out[start + written : start + written + more] = self._second[:more]
        return self._out[: start + written + more]

    def _blocks(self, elements: np.ndarray, out: np.ndarray) -> int:
        """Bitshuffle/LZ4 blocks of ``elements`` into ``out``; their length in bytes."""
        written = self._compress(
            elements.ctypes.data, out.ctypes.data, elements.size, self.itemsize, BLOCK_ELEMENTS
        )
        if written < 0:
            raise RuntimeError(f"bitshuffle/LZ4 compression failed (error {written})")
        return written
