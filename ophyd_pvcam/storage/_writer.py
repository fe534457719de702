"""Frames into one HDF5 file in the AD_HDF5 layout, on a thread of their own.

``/entry/data/data`` (rows, height, width), one chunk per frame, is what the run's
datums point at: ``area-detector-handlers``' AD_HDF5 handler and tiled read it
directly.  ``/entry/instrument/NDAttributes`` holds one record per row (the camera's
frame number, its begin/end-of-frame times, the wall-clock time) and the numbers of
frames known to be lost, so a reader can always tell what is missing.  The file is
written in SWMR mode: another process can read it while it grows.

The run and the file agree at the end: :meth:`FrameWriter.close` keeps exactly the
rows the run references in ``/entry/data/data``; rows it does not (the frames of a
step point that never completed, frames acquired after a fly scan's last collect)
move to ``/entry/data/unreferenced``, with their frame numbers, so nothing the camera
delivered disappears and nothing the run cannot describe is left where it reads.
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ophyd_pvcam.errors import DiskError

from ._compression import Bslz4, dataset_options
from ._layout import (
    DATA_PATH,
    LOST_NUMBERS,
    RECORD_DTYPES,
    RECORDS_GROUP,
    UNREFERENCED_NUMBERS,
    UNREFERENCED_PATH,
)
from ._queue import FrameQueue

log = logging.getLogger(__name__)

FLUSH_ASKS = 2  # flush_now asks again once after a failed flush
FLUSH_INTERVAL_S = 0.5
GROW_FRAMES = 256  # the dataset grows in blocks (chunks take no space until written)
RESERVE_MIN_BYTES = 32 << 20  # held beside a file so it can always be flushed and closed
STOP_MARGIN_BYTES = 1 << 20  # writing stops when this (and four frames) is all that is left
# Frames at least this big are compressed in halves on two threads (and their own work,
# a step point's statistics, runs beside the write).  A hand-off costs
# tens of microseconds of Python and GIL traffic: at 128 x 32 (6 kHz) that slowed the camera
# to two thirds of its rate, while a 512 x 512 frame compresses in ~0.3 ms on one core.
PARALLEL_MIN_BYTES = 1 << 20
# A fly scan's small frames share chunks of about this size (ADR 0012): HDF5 costs ~150 us
# per chunk whatever its size, which at 128 x 32 and 6 kHz is more than a frame period.
BATCH_MAX_FRAME_BYTES = 256 << 10  # frames up to this size are batched
BATCH_CHUNK_BYTES = 1 << 20
# Every this many bytes stored, a helper thread syncs the file and drops its pages from
# the page cache: on a VM, the page cache growing into memory the guest has not used yet
# costs the writing thread ~25 ms of CPU per 8 MiB (the host backs each new page);
# pages dropped are reused at once, at ~1 ms per 8 MiB, and memory stays bounded.
SYNC_EVERY_BYTES = 64 << 20


def frames_per_chunk(shape: tuple[int, int], batch: bool) -> int:
    """How many frames of ``shape`` go in one HDF5 chunk: one, unless ``batch`` (a fly
    scan) and the frame is small."""
    frame_bytes = int(shape[0]) * int(shape[1]) * 2
    if not batch or frame_bytes > BATCH_MAX_FRAME_BYTES:
        return 1
    return max(1, min(GROW_FRAMES, BATCH_CHUNK_BYTES // frame_bytes))


def reserve_bytes(frame_bytes: int) -> int:
    """Space left free on the disk while frames are written: an HDF5 file whose last
    writes fail cannot be closed and stays unreadable, so writing stops short of full."""
    return max(RESERVE_MIN_BYTES, 4 * frame_bytes)


def _hold_reserve(path: Path, size: int) -> Path | None:
    """Disk space for closing ``path`` cleanly, held in a file beside it: the free-space
    check stops writing short of a full disk only if nobody else fills it, and an HDF5
    file whose last writes failed cannot be closed (it stays unreadable, and its handle
    open).  Released when the disk fills, and at close."""
    reserve = path.with_name(path.name + ".reserve")
    try:
        fd = os.open(reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        log.warning("%s: no disk space held for closing it: %s", path, error)
        return None
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:  # a file system without fallocate, or the space is not there
        log.warning("%s: no disk space held for closing it: %s", path, error)
        os.close(fd)
        reserve.unlink(missing_ok=True)
        return None
    os.close(fd)
    return reserve


def free_bytes(folder: Path) -> int:
    """Free space where ``folder`` is (or would be created)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return 0


