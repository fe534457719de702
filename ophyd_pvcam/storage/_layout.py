"""The frame file's layout, in one place: where the images and their records live.

The layout is areaDetector's ``AD_HDF5`` (``docs/decisions/0004-...``), so that
``area-detector-handlers`` and tiled read the files as they are.  Every module that
writes or reads a frame file takes its paths from here.
"""

from __future__ import annotations

import numpy as np

SPEC = "AD_HDF5"
DATA_PATH = "/entry/data/data"  # the images the run references, one row per frame
UNREFERENCED_PATH = "/entry/data/unreferenced"  # images acquired that no event points at
RECORDS_GROUP = "/entry/instrument/NDAttributes"  # per-row records and the file's settings
RECORD_DTYPES = {  # per-row records beside the images
    "frame_number": np.int64,
    "timestamp_bof": np.float64,  # camera clock, s
    "timestamp_eof": np.float64,
    "frame_time": np.float64,  # wall clock, s since the epoch
    "lost_before": np.int64,  # frames lost just before this one
}
LOST_NUMBERS = "lost_frame_numbers"  # numbers of the frames counted lost
UNREFERENCED_NUMBERS = "unreferenced_frame_numbers"


def record_path(name: str) -> str:
    """Where the per-row record ``name`` lives."""
    return f"{RECORDS_GROUP}/{name}"


def stream_datasets(name: str) -> dict[str, str]:
    """The keys of a declared fly stream of device ``name`` and where each is in the file."""
    return {
        f"{name}_image": DATA_PATH,
        f"{name}_frame_number": record_path("frame_number"),
        f"{name}_frame_time": record_path("frame_time"),
        f"{name}_lost_before": record_path("lost_before"),
    }
