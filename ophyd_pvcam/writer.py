"""HDF5 files in the AD_HDF5 layout, and the Resource/Datum documents that point at them.

One file holds one dataset ``/entry/data/data`` of shape (frames, height,
width), one chunk per frame, so ``area-detector-handlers``' AD_HDF5 handler
and tiled read it directly.  Beside it, ``/entry/instrument/NDAttributes``
holds per-frame records (the camera's frame number, its BOF/EOF times) and
the frame numbers known to be lost, so a reader can always tell what is
missing.  The file is written in SWMR mode: another process can read it while
it grows (rows beyond ``frames_written`` are unwritten space until the file is
closed, when the dataset is trimmed to the frames written).
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from event_model import ComposeResource

from .paths import frame_file_path

log = logging.getLogger(__name__)

DATA_PATH = "/entry/data/data"
ATTRIBUTES = "/entry/instrument/NDAttributes"
FLUSH_INTERVAL_S = 0.5
GROW_FRAMES = 256  # the dataset grows in blocks (chunks take no space until written)
# per-frame records (and the lost frame numbers) beside the images
RECORDS = {
    "frame_number": np.int64,
    "timestamp_bof": np.float64,
    "timestamp_eof": np.float64,
    "lost_frame_numbers": np.int64,
}


class FrameWriter:
    """Appends frames to one SWMR HDF5 file and describes them as documents.

    ``frames_per_point`` frames make one datum (a step-scan point, or one
    frame of a fly scan).  Frames lost inside a point are written as zero
    placeholders, so later points stay where the datums say they are; they
    are listed as lost in the file.
    """

    def __init__(
        self,
        root: Path,
        shape: tuple[int, int],
        frames_per_point: int = 1,
        dtype: np.dtype | str = np.uint16,
        attributes: dict[str, Any] | None = None,
        device: str = "camera",
        kind: str = "frames",
    ):
        self.root = Path(root).resolve()
        self.shape = tuple(int(n) for n in shape)
        self.frames_per_point = int(frames_per_point)
        self.dtype = np.dtype(dtype)
        self.resource_path, self.run_uid = frame_file_path(self.root, device, kind)
        self.path = self.root / self.resource_path
        self._identity = {"device": device, "kind": kind, "run_uid": self.run_uid or ""}
        self._attributes = attributes or {}
        self._lock = threading.Lock()
        self._file: h5py.File | None = None
        self._data: h5py.Dataset | None = None
        self._frames = 0
        self._lost = 0
        self._pending: dict[str, list] = {name: [] for name in RECORDS}
        self._last_flush = 0.0
        self._asset_docs: list[tuple[str, dict]] = []
        self._points = 0
        bundle = ComposeResource(start=None)(
            spec="AD_HDF5",
            root=str(self.root),
            resource_path=self.resource_path,
            resource_kwargs={"frame_per_point": self.frames_per_point},
        )
        self._resource, self._compose_datum = bundle.resource_doc, bundle.compose_datum

    # ---- file ---------------------------------------------------------------

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = h5py.File(self.path, "w-", libver="latest")
        try:
            h, w = self.shape
            self._data = f.create_dataset(
                DATA_PATH,
                shape=(0, h, w),
                maxshape=(None, h, w),
                chunks=(1, h, w),
                dtype=self.dtype,
            )
            records = f.require_group(ATTRIBUTES)
            for name, dtype in RECORDS.items():
                records.create_dataset(
                    name, shape=(0,), maxshape=(None,), chunks=(4096,), dtype=dtype
                )
            entry = f["entry"]
            entry.attrs.update(self._identity)
            entry.attrs["created"] = datetime.datetime.now().astimezone().isoformat()
            entry.attrs["camera_settings"] = json.dumps(self._attributes, default=str)
            f.swmr_mode = True  # after every object exists
        except BaseException:
            f.close()
            raise
        self._file = f
        self._last_flush = time.monotonic()
        log.info("Writing frames to %s", self.path)

    @property
    def frames_written(self) -> int:
        """Rows in the dataset, placeholders included."""
        return self._frames

    def append(self, pixels: np.ndarray, number: int, bof: float, eof: float) -> int:
        """Append one frame (C-contiguous, of the file's shape and dtype); returns its row."""
        with self._lock:
            self._require_open()
            row = self._frames
            data = self._data
            if row >= data.shape[0]:  # resizing per frame would cost more than the frame
                data.resize(row + GROW_FRAMES, axis=0)
            data.id.write_direct_chunk((row, 0, 0), np.ascontiguousarray(pixels, self.dtype))
            self._pending["frame_number"].append(number)
            self._pending["timestamp_bof"].append(bof)
            self._pending["timestamp_eof"].append(eof)
            self._frames = row + 1
            if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
                self._flush_locked()
            return row

    def append_placeholder(self, number: int) -> int:
        """Stand in for a lost frame inside a point with zeros; record it lost."""
        row = self.append(np.zeros(self.shape, self.dtype), 0, np.nan, np.nan)
        self.record_lost([number])
        return row

    def record_lost(self, numbers: list[int]) -> None:
        with self._lock:
            self._lost += len(numbers)
            self._pending["lost_frame_numbers"].extend(numbers)

    def flush(self) -> None:
        """Make everything appended so far visible to readers."""
        with self._lock:
            if self._file is not None:
                self._flush_locked()

    def _flush_locked(self) -> None:
        # per-frame records are written in batches: resizing four small
        # datasets per frame would cost more than the frame itself
        records = self._file[ATTRIBUTES]
        for name, values in self._pending.items():
            if values:
                dataset = records[name]
                start = dataset.shape[0]
                dataset.resize(start + len(values), axis=0)
                dataset[start:] = values
                values.clear()
        self._file.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush and close (idempotent): the file is complete and readable after this."""
        with self._lock:
            if self._file is None:
                return
            try:
                self._data.resize(self._frames, axis=0)  # drop the unused end of the last block
                self._flush_locked()
            finally:
                self._file.close()
                self._file = None
            log.info("Closed %s with %d frames (%d lost)", self.path, self._frames, self._lost)

    def _require_open(self) -> h5py.File:
        if self._file is None:
            raise RuntimeError(f"{self.path} is not open for writing")
        return self._file

    # ---- documents ------------------------------------------------------------

    def add_point(self) -> str:
        """Declare the next ``frames_per_point`` rows as one datum; returns its id."""
        with self._lock:
            if self._points == 0:
                self._asset_docs.append(("resource", self._resource))
            datum = self._compose_datum(datum_kwargs={"point_number": self._points}, validate=False)
            self._points += 1
            self._asset_docs.append(("datum", datum))
            return datum["datum_id"]

    def datum_id(self, point: int) -> str:
        """The id of the datum :meth:`add_point` made (or will make) for ``point``."""
        return f"{self._resource['uid']}/{point}"

    def collect_asset_docs(self) -> Iterator[tuple[str, dict]]:
        """Yield (and forget) the Resource and Datum documents not yet handed over."""
        with self._lock:
            docs, self._asset_docs = self._asset_docs, []
        yield from docs
