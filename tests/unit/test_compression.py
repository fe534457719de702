"""bslz4 chunks made by ophyd-pvcam are the ones HDF5's own filter 32008 makes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import h5py
import hdf5plugin
import numpy as np
import pytest

from ophyd_pvcam.storage import BLOCK_ELEMENTS, Bslz4


def filter_chunk(tmp_path, frame: np.ndarray) -> bytes:
    """The chunk HDF5 stores for ``frame`` through the filter itself."""
    with h5py.File(tmp_path / "reference.h5", "w") as f:
        dataset = f.create_dataset(
            "d",
            data=frame[None],
            chunks=(1, *frame.shape),
            **hdf5plugin.Bitshuffle(nelems=BLOCK_ELEMENTS, cname="lz4"),
        )
        _mask, chunk = dataset.id.read_direct_chunk((0, 0, 0))
    return bytes(chunk)


@pytest.mark.parametrize("shape", [(2048, 2048), (512, 1024), (128, 128), (100, 37), (3, 5)])
def test_one_thread_and_two_halves_make_the_filters_own_chunk(tmp_path, shape):
    frame = np.random.default_rng(3).integers(0, 4096, shape, dtype=np.uint16)
    reference = filter_chunk(tmp_path, frame)
    codec = Bslz4(shape)
    with ThreadPoolExecutor(1) as pool:
        assert bytes(codec.chunk(frame, pool)) == reference
    assert bytes(codec.chunk(frame)) == reference