def disk_error(folder: Path, why: str) -> DiskError:
    return DiskError(
        f"cannot write frames to {folder}: {why} ({free_bytes(folder) / 2**20:.0f} MiB free)"
    )


def check_free_space(folder: Path, frame_bytes: int, frames: int = 0) -> None:
    """Refuse, before any file exists, an acquisition the disk cannot take: the space held
    for closing the file, room for a few frames more than writing stops at, and
    ``frames`` frames when their number is known."""
    needed = (
        reserve_bytes(frame_bytes) + STOP_MARGIN_BYTES + 20 * frame_bytes + frames * frame_bytes
    )
    free = free_bytes(folder)
    if free < needed:
        raise DiskError(
            f"cannot write frames to {folder}: {free / 2**20:.0f} MiB free, "
            f"{needed / 2**20:.0f} MiB needed"
            + (f" for {frames} frames of {frame_bytes / 2**20:.2f} MiB" if frames else "")
            + "; free some space or set another write_path"
        )


def _write_rows(dataset: h5py.Dataset, start: int, values: np.ndarray) -> None:
    """``dataset[start:start + len(values)] = values`` through h5py's low-level API: a
    third of the cost, which a step scan pays for five records at every point."""
    rows = dataset.id.get_space()
    rows.select_hyperslab((start,), (len(values),))
    dataset.id.write(h5py.h5s.create_simple((len(values),)), rows, np.ascontiguousarray(values))


@dataclass(frozen=True)
class Row:
    """One frame for the writer: where it goes and what to record beside it."""

    row: int
    number: int
    bof: float
    eof: float
    time: float
    lost_before: int
    generation: int = 0  # of the rows it was placed among (a retake makes a new one)


