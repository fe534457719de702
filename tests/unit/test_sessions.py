"""Step and fly sessions, the writer and the owner thread, on the pure-Python fake camera.

Fast (no C, no pyvcam, frames every millisecond) and deterministic (what happens to
each frame is scripted).  The fake also enforces the one-owner rule: a call from a
second thread, or a parameter call while frames stream, raises in the owner thread
and fails the acquisition.
"""

from __future__ import annotations

import errno
import json
import threading
import time

import bluesky.plan_stubs as bps
import h5py
import numpy as np
import pytest
from bluesky import RunEngine

from ophyd_pvcam import (
    CameraAcquisitionError,
    DiskError,
    PrimeBSI,
)
from ophyd_pvcam.errors import FrameStallError
from ophyd_pvcam.storage import FrameFile, FrameQueue, Row
from ophyd_pvcam.storage import _queue as memory
from ophyd_pvcam.storage import _writer as writer
from ophyd_pvcam.testing import FakeBackend, fake_frame_number

DEADLINE = 10.0


@pytest.fixture
def fake():
    return FakeBackend(period_s=0.001)


@pytest.fixture
def cam(fake, tmp_path):
    device = PrimeBSI("cam", backend=lambda: fake, write_path=tmp_path)
    device.roi.put((0, 0, 16, 8))
    device.exposure_time.put(0.001)
    yield device
    device.close()


BITSHUFFLE = 32008  # the HDF5 filter id of bitshuffle/LZ4


def filter_ids(dataset: h5py.Dataset) -> list[int]:
    plist = dataset.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def file_numbers(path) -> list[int]:
    with h5py.File(path, "r") as f:  # a plain open: the file is closed
        return [fake_frame_number(frame) for frame in f["/entry/data/data"][()]]


def wait_until(condition, what: str, timeout: float = DEADLINE) -> None:
    """Poll ``condition`` (state another thread changes) until it holds, or fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        threading.Event().wait(0.002)


def only_file(cam):
    (path,) = list(cam.write_path.rglob("*.h5"))
    return path


def collect(cam) -> list[int]:
    """What a collect hands over (outside a RunEngine: a Datum per frame and a page of
    events): the camera's frame numbers."""
    list(cam.collect_asset_docs())
    return [n for page in cam.collect_pages() for n in page["data"]["cam_frame_number"]]


def fly(cam, frames: int) -> list[int]:
    cam.num_frames.put(frames)
    cam.kickoff().wait(DEADLINE)
    cam.complete().wait(DEADLINE)
    return collect(cam)


def test_a_fly_hands_over_every_frame_and_closes_its_file(cam, fake):
    assert fly(cam, 50) == list(range(1, 51))
    assert file_numbers(only_file(cam)) == list(range(1, 51))
    assert fake.stop_calls == 1 and not fake.streaming


def test_collecting_before_complete_keeps_the_camera_running(cam, fake):
    """kickoff, collect, collect, complete: the normal shape of a long fly scan."""
    cam.num_frames.put(300)
    cam.kickoff().wait(DEADLINE)
    handed = []
    for landed in (30, 60):
        wait_until(lambda n=landed: fake.frames_made >= n, f"{landed} frames")
        handed += collect(cam)
        assert fake.streaming and fake.stop_calls == 0  # collect never stops the camera
    assert 0 < len(handed) < 300
    cam.complete().wait(DEADLINE)
    handed += collect(cam)
    assert handed == list(range(1, 301))


@pytest.mark.parametrize("when", ["at once", "mid-way", "after the end"])
def test_complete_always_finishes_whenever_it_is_called(cam, fake, when):
    for _ in range(3):  # the end of acquisition races complete(): it must never hang
        cam.num_frames.put(20)
        made = fake.frames_made
        cam.kickoff().wait(DEADLINE)
        if when == "mid-way":
            wait_until(lambda n=made + 10: fake.frames_made >= n, "half the frames")
        elif when == "after the end":
            wait_until(lambda: not cam.acquiring, "the end of the acquisition")
        cam.complete().wait(DEADLINE)
        assert collect(cam) == list(range(1, 21))


