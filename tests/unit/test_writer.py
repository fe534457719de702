"""The writer thread alone: frames from the memory queue land row for row in the file,
progress is reported as they are written and flushed, and a disk that fills up stops
the writing with a :class:`DiskError` naming the folder, keeps what was written, and
gives every slot back to the queue."""

from __future__ import annotations

import errno
import os
import threading
import time

import h5py
import numpy as np
import pytest

from ophyd_pvcam.errors import DiskError
from ophyd_pvcam.storage import (
    DATA_PATH,
    UNREFERENCED_PATH,
    FrameFile,
    FrameQueue,
    FrameWriter,
    Row,
)
from ophyd_pvcam.storage import _writer as writer_module

DEADLINE = 10.0
SHAPE = (8, 16)


class Progress:
    """What the writer reported, from its thread."""

    def __init__(self):
        self.calls: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def __call__(self, processed: int, flushed: int) -> None:
        with self.lock:
            self.calls.append((processed, flushed))


def submit(queue: FrameQueue, writer: FrameWriter, numbers, flush_last: bool = False) -> None:
    numbers = list(numbers)
    for i, number in enumerate(numbers):
        slot = take_slot(queue)
        queue.buffer(slot)[...] = number
        row = Row(writer.submitted, number, 0.0, 0.0, float(number), 0)
        writer.submit(slot, row, flush=flush_last and i == len(numbers) - 1)


def take_slot(queue: FrameQueue) -> int:
    """A free slot, waiting (with a deadline) for the writer to give one back."""
    deadline = time.monotonic() + DEADLINE
    while (slot := queue.slot()) is None:
        assert time.monotonic() < deadline, f"no slot free within {DEADLINE} s"
        threading.Event().wait(0.001)
    return slot


def every_slot_free(queue: FrameQueue) -> bool:
    taken = []
    while (slot := queue.slot()) is not None:
        taken.append(slot)
    for slot in taken:
        queue.release(slot)
    return len(taken) == queue.capacity


@pytest.fixture
def queue():
    frames = FrameQueue(SHAPE, np.uint16, capacity=8)
    yield frames
    frames.close()


@pytest.mark.parametrize(
    ("batch", "compression"), [(1, "none"), (4, "none"), (4, "bslz4")], ids=str
)
def test_frames_land_row_for_row_and_progress_ends_flushed(queue, tmp_path, batch, compression):
    """Also with frames batched four to a chunk (ADR 0012): 20 rows, 15 kept."""
    file = FrameFile(tmp_path / "f.h5", SHAPE, {"device": "cam"}, compression, batch)
    progress = Progress()
    writer = FrameWriter(file, queue, progress)
    writer.start()
    submit(queue, writer, range(1, 6), flush_last=True)
    assert writer.drain(DEADLINE)
    submit(queue, writer, range(6, 21))  # more than the queue holds: slots come back
    assert writer.drain(DEADLINE)
    assert writer.stop(DEADLINE)
    assert writer.error is None and writer.processed == writer.flushed == 20
    processed = [p for p, _ in progress.calls]
    assert processed == sorted(processed) and progress.calls[-1] == (20, 20)
    assert all(flushed <= done for done, flushed in progress.calls)
    assert file.close(keep=15) == 5  # rows the run does not reference move apart
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert f[DATA_PATH].chunks == (batch, *SHAPE)
        assert [int(frame[0, 0]) for frame in f[DATA_PATH][()]] == list(range(1, 16))
        assert [int(frame[0, 0]) for frame in f[UNREFERENCED_PATH][()]] == list(range(16, 21))
    assert every_slot_free(queue)


def test_a_full_disk_stops_the_writing_and_keeps_what_was_written(queue, tmp_path, monkeypatch):
    write = FrameFile.write

    def write_until_full(self, row, pixels, chunk):
        if row.row >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, row, pixels, chunk)

    monkeypatch.setattr(FrameFile, "write", write_until_full)
    file = FrameFile(tmp_path / "f.h5", SHAPE, {})
    writer = FrameWriter(file, queue, Progress())
    writer.start()
    submit(queue, writer, range(1, 8))
    assert writer.drain(DEADLINE)
    assert writer.stop(DEADLINE)
    assert isinstance(writer.error, DiskError)
    assert str(tmp_path) in str(writer.error) and "the disk is full" in str(writer.error)
    assert "the 3 frames written before are kept" in str(writer.error)
    assert writer.processed == 7 and file.rows == 3  # the rest were dropped, not written
    assert every_slot_free(queue)  # every slot given back, written or not
    file.close(keep=file.rows)
    with h5py.File(tmp_path / "f.h5", "r") as f:  # closed cleanly: a plain open reads it
        assert [int(frame[0, 0]) for frame in f[DATA_PATH][()]] == [1, 2, 3]