class FrameFile:
    """One SWMR HDF5 file: create, write rows, flush, close keeping the referenced rows.

    Used from one thread at a time (the writer's); not thread-safe by itself.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int],
        attributes: dict[str, Any],
        compression: str = "none",
        frames_per_chunk: int = 1,
    ):
        self.path = path
        self.shape = tuple(int(n) for n in shape)
        self.compression = compression
        self.frames_per_chunk = batch = max(1, int(frames_per_chunk))
        h, w = self.shape
        self._codec = Bslz4((batch, h, w)) if compression == "bslz4" else None
        # batched frames gather here until their chunk is full or the file is flushed
        # (a partly filled chunk is stored at every flush, its missing rows zero, and
        # stored again once more of its rows come: what a flush made visible stays)
        self._batch = np.zeros((batch, h, w), np.uint16) if batch > 1 else None
        self._batch_index = -1  # the chunk in _batch (-1: none)
        self._batch_dirty = False
        self._batch_filled = 0  # rows of the chunk in _batch, from its start, filled
        self._batch_on_disk = 0  # ... and of those, stored in the file
        self.bytes_stored = 0  # chunk bytes handed to HDF5
        # the first row a failed store of a batch left out of the file (its rows are no
        # longer counted in ``rows``): the writer counts them unwritten
        self.first_unstored: int | None = None
        self._records = {
            name: np.zeros(GROW_FRAMES, dtype) for name, dtype in RECORD_DTYPES.items()
        }
        self.rows = 0  # rows written (the highest written + 1)
        self._allocated = 0  # rows the dataset has room for (asking HDF5 costs per frame)
        self._flushed = 0  # records on disk up to here
        self._dirty_from = 0  # records changed since the last flush start here
        path.parent.mkdir(parents=True, exist_ok=True)
        f = h5py.File(path, "w-", libver="latest")
        try:
            h, w = self.shape
            self._data = f.create_dataset(
                DATA_PATH,
                shape=(0, h, w),
                maxshape=(None, h, w),
                chunks=(batch, h, w),
                dtype=np.uint16,
                **dataset_options(compression),
            )
            records = self._records_group = f.require_group(RECORDS_GROUP)
            # kept: looking them up and asking their size at every flush costs more than
            # writing them (a step point flushes each time)
            self._record_sets = {
                name: records.create_dataset(
                    name, shape=(0,), maxshape=(None,), chunks=(4096,), dtype=dtype
                )
                for name, dtype in (*RECORD_DTYPES.items(), (LOST_NUMBERS, np.int64))
            }
            self._lost_rows = 0  # rows of lost frame numbers on disk
            entry = f["entry"]
            entry.attrs["created"] = datetime.datetime.now().astimezone().isoformat()
            for key, value in attributes.items():
                entry.attrs[key] = value if isinstance(value, str) else json.dumps(value)
            f.swmr_mode = True  # after every object exists
        except BaseException:
            f.close()
            path.unlink(missing_ok=True)
            raise
        self._file: h5py.File | None = f
        self._lost: list[int] = []
        self._reserve_file = _hold_reserve(path, reserve_bytes(self.frame_bytes))

    @property
    def frame_bytes(self) -> int:
        h, w = self.shape
        return h * w * 2

    @property
    def compresses_in_parallel(self) -> bool:
        """Worth compressing each frame in halves on two threads."""
        return self._codec is not None and self.frame_bytes >= PARALLEL_MIN_BYTES

    @property
    def batched(self) -> bool:
        """Frames share chunks: :meth:`write` them with no chunk (no :meth:`chunk` per
        frame)."""
        return self._batch is not None

    def chunk(self, pixels: np.ndarray, pool: Executor | None = None) -> np.ndarray:
        """The chunk to store for ``pixels`` (compressed in halves on ``pool`` and this
        thread if given; valid until the next call)."""
        pixels = np.ascontiguousarray(pixels, np.uint16)
        return pixels if self._codec is None else self._codec.chunk(pixels, pool)

    def _grow(self, rows: int) -> None:
        if rows > self._allocated:  # resizing per frame would cost more than the frame
            self._allocated = max(rows, self._allocated + GROW_FRAMES)
            self._data.resize(self._allocated, axis=0)

    def _write_chunk(self, row: int, chunk: np.ndarray) -> None:
        """The one HDF5 call that stores frames: the chunk that starts at ``row``."""
        self._data.id.write_direct_chunk((row, 0, 0), chunk)
        self.bytes_stored += chunk.nbytes

    def dup_fileno(self) -> int | None:
        """A duplicate of the file's descriptor (the caller closes it), to sync and drop
        its pages from another thread; None if HDF5's driver has no plain descriptor."""
        try:
            handle = self._open_file().id.get_vfd_handle()
            return os.dup(int(handle))
        except (OSError, RuntimeError, TypeError, ValueError):
            return None

    def write(self, row: Row, pixels: np.ndarray, chunk: np.ndarray | None) -> None:
        """Store ``chunk`` (from :meth:`chunk`) as ``row`` and record ``row``'s numbers;
        batched frames (``chunk`` None) go into their chunk, see ``_put``."""
        if self._batch is not None:
            self._put(row, pixels)
            return
        assert chunk is not None
        self._grow(row.row + 1)
        self._write_chunk(row.row, chunk)
        self._record(row)

    def _put(self, row: Row, pixels: np.ndarray) -> None:
        """Batched frames: copy ``pixels`` into ``row``'s chunk, stored once it is full
        (or at the next flush), and record ``row``'s numbers."""
        batch = self._batch
        assert batch is not None
        index, at = divmod(row.row, self.frames_per_chunk)
        if index != self._batch_index:
            self._store_batch()
            self._load_batch(index)
        batch[at] = pixels
        self._batch_dirty = True
        self._batch_filled = max(self._batch_filled, at + 1)
        self._record(row)
        if at == self.frames_per_chunk - 1:
            self._store_batch()

    def _load_batch(self, index: int) -> None:
        """Begin chunk ``index``: zeros, or the rows of it already in the file (a row
        written again after rows were dropped)."""
        batch = self._batch
        assert batch is not None
        start = index * self.frames_per_chunk
        batch[:] = 0
        present = min(self.rows, self._allocated, start + self.frames_per_chunk) - start
        if present > 0:
            self._data.read_direct(batch, np.s_[start : start + present], np.s_[:present])
        self._batch_index = index
        self._batch_filled = self._batch_on_disk = max(0, present)

    def _store_batch(self) -> None:
        """Store the chunk being filled, if anything changed in it."""
        if self._batch is None or not self._batch_dirty:
            return
        start = self._batch_index * self.frames_per_chunk
        self._batch_dirty = False  # a failed store is not tried again
        try:
            self._grow(start + self.frames_per_chunk)
            self._write_chunk(start, self.chunk(self._batch))
        except BaseException:
            # the rows not stored before are not in the file: they stop counting (their
            # records are not flushed either), so what the file holds is what it says
            first = start + self._batch_on_disk
            if self.rows > first:
                self.rows = first
            if self.first_unstored is None or first < self.first_unstored:
                self.first_unstored = first
            raise
        self._batch_on_disk = self._batch_filled

    def _record(self, row: Row) -> None:
        if row.row >= len(self._records["frame_number"]):
            for name, values in self._records.items():
                self._records[name] = np.resize(values, 2 * (row.row + 1))
        values = (row.number, row.bof, row.eof, row.time, row.lost_before)
        for name, value in zip(RECORD_DTYPES, values, strict=True):
            self._records[name][row.row] = value
        self._dirty_from = min(self._dirty_from, row.row)
        self.rows = max(self.rows, row.row + 1)

    def record_lost(self, numbers: list[int], reasons: dict[str, int]) -> None:
        """The numbers of frames known lost, and how many for each reason (at close)."""
        self._lost.extend(numbers)
        if self._file is not None:
            self._file["entry"].attrs["lost_frames"] = json.dumps(reasons)

    def annotate(self, name: str, value: Any) -> None:
        """Record ``value`` (as JSON) among the file's attributes (at close)."""
        if self._file is not None:
            self._file["entry"].attrs[name] = json.dumps(value)

    def flush(self) -> None:
        """Make everything written so far visible to readers (records are written in
        batches: resizing four small datasets per frame would cost more than a frame).
        A partly filled chunk of batched frames is stored first, so every row recorded
        is in the file."""
        self._store_batch()
        # the frames' chunks reach the file before the records that point readers at
        # them: a reader following the file (SWMR) never sees a recorded row without
        # its pixels (one flush of both let it see zeros now and then)
        file = self._open_file()
        self._data.flush()
        start = min(self._dirty_from, self._flushed)
        for name in RECORD_DTYPES:
            dataset = self._record_sets[name]
            if self._flushed != self.rows:
                dataset.id.set_extent((self.rows,))
            if self.rows > start:
                _write_rows(dataset, start, self._records[name][start : self.rows])
        if self._lost:
            begin, self._lost_rows = self._lost_rows, self._lost_rows + len(self._lost)
            dataset = self._record_sets[LOST_NUMBERS]
            dataset.id.set_extent((self._lost_rows,))
            _write_rows(dataset, begin, np.asarray(self._lost, np.int64))
            self._lost.clear()
        file.flush()
        self._flushed = self._dirty_from = self.rows

    def release_reserve(self) -> None:
        """Give back the disk space held for closing (the disk is full: the close may
        need it now).  Idempotent."""
        reserve, self._reserve_file = self._reserve_file, None
        if reserve is not None:
            reserve.unlink(missing_ok=True)

    def close(self, keep: int, end: int | None = None) -> int:
        """Keep the first ``keep`` rows where the run reads them; move the rest, up to
        ``end``, to ``unreferenced``; rows from ``end`` on are dropped (the caller has
        counted their frames lost, with the reason).  Returns how many were moved.
        Idempotent."""
        if self._file is None:
            return 0
        self.release_reserve()
        if end is not None:
            self.rows = min(self.rows, end)
        moved = max(0, self.rows - keep)
        try:
            self._store_batch()  # the rows moved are read back from the file
            if moved:
                try:
                    self._move_unreferenced(keep)
                except (OSError, RuntimeError) as error:  # no room left even for them
                    log.error("%s: %d unreferenced frames dropped: %s", self.path, moved, error)
            self.rows = min(self.rows, keep)
            self._data.resize(self.rows, axis=0)  # drop the unused end of the last block
            self.flush()
        finally:
            self._file.close()
            self._file = None
        return moved

    def _move_unreferenced(self, keep: int) -> None:
        h, w = self.shape
        extra = self._data[keep : self.rows]
        f = self._open_file()
        f.create_dataset(
            UNREFERENCED_PATH,
            data=extra,
            chunks=(1, h, w),
            maxshape=(None, h, w),
            **dataset_options(self.compression),
        )
        numbers = self._records["frame_number"][keep : self.rows]
        self._records_group.create_dataset(UNREFERENCED_NUMBERS, data=numbers)
        f.flush()

    @property
    def closed(self) -> bool:
        return self._file is None

    def _open_file(self) -> h5py.File:
        """The file; a call after :meth:`close` (a writer thread that outlived the
        session's wait for it) raises RuntimeError, which the writer reports."""
        if self._file is None:
            raise RuntimeError(f"{self.path.name} is already closed")
        return self._file