def test_a_step_point_is_done_only_when_its_frames_are_on_disk(cam):
    cam.frames_per_point.put(3)
    cam.stage()
    for _ in range(4):
        cam.trigger().wait(DEADLINE)
        reading = cam.read()
        assert reading["cam_image"]["value"]  # the point's datum
    docs = list(cam.collect_asset_docs())
    assert [name for name, _ in docs] == ["resource"] + ["datum"] * 4
    cam.unstage()
    assert file_numbers(only_file(cam)) == list(range(1, 13))


def test_a_frame_dropped_inside_a_point_is_replaced_by_a_fresh_trigger(cam, fake):
    fake.script[2] = "drop"
    cam.frames_per_point.put(3)
    cam.stage()
    cam.trigger().wait(DEADLINE)
    assert cam.dropped_frames.get() == 1
    cam.unstage()
    assert file_numbers(only_file(cam)) == [1, 3, 4]


def test_closing_a_staged_camera_closes_its_file(cam):
    cam.stage()
    cam.trigger().wait(DEADLINE)
    cam.close()
    assert file_numbers(only_file(cam)) == [1]  # readable by a plain (non-SWMR) open


def test_a_stall_fails_the_point_and_the_file_keeps_every_complete_point(cam, fake):
    cam.stall_timeout.put(0.3)
    fake.script[5] = "stall"
    cam.frames_per_point.put(2)
    cam.stage()
    cam.trigger().wait(DEADLINE)
    cam.trigger().wait(DEADLINE)
    with pytest.raises(FrameStallError, match="no frame for"):
        cam.trigger().wait(DEADLINE)
    assert cam.stalled.get() is True
    assert not fake.streaming  # stopped before the status failed
    assert file_numbers(only_file(cam)) == [1, 2, 3, 4]  # outside a run: every row kept
    cam.unstage()


@pytest.mark.parametrize(("fate", "error"), [("fail", "readout failure after frame 9"),
                                              ("lost", "disconnected after frame 9")])  # fmt: skip
def test_a_camera_failure_ends_the_fly_with_its_own_error(cam, fake, fate, error):
    fake.script[10] = fate
    cam.num_frames.put(50)
    cam.kickoff().wait(DEADLINE)
    with pytest.raises(CameraAcquisitionError, match=error):
        cam.complete().wait(DEADLINE)
    assert collect(cam) == list(range(1, 10))
    assert fly(cam, 5) == [1, 2, 3, 4, 5]  # the next one works


def test_a_refused_start_leaves_no_file_behind(cam, fake):
    fake.refuse_start = True
    cam.num_frames.put(5)
    with pytest.raises(CameraAcquisitionError, match="refused to start"):
        cam.kickoff().wait(DEADLINE)
    assert list(cam.write_path.rglob("*.h5")) == []
    fake.refuse_start = False
    assert len(fly(cam, 5)) == 5


@pytest.mark.parametrize("flushes_failing", [0, 2], ids=lambda n: f"{n}-flushes-failing")
@pytest.mark.parametrize("batch", [1, 10], ids=lambda n: f"{n}-per-chunk")
def test_a_full_disk_fails_the_fly_naming_the_folder_and_keeps_what_was_written(
    cam, fake, monkeypatch, batch, flushes_failing
):
    """Also with frames batched ten to a chunk (ADR 0012): the chunk of rows 30-39 is
    refused whenever it is stored, partly filled at a flush or whole, so exactly the
    rows before it are in the file, collected and counted written.  Also when the
    flushes fail too once the disk is full, the first and its retry (the records need
    space as well): a later flush hands the rows over (before, none ever was)."""
    from ophyd_pvcam.storage import _writer

    monkeypatch.setattr(_writer, "BATCH_CHUNK_BYTES", batch * 16 * 8 * 2)
    if batch == 1:
        monkeypatch.setattr(_writer, "BATCH_MAX_FRAME_BYTES", 0)
    if flushes_failing:
        monkeypatch.setattr(_writer, "FLUSH_INTERVAL_S", 60.0)  # no flush before the full disk
    write, flush = FrameFile._write_chunk, FrameFile.flush
    full = threading.Event()
    failures = []

    def write_until_full(self, row, chunk):
        if row >= 30:
            full.set()
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, row, chunk)

    def flush_failing_once_full(self):
        if full.is_set() and len(failures) < flushes_failing:
            failures.append(1)
            raise OSError(errno.ENOSPC, "No space left on device")
        flush(self)

    monkeypatch.setattr(FrameFile, "_write_chunk", write_until_full)
    monkeypatch.setattr(FrameFile, "flush", flush_failing_once_full)
    cam.num_frames.put(100)
    cam.kickoff().wait(DEADLINE)
    with pytest.raises(
        DiskError, match=r"cannot write frames to .*: the disk is full; .* MiB free"
    ):
        cam.complete().wait(DEADLINE)
    assert collect(cam) == list(range(1, 31))
    path = only_file(cam)
    assert file_numbers(path) == list(range(1, 31))
    with h5py.File(path, "r") as f:
        lost = json.loads(f["entry"].attrs["lost_frames"])
    assert lost.get("could not be written to disk", 0) >= 1  # counted, with the reason
    assert len(failures) == flushes_failing
    monkeypatch.setattr(FrameFile, "_write_chunk", write)
    assert len(fly(cam, 5)) == 5


