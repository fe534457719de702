"""One per-row record of a frame file, read as it stands on disk.

:func:`~ophyd_pvcam.storage.read_frame_file` reads a file's identity and trims its
records to the rows the images have; a caller that only needs one record column, as
written (``ophyd-pvcam show`` finding the camera's number of a frame within a step
scan's point), reads it here, by its name in the layout, without opening the images.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from ._layout import RECORD_DTYPES, record_path


def read_record(path: str | os.PathLike, name: str) -> np.ndarray:
    """The per-row record ``name`` (one of the layout's ``RECORD_DTYPES``) of a frame
    file, whole.  The file is opened for SWMR reading, so a file still being written
    (or whose writer died) reads too.  Raises OSError for a file HDF5 cannot open,
    KeyError for a file without that record, ValueError for a name the layout does
    not know or a record that is not a dataset."""
    if name not in RECORD_DTYPES:
        raise ValueError(f"no per-row record {name!r} in the frame file layout")
    where = record_path(name)
    with h5py.File(path, "r", swmr=True, libver="latest") as f:
        node = f[where]
        if not isinstance(node, h5py.Dataset):
            raise ValueError(f"{where} is not an HDF5 dataset")
        return np.asarray(node[()])