class FrameWriter:
    """Drains a :class:`~ophyd_pvcam.storage.FrameQueue` into a :class:`FrameFile`.

    The owner thread submits frames (:meth:`submit`); this thread writes them in order and
    flushes at least every half second, and as soon as the queue is empty after
    :meth:`flush_soon`.  ``on_progress(processed, flushed)`` (called from this thread)
    reports how many submitted frames are written, and how many of those are flushed:
    a step point is done when its last frame is flushed.  A failed write (a full disk)
    becomes ``error``, a :class:`~ophyd_pvcam.errors.DiskError` naming the folder and its
    free space; frames after it are released unwritten (the session counts them lost).
    """

    def __init__(
        self,
        file: FrameFile,
        queue: FrameQueue,
        on_progress: Callable[[int, int], None],
        on_row: Callable[[Row, np.ndarray], None] | None = None,
        name: str = "camera",
        stale: Callable[[Row], bool] | None = None,
    ):
        self.file = file
        self._stale = stale  # a row dropped while it waited (its point was taken again)
        self.first_unwritten: int | None = None  # the lowest row a failure left unwritten
        self._queue = queue
        self._on_progress = on_progress
        self._on_row = on_row
        self._condition = threading.Condition()
        self.submitted = 0  # by the owner thread
        self.processed = 0  # by this thread: written, or dropped after an error
        self.flushed = 0  # processed frames known to be on disk
        self.flush_attempts = 0  # flushes tried, whatever came of them
        self.error: DiskError | None = None
        # the space held beside the file is the reserve for closing it; writing stops
        # when a few frames' worth is left besides
        self._stop_below = 4 * file.frame_bytes + STOP_MARGIN_BYTES
        self._unchecked = 0  # bytes written since free space was last checked
        self._flush_requested = False
        self._stop = False
        # compressing takes longer than writing: a big frame is compressed in halves, one
        # on a helper thread (the library releases the GIL), so both cores work; and a big
        # frame's own work (a step point's mean and max, ~1.5 ms at full frame) runs on
        # it beside the write, compressed or not
        beside = on_row is not None and file.frame_bytes >= PARALLEL_MIN_BYTES
        self._helper = (
            ThreadPoolExecutor(1, thread_name_prefix=f"{name}-compress")
            if file.compresses_in_parallel or (beside and not file.batched)
            else None
        )
        self._thread = threading.Thread(target=self._run, name=f"{name}-writer", daemon=True)
        self._sync_wanted = threading.Event()
        self._sync_done = False
        self._synced_at = 0  # file.bytes_stored when the last sync was asked for
        self._syncer: threading.Thread | None = None
        self.sync_error: OSError | None = None  # set by the syncer, read by the writer

    def _start_syncer(self) -> None:
        fd = self.file.dup_fileno()
        if fd is None:
            return
        self._syncer = threading.Thread(
            target=self._sync_pages, args=(fd,), name=f"{self._thread.name}-sync", daemon=True
        )
        self._syncer.start()

    def _sync_pages(self, fd: int) -> None:
        """Sync the file and drop its clean pages from the page cache, whenever asked
        (the writer goes on meanwhile; the call waits for the disk, not the CPU)."""
        try:
            while True:
                self._sync_wanted.wait()
                self._sync_wanted.clear()
                if self._sync_done:
                    return
                try:
                    os.fdatasync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                except OSError as error:
                    # the one place a write-back failure shows (HDF5 never syncs): the
                    # writer fails the acquisition with it at its next frame or flush
                    log.error("%s: sync failed: %s", self.file.path, error)
                    self.sync_error = self.sync_error or error
        finally:
            os.close(fd)

    def _maybe_sync(self) -> None:
        if self.file.bytes_stored - self._synced_at >= SYNC_EVERY_BYTES:
            self._synced_at = self.file.bytes_stored
            if self._syncer is None:
                self._start_syncer()
            self._sync_wanted.set()

    def _stop_syncer(self) -> None:
        self._sync_done = True
        self._sync_wanted.set()
        if self._syncer is not None:
            self._syncer.join()

    def start(self) -> None:
        """Start the thread: only now do the callbacks run (whoever holds the writer may
        use it in them)."""
        self._thread.start()

    def submit(self, slot: int, row: Row, flush: bool = False) -> int:
        """Queue a filled slot; returns its sequence number (1, 2, ...).  ``flush``: flush
        as soon as this frame is written (the last frame of a step point)."""
        self.submitted += 1
        self._queue.put(slot, (row, flush))
        return self.submitted

    def flush_soon(self) -> None:
        """Flush as soon as the frames submitted so far are written."""
        self._flush_requested = True

    def flush_now(self, timeout: float) -> bool:
        """Wait until the frames written so far are flushed (not those still queued).
        A flush that fails is asked for once more; after that (a disk that stays full)
        this returns False at once rather than at the timeout."""
        target = self.processed
        asks, seen = 0, self.flush_attempts
        deadline = time.monotonic() + timeout
        with self._condition:
            while self.flushed < target and self._thread.is_alive():
                if asks == 0 or self.flush_attempts > seen:
                    if asks == FLUSH_ASKS:
                        return False
                    seen, asks = self.flush_attempts, asks + 1
                    self.flush_soon()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(min(remaining, 0.1))
        return self.flushed >= target

    def drain(self, timeout: float) -> bool:
        """Wait until everything submitted is written and flushed (or failed)."""
        self.flush_soon()
        deadline = time.monotonic() + timeout
        with self._condition:
            while self.flushed < self.submitted and self.error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._condition.wait(min(remaining, 0.1))
        return True

    def stop(self, timeout: float) -> bool:
        """Write and flush what is queued, then end; False if that took too long."""
        with self._condition:
            self._stop = True
        self._queue.wake()  # not a poll's length later: a session's close waits for this
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._loop()
        finally:  # also if the loop died: the syncer holds a copy of the file's descriptor
            self._stop_syncer()

    def _loop(self) -> None:
        last_flush = time.monotonic()
        while True:
            item = self._queue.get(0.1)
            if self.sync_error is not None and self.error is None:
                self._fail(self.sync_error, kept=False)  # frames from here: not written
            flush_now = False
            if item is not None:
                slot, (row, flush_now) = item
                try:
                    self._write(row, self._queue.buffer(slot))
                finally:
                    self._queue.release(slot)
                self.processed += 1
                self._maybe_sync()
            idle = self._queue.depth == 0
            now = time.monotonic()
            due = flush_now or (self._flush_requested and idle)
            if due or now - last_flush >= FLUSH_INTERVAL_S:
                self._flush_requested = False
                self._flush()
                last_flush = now
            if item is not None or idle:
                self._on_progress(self.processed, self.flushed)
            with self._condition:
                self._condition.notify_all()
                if self._stop and idle and self.processed >= self.submitted:
                    break
        if self._helper is not None:
            self._helper.shutdown()
        self._stop_syncer()  # before the file can close: it syncs a copy of its descriptor
        self._flush()
        self._on_progress(self.processed, self.flushed)
        with self._condition:
            self._condition.notify_all()

    def _flush(self) -> None:
        """Flush; on a failure, once more in the space held for closing.  A flush that
        still fails is tried again at the next one (the final one included): until one
        succeeds, the rows written since the last are not handed over, and a run must
        not lose them for good because the disk was full for a moment.  The attempt is
        counted once ``flushed`` says how it went (``flush_now`` reads them together)."""
        if self._flushed_file():
            self.flushed = self.processed
        self.flush_attempts += 1

    def _flushed_file(self) -> bool:
        try:
            self.file.flush()  # after a failed write too: what was written is kept
            return True
        except (OSError, RuntimeError) as error:
            if self.error is None:
                self._fail(error)  # gives back the space held for closing
        try:
            self.file.flush()  # in the space given back
            return True
        except (OSError, RuntimeError) as again:
            log.warning("%s: flush failed again (%s); tried again later", self.file.path, again)
            return False

    def _write(self, row: Row, pixels: np.ndarray) -> None:
        if self._stale is not None and self._stale(row):
            return  # counted lost by the session when it dropped the row; never written
        if self.error is not None:
            self._not_written(row)  # counted lost by the session
            return
        self._unchecked += pixels.nbytes
        if self._unchecked >= self._stop_below // 4:  # stop before the disk is full
            self._unchecked = 0
            if free_bytes(self.file.path.parent) < self._stop_below:
                self._refuse(row, DiskError(f"the disk is nearly full (writing stops with "
                                            f"{self._stop_below / 2**20:.0f} MiB left, so "
                                            "the file closes cleanly)"))  # fmt: skip
                return
        if self.file.batched:  # small frames share chunks: one copy, no HDF5 call
            try:
                self.file.write(row, pixels, None)
            except (OSError, RuntimeError) as error:
                self._refuse(row, error)
                return
            if self._on_row is not None:
                self._on_row(row, pixels)
            return
        try:
            chunk = self.file.chunk(pixels, self._helper)
        except RuntimeError as error:
            self._refuse(row, error)
            return
        # the row's own work (a step point's mean and max) runs on the helper while this
        # thread writes: both release the GIL
        beside = None
        if self._on_row is not None and self._helper is not None:
            beside = self._helper.submit(self._on_row, row, pixels)
        try:
            self.file.write(row, pixels, chunk)
        except (OSError, RuntimeError) as error:
            self._refuse(row, error)
            return
        finally:
            if beside is not None:
                beside.result()
        if self._on_row is not None and beside is None:
            self._on_row(row, pixels)

    def _refuse(self, row: Row, error: BaseException) -> None:
        """Stop writing for ``error``, from ``row`` on (counted lost by the session)."""
        self._fail(error)
        self._not_written(row)

    def _not_written(self, row: Row) -> None:
        if self.first_unwritten is None or row.row < self.first_unwritten:
            self.first_unwritten = row.row

    def _fail(self, error: BaseException, kept: bool = True) -> None:
        """Stop writing, for ``error``; ``kept``: the frames written before are on disk
        (False when the disk failed to take them back from memory)."""
        unstored = self.file.first_unstored  # a batch of rows that did not reach the file
        if unstored is not None and (
            self.first_unwritten is None or unstored < self.first_unwritten
        ):
            self.first_unwritten = unstored
        full = isinstance(error, OSError) and error.errno == errno.ENOSPC
        what = "the disk is full" if full else str(error)
        self.error = disk_error(
            self.file.path.parent,
            f"{what}; the {self.file.rows} frames written before are kept"
            if kept
            else f"{what} while writing back to disk; of the {self.file.rows} frames "
            "written before, some may not be on disk",
        )
        self.file.release_reserve()  # the final flush and the close need it now
        log.error("%s", self.error)