def test_temperature_is_read_only_between_acquisitions(cam, fake):
    """While frames stream the device answers from its last idle reading; the fake
    raises (failing the acquisition) on any parameter call mid-stream."""
    cam.num_frames.put(200)
    cam.kickoff().wait(DEADLINE)
    readings = [cam.temperature.get() for _ in range(20)]
    configuration = cam.read_configuration()
    cam.complete().wait(DEADLINE)
    assert len(collect(cam)) == 200
    assert readings == [-20.0] * 20
    assert configuration["cam_temperature"]["value"] == -20.0


def test_settings_are_checked_once_in_the_callers_thread(cam):
    checks = []
    checker = cam.exposure_time.checker
    original = checker.check

    def counting(attr, value):
        checks.append(threading.current_thread())
        return original(attr, value)

    checker.check = counting
    status = cam.exposure_time.set(0.002)
    assert status.done and status.success
    assert checks == [threading.current_thread()]


INTEGER_SETTINGS = [
    "num_frames", "frames_per_point", "buffer_frames", "speed_index", "gain_index",
    "memory_buffer", "binning",
]  # fmt: skip


@pytest.mark.parametrize("attr", INTEGER_SETTINGS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_refused_naming_the_setting(cam, attr, value):
    before = getattr(cam, attr).get()
    with pytest.raises(ValueError, match=attr):
        getattr(cam, attr).set(value)
    assert getattr(cam, attr).get() == before


def test_pausing_a_fly_stops_the_camera_and_resuming_goes_on_for_the_rest(cam, fake):
    cam.num_frames.put(200)
    cam.kickoff().wait(DEADLINE)
    complete = cam.complete()
    wait_until(lambda: fake.frames_made >= 20, "frames")
    cam.pause()
    assert not fake.streaming and not complete.done  # complete() waits through the pause
    before = fake.frames_made
    cam.resume()
    complete.wait(DEADLINE)
    numbers = collect(cam)
    # the camera numbers each acquisition's frames from 1: the resumed one makes the rest
    assert numbers == list(range(1, before + 1)) + list(range(1, 200 - before + 1))
    assert cam.dropped_frames.get() == 0


def test_an_aborted_plan_stops_a_fly_that_was_collected_periodically(cam, fake):
    """kickoff, collect, then the plan fails elsewhere: bluesky would not collect again
    nor stop the camera; the end of the run does."""
    engine = RunEngine({})
    docs = []
    engine.subscribe(lambda name, doc: docs.append((name, doc)))
    cam.num_frames.put(100_000)

    def plan():
        yield from bps.open_run()
        yield from bps.kickoff(cam, wait=True)
        yield from bps.sleep(0.05)
        yield from bps.collect(cam)
        raise RuntimeError("another device failed")

    with pytest.raises(RuntimeError, match="another device failed"):
        engine(plan())
    assert not fake.streaming and not cam.acquiring
    stop = docs[-1][1]
    assert stop["exit_status"] == "fail"
    events = [d for name, d in docs if name in ("event", "event_page")]
    referenced = sum(len(d["seq_num"]) if isinstance(d["seq_num"], list) else 1 for d in events)
    path = only_file(cam)
    assert len(file_numbers(path)) == referenced  # the run reads exactly the file's rows
    with h5py.File(path, "r") as f:
        assert len(f["/entry/data/unreferenced"]) > 0  # the rest, kept apart


def test_snap_returns_a_fresh_frame_and_writes_nothing(cam, fake):
    first, second = cam.snap(), cam.snap()
    assert first.shape == (8, 16) and first.dtype == np.uint16
    assert fake_frame_number(first) == fake_frame_number(second) == 1  # a new acquisition each
    assert fake.starts == 2 and not fake.streaming
    assert list(cam.write_path.rglob("*")) == []


def test_a_live_view_streams_the_newest_frame_and_writes_nothing(cam, fake):
    seen = threading.Event()
    live = cam.live(on_frame=lambda frame, info: info.number >= 50 and seen.set())
    assert seen.wait(DEADLINE)
    assert cam.acquiring
    with pytest.raises(RuntimeError, match="busy"):
        cam.snap()
    frame, info = live.latest()
    assert fake_frame_number(frame) == info.number >= 50
    live.stop()
    assert not fake.streaming and not cam.acquiring
    assert live.lost == 0 and live.received >= 50
    assert list(cam.write_path.rglob("*")) == []
    cam.exposure_time.put(0.002)  # settings change once it has stopped
    assert cam.snap().shape == (8, 16)


def test_frames_are_lost_to_memory_only_when_it_is_full_and_counted_so(tmp_path, monkeypatch):
    """The writer is held up (a disk that stalls); the memory queue -- 16 MiB, eight 2 MiB
    frames -- fills, and only then are frames lost, each counted with its reason."""
    import dataclasses

    from ophyd_pvcam.testing import FAKE_CAPABILITIES

    big = dataclasses.replace(FAKE_CAPABILITIES, sensor_width=1024, sensor_height=1024)
    fake = FakeBackend(period_s=0.002, capabilities=big)
    disk = threading.Event()
    write = FrameFile.write

    def stalled_disk(self, row, pixels, chunk):
        disk.wait(DEADLINE)
        write(self, row, pixels, chunk)

    monkeypatch.setattr(FrameFile, "write", stalled_disk)
    cam = PrimeBSI("cam", backend=lambda: fake, write_path=tmp_path)
    try:
        cam.roi.put((0, 0, 1024, 1024))
        cam.memory_buffer.put(16)
        cam.compression.put("none")
        cam.num_frames.put(40)
        cam.kickoff().wait(DEADLINE)
        complete = cam.complete()
        wait_until(lambda: fake.frames_made >= 40 or complete.done, "the camera's frames")
        disk.set()
        complete.wait(DEADLINE)
        written = collect(cam)
        lost = cam.dropped_frames.get()
        assert lost > 0 and len(written) + lost == 40
        assert 8 <= len(written) < 40  # the memory held frames while the disk stalled
        summary = cam.loss_summary()
        assert "the memory buffer was full" in summary and "frames) was full on and off" in summary
    finally:
        cam.close()


@pytest.mark.parametrize("parallel", [False, True], ids=["one-thread", "two-threads"])
def test_compressed_frames_read_back_pixel_identical(cam, monkeypatch, parallel):
    # big frames compress in halves on two threads: each must still land whole in its row
    monkeypatch.setattr(writer, "PARALLEL_MIN_BYTES", 0 if parallel else 1 << 40)
    cam.compression.put("bslz4")
    fly(cam, 200)
    path = only_file(cam)
    with h5py.File(path, "r") as f:
        dataset = f["/entry/data/data"]
        assert BITSHUFFLE in filter_ids(dataset)  # bitshuffle/LZ4, the HDF5 filter
        assert [fake_frame_number(frame) for frame in dataset[()]] == list(range(1, 201))


@pytest.mark.parametrize("value", ["zip", "", None, 1])
def test_an_unknown_compression_is_refused_naming_the_choices(cam, value):
    with pytest.raises(ValueError, match=r"compression=.* choose one of 'none', 'bslz4'"):
        cam.compression.set(value)


def test_a_scan_during_a_live_view_is_refused_at_once(cam):
    live = cam.live()
    try:
        for start in (cam.stage, cam.kickoff):
            with pytest.raises(RuntimeError, match="busy with a live view"):
                start()
    finally:
        live.stop()
    assert fly(cam, 5) == [1, 2, 3, 4, 5]


def test_a_backlog_compressed_on_two_threads_lands_row_for_row(tmp_path):
    # a full queue before the writer starts, so the writer goes flat out: every frame is
    # compressed in halves on two threads, and a half out of place or from another frame
    # would show
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 2048, (40, 512, 1024), dtype=np.uint16)  # 1 MiB each
    queue = FrameQueue((512, 1024), np.uint16, capacity=len(frames))
    for number, pixels in enumerate(frames):
        slot = queue.slot()
        queue.buffer(slot)[...] = pixels
        queue.put(slot, (Row(number, number + 1, 0.0, 0.0, 0.0, 0), False))
    file = FrameFile(tmp_path / "f.h5", (512, 1024), {}, compression="bslz4")
    assert file.compresses_in_parallel
    frame_writer = writer.FrameWriter(file, queue, on_progress=lambda *_: None)
    frame_writer.start()
    frame_writer.submitted = len(frames)
    assert frame_writer.drain(DEADLINE)
    frame_writer.stop(DEADLINE)
    file.close(keep=len(frames))
    with h5py.File(tmp_path / "f.h5", "r") as f:
        np.testing.assert_array_equal(f["/entry/data/data"][()], frames)