def test_writing_stops_short_of_a_full_disk_so_the_file_still_closes(queue, tmp_path, monkeypatch):
    file = FrameFile(tmp_path / "f.h5", SHAPE, {})
    # writing stops with four frames' worth left (1 KiB), checked at every frame: after
    # three frames the disk has less left
    monkeypatch.setattr(writer_module, "STOP_MARGIN_BYTES", 0)
    free = iter([1 << 20] * 3)
    monkeypatch.setattr(writer_module, "free_bytes", lambda folder: next(free, 512))
    writer = FrameWriter(file, queue, Progress())
    writer.start()
    submit(queue, writer, range(1, 200))
    assert writer.drain(DEADLINE)
    assert writer.stop(DEADLINE)
    assert isinstance(writer.error, DiskError) and "nearly full" in str(writer.error)
    assert file.rows == 3 and writer.processed == 199
    file.close(keep=file.rows)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert [int(frame[0, 0]) for frame in f[DATA_PATH][()]] == [1, 2, 3]


def test_a_partly_filled_batch_is_in_the_file_at_every_flush_and_a_rewrite_keeps_the_rest(
    tmp_path,
):
    """Batched frames (five to a chunk): what a flush made visible -- here to a second
    reader while the file stays open, as a crash would leave it -- holds every row
    recorded, the partial chunk's included; rows dropped and written again (a retake)
    land in their chunk without disturbing its other rows."""
    path = tmp_path / "f.h5"
    file = FrameFile(path, SHAPE, {}, "bslz4", frames_per_chunk=5)

    def put(row: int, number: int) -> None:
        file.write(Row(row, number, 0.0, 0.0, 0.0, 0), np.full(SHAPE, number, np.uint16), None)

    for row in range(7):  # one full chunk, two rows of the next
        put(row, row + 1)
    file.flush()
    with h5py.File(path, "r", swmr=True) as f:  # the file is still open for writing
        numbers = f["entry/instrument/NDAttributes/frame_number"][()]
        frames = f[DATA_PATH][: len(numbers)]
    assert list(numbers) == list(range(1, 8))
    assert [int(frame[0, 0]) for frame in frames] == list(range(1, 8))
    assert all((frame == frame[0, 0]).all() for frame in frames)
    put(8, 9)  # the flushed partial chunk is filled in further ...
    put(3, 100)  # ... and a row of the first chunk is written again
    put(7, 8)
    file.close(keep=9)
    with h5py.File(path, "r") as f:
        stored = [int(frame[0, 0]) for frame in f[DATA_PATH][()]]
        numbers = list(f["entry/instrument/NDAttributes/frame_number"][()])
    assert stored == [1, 2, 3, 100, 5, 6, 7, 8, 9]
    assert numbers == stored


def test_the_written_pages_are_synced_and_dropped_from_the_page_cache_on_the_side(
    queue, tmp_path, monkeypatch
):
    """Every SYNC_EVERY_BYTES stored (here every frame), a helper syncs the file and
    drops its pages; it ends before the writer does, and the frames are intact."""
    monkeypatch.setattr(writer_module, "SYNC_EVERY_BYTES", 1)
    dropped = []
    fadvise = os.posix_fadvise

    def recording(fd, offset, length, advice):
        dropped.append(advice)
        fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording)
    file = FrameFile(tmp_path / "f.h5", SHAPE, {})
    writer = FrameWriter(file, queue, Progress())
    writer.start()
    submit(queue, writer, range(1, 11))
    assert writer.drain(DEADLINE)
    assert writer.stop(DEADLINE)
    assert dropped and set(dropped) == {os.POSIX_FADV_DONTNEED}
    assert writer._syncer is not None and not writer._syncer.is_alive()
    file.close(keep=file.rows)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert [int(frame[0, 0]) for frame in f[DATA_PATH][()]] == list(range(1, 11))


def test_a_failed_write_back_fails_the_writer_and_counts_later_frames_unwritten(
    queue, tmp_path, monkeypatch
):
    """HDF5 never syncs: the helper's sync is where a disk that cannot take the pages
    back (an I/O error, a quota or a full disk seen only at write-back) shows.  The
    writer fails with it, saying the frames before may not be on disk, and writes no
    more (found by a review: the helper only logged it)."""
    monkeypatch.setattr(writer_module, "SYNC_EVERY_BYTES", 1)
    synced = threading.Event()

    def failing(fd):
        synced.set()
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    file = FrameFile(tmp_path / "f.h5", SHAPE, {})
    writer = FrameWriter(file, queue, Progress())
    writer.start()
    submit(queue, writer, range(1, 3))
    assert synced.wait(DEADLINE)
    deadline = time.monotonic() + DEADLINE
    while writer.sync_error is None and time.monotonic() < deadline:
        synced.wait(0.01)  # set by the helper thread just after it raised
    submit(queue, writer, range(3, 6))
    writer.drain(DEADLINE)
    assert writer.stop(DEADLINE)
    assert isinstance(writer.error, DiskError)
    assert "Input/output error while writing back to disk" in str(writer.error)
    assert "some may not be on disk" in str(writer.error)
    assert writer.first_unwritten is not None and writer.first_unwritten <= 2
    file.close(keep=file.rows)