def test_a_queue_whose_memory_is_not_mapped_yet_still_takes_every_frame(monkeypatch):
    # the helper that maps memory ahead never runs here: slots beyond the first two are
    # unmapped, and still every one is handed out (once) before a frame counts as lost
    monkeypatch.setattr(FrameQueue, "_touch_ahead", lambda self: None)
    monkeypatch.setattr(memory, "TOUCH_FIRST_BYTES", 1)
    queue = FrameQueue((4, 4), np.uint16, capacity=10)
    slots = [queue.slot() for _ in range(10)]
    assert sorted(slots) == list(range(10))
    assert queue.slot() is None  # now it is full
    for slot in slots:
        queue.buffer(slot)[...] = slot
    queue.release(slots[3])
    assert queue.slot() == slots[3]
    assert [int(queue.buffer(slot)[0, 0]) for slot in slots] == slots


def test_the_mapping_helper_never_zeroes_a_slot_handed_out(monkeypatch):
    # slots taken as fast as possible while the helper maps in small steps: mapped ones
    # from the bottom, unmapped ones from the top, never one the helper is still zeroing
    monkeypatch.setattr(memory, "TOUCH_FIRST_BYTES", 1)
    monkeypatch.setattr(memory, "TOUCH_AHEAD_BYTES", 64 * 64 * 2 * 16)
    for _ in range(20):
        before = set(threading.enumerate())
        queue = FrameQueue((64, 64), np.uint16, capacity=400)
        helpers = set(threading.enumerate()) - before  # the queue's mapping helper
        slots = []
        while (slot := queue.slot()) is not None:
            queue.buffer(slot)[...] = slot + 1
            slots.append(slot)
        queue.close()
        for helper in helpers:  # done mapping: any zeroing it did is in the buffers now
            helper.join(DEADLINE)
            assert not helper.is_alive()
        assert sorted(slots) == list(range(400))
        assert all(int(queue.buffer(slot).min()) == slot + 1 for slot in slots)


@pytest.mark.parametrize("parallel", [False, True], ids=["one-thread", "beside-the-write"])
def test_a_points_mean_and_max_are_those_of_its_frames_on_disk(cam, monkeypatch, parallel):
    # big frames get their statistics on the helper thread while they are written
    monkeypatch.setattr(writer, "PARALLEL_MIN_BYTES", 0 if parallel else 1 << 40)
    cam.compression.put("bslz4")
    cam.frames_per_point.put(2)
    cam.stage()
    readings = []
    for _ in range(3):
        cam.trigger().wait(DEADLINE)
        reading = cam.read()
        readings.append((reading["cam_mean"]["value"], reading["cam_max"]["value"]))
    cam.unstage()
    with h5py.File(only_file(cam), "r") as f:
        frames = f["/entry/data/data"][()].astype(np.float64)
    means, biggest = zip(*readings, strict=True)
    assert list(means) == pytest.approx([frames[i : i + 2].mean() for i in (0, 2, 4)])
    assert list(biggest) == [frames[i : i + 2].max() for i in (0, 2, 4)]
