"""Streaming, sequences, triggers and circular-buffer semantics of the simulator."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pyvcam import constants as const
from pyvcam import pvc

import ophyd_pvcam.sim as sim
from ophyd_pvcam.hardware.sdk import (
    CIRC_NO_OVERWRITE,
    CIRC_OVERWRITE,
    PL_CALLBACK_BOF,
    PL_CALLBACK_EOF,
    FrameCounter,
    PvcamError,
    Region,
    Sdk,
)

POLL_MS = 2000


@pytest.mark.realtime
def test_500_frame_live_run_at_full_frame_16_bit(camera):
    """The SDK example's run from the stall report, reproduced through pyvcam.

    The simulator paces frames on absolute deadlines of the monotonic clock,
    so the delivered rate is a property of the model (~47 fps), not of how
    busy this machine is, as long as the consumer keeps up.
    """
    camera.exp_time = 10
    camera.start_live(buffer_frame_count=16)
    numbers, counts = [], []
    try:
        started = time.monotonic()
        for _ in range(500):
            frame, _fps, count = camera.poll_frame(timeout_ms=POLL_MS)
            numbers.append(sim.frame_number(frame["pixel_data"]))
            counts.append(count)
        elapsed = time.monotonic() - started
    finally:
        camera.finish()
    assert numbers == list(range(1, 501))
    assert counts == list(range(1, 501))  # no frame lost in pvc's queue either
    assert frame["pixel_data"].shape == (2048, 2048)
    assert frame["pixel_data"].dtype == np.uint16
    fps = 499 / elapsed  # first poll returns at frame 1's end
    assert 45 <= fps <= 49, f"{fps:.1f} fps"


def test_sequence_returns_distinct_frames_in_order(camera):
    camera.set_roi(0, 0, 128, 64)
    camera.start_seq(exp_time=1, num_frames=12)
    frames = [camera.poll_frame(timeout_ms=POLL_MS)[0]["pixel_data"] for _ in range(12)]
    assert camera.check_frame_status() == "READOUT_COMPLETE"
    camera.finish()
    assert [sim.frame_number(f) for f in frames] == list(range(1, 13))
    assert len({f.tobytes() for f in frames}) == 12


def test_software_trigger_mode_waits_for_each_trigger(camera):
    camera.exp_mode = "Software Trigger Edge"
    camera.set_roi(0, 0, 64, 64)
    camera.start_seq(exp_time=1, num_frames=3)
    try:
        with pytest.raises(RuntimeError, match="Frame timeout"):
            camera.poll_frame(timeout_ms=300)
        for expected in (1, 2, 3):
            camera.sw_trigger()
            frame, _, _ = camera.poll_frame(timeout_ms=POLL_MS)
            assert sim.frame_number(frame["pixel_data"]) == expected
    finally:
        camera.finish()


def test_software_trigger_is_refused_in_internal_mode(camera):
    camera.start_live(exp_time=1)
    try:
        with pytest.raises(ValueError, match="software trigger"):
            camera.sw_trigger()
    finally:
        camera.finish()


def test_edge_trigger_mode_exposes_on_each_external_edge(camera):
    camera.exp_mode = "Edge Trigger"
    camera.set_roi(0, 0, 64, 64)
    camera.start_live(exp_time=1)
    try:
        with pytest.raises(RuntimeError, match="Frame timeout"):
            camera.poll_frame(timeout_ms=300)
        for expected in (1, 2):
            assert sim.fire_edge(0)
            frame, _, _ = camera.poll_frame(timeout_ms=POLL_MS)
            assert sim.frame_number(frame["pixel_data"]) == expected
    finally:
        camera.finish()


def test_an_exposure_mode_the_camera_does_not_list_is_refused_with_185(camera):
    """Bare TIMED_MODE is what another driver passed; PVCAM refuses it at start."""
    with pytest.raises(RuntimeError, match="code 185"):
        pvc.start_live(camera.handle, camera.rois, 10, const.TIMED_MODE, 16, None)
    assert camera.check_frame_status() == "READOUT_NOT_ACTIVE"


def _sdk_stream(camera, buffer_mode: int, slots: int):
    """Start a continuous acquisition through ctypes; returns (sdk, counter, buffer)."""
    sdk = Sdk()
    region = Region.of(0, 0, 64, 32)
    frame_bytes = sdk.setup_cont(camera.handle, region, 1, buffer_mode)
    buffer = np.zeros(frame_bytes * slots // 2, dtype=np.uint16)
    counter = FrameCounter()
    sdk.on_frame(camera.handle, PL_CALLBACK_EOF, counter)
    sdk.start_cont(camera.handle, buffer)
    return sdk, counter, region, buffer


def test_no_overwrite_without_unlocking_halts_when_the_buffer_is_full(camera):
    sdk, counter, region, _buffer = _sdk_stream(camera, CIRC_NO_OVERWRITE, slots=20)
    try:
        assert counter.wait_beyond(19, timeout=5)
        deadline = time.monotonic() + 5
        while not sim.buffer_full(0):
            assert time.monotonic() < deadline, "acquisition never halted"
            counter.wait_beyond(counter.count, timeout=0.05)
        assert not counter.wait_beyond(20, timeout=0.3)  # no 21st frame, ever
        assert counter.count == 20
        status, _, _ = sdk.status(camera.handle)
        assert status == "FRAME_AVAILABLE"  # still claims to be running
        assert sdk.latest_frame(camera.handle, region.shape).number == 20
        # releasing one slot lets exactly one more frame in
        sdk.unlock_oldest(camera.handle)
        assert counter.wait_beyond(20, timeout=5)
        assert not counter.wait_beyond(21, timeout=0.3)
    finally:
        sdk.abort(camera.handle)
        sdk.clear_callback(camera.handle, PL_CALLBACK_EOF)


def test_no_overwrite_with_oldest_and_unlock_streams_past_the_buffer(camera):
    sdk, counter, region, _buffer = _sdk_stream(camera, CIRC_NO_OVERWRITE, slots=8)
    numbers = []
    try:
        while len(numbers) < 100:
            assert counter.wait_beyond(len(numbers), timeout=5), f"stalled at {len(numbers)}"
            frame = sdk.oldest_frame(camera.handle, region.shape)
            assert sim.frame_number(frame.pixels) == frame.number
            numbers.append(frame.number)
            sdk.unlock_oldest(camera.handle)
    finally:
        sdk.abort(camera.handle)
        sdk.clear_callback(camera.handle, PL_CALLBACK_EOF)
    assert numbers == list(range(1, 101))


def test_overwrite_keeps_streaming_and_overwrites_the_oldest(camera):
    sdk, counter, region, _buffer = _sdk_stream(camera, CIRC_OVERWRITE, slots=4)
    try:
        assert counter.wait_beyond(30, timeout=5)
        latest = sdk.latest_frame(camera.handle, region.shape)
        oldest = sdk.oldest_frame(camera.handle, region.shape)
        assert latest.number - oldest.number == 3  # only 4 slots survive
        assert sim.frame_number(oldest.pixels) == oldest.number
        assert sdk.status(camera.handle)[2] >= 7  # the buffer wrapped
    finally:
        sdk.abort(camera.handle)
        sdk.clear_callback(camera.handle, PL_CALLBACK_EOF)


def test_a_held_up_callback_overwrites_frames_counted_and_never_slows_the_sensor(camera):
    """The sensor does not wait for the host: while the first EOF callback is held, it
    goes on copying frames into the 4-slot buffer; the frames overwritten before their
    callback came are skipped (a gap in frame numbers) and counted.  The oldest frame
    the camera then hands out is one it delivered, with its own record (a review found
    it computed from the delivered count as if no frame had been skipped: a frame never
    delivered, under another frame's record)."""
    import threading

    sdk = Sdk()
    region = Region.of(0, 0, 64, 32)  # 32 rows: ~0.33 ms per frame
    frame_bytes = sdk.setup_cont(camera.handle, region, 1, CIRC_OVERWRITE)
    buffer = np.zeros(frame_bytes * 4 // 2, dtype=np.uint16)
    release, held = threading.Event(), threading.Event()
    arrived = []

    oldest = []  # (this callback's frame, the oldest frame's record, its pixels' stamp)

    def on_eof(info):
        arrived.append((info.FrameNr, info.TimeStampBOF))
        if not held.is_set():
            held.set()
            release.wait(10)
        elif len(oldest) < 8:
            frame = sdk.oldest_frame(camera.handle, region.shape)
            oldest.append((info.FrameNr, frame.number, sim.frame_number(frame.pixels)))

    before = sim.stats(0)
    sdk.on_frame(camera.handle, PL_CALLBACK_EOF, on_eof)
    sdk.start_cont(camera.handle, buffer)
    try:
        assert held.wait(5), "no first callback"
        held_number = arrived[0][0]  # 1, unless the callback thread was slow to run at all
        deadline = time.monotonic() + 10
        while (sim.stats(0) - before).frames_written < held_number + 60:  # the sensor goes on
            assert time.monotonic() < deadline, "the sensor waited for the callback"
            time.sleep(0.005)
        written_while_held = (sim.stats(0) - before).frames_written
        assert len(arrived) == 1  # still inside the first callback
        release.set()
        deadline = time.monotonic() + 10
        while len(arrived) < 20:
            assert time.monotonic() < deadline, "callbacks did not resume"
            time.sleep(0.005)
    finally:
        release.set()
        sdk.abort(camera.handle)
        sdk.clear_callback(camera.handle, PL_CALLBACK_EOF)
    run = sim.stats(0) - before
    numbers = [number for number, _ in arrived]
    # the frames after the held one, up to written_while_held - 4, were rewritten before
    # their callback came (and any before it, if the callback thread started late)
    assert numbers[0] == held_number
    assert run.frames_overwritten >= written_while_held - 4 - 1
    assert numbers[1] > written_while_held - 4 > held_number
    assert numbers == sorted(set(numbers))  # no frame twice, none out of order
    # everything the sensor wrote was delivered, counted overwritten, or still queued
    # when the acquisition stopped
    assert run.frames_written >= len(arrived) + run.frames_overwritten
    assert run.sensor_cpu_ns > 0 and run.callback_cpu_ns > 0  # both threads accounted
    assert oldest and all(record == stamp <= number for number, record, stamp in oldest), (
        oldest
    )  # a delivered frame, its own record, not newer than the one just delivered


def test_frame_records_carry_the_modelled_timing(camera):
    """BOF/EOF callbacks: FrameNr from 1; TimeStampBOF one period apart;
    EOF an exposure plus a readout after BOF; all in 0.1 ms units."""
    sdk = Sdk()
    region = Region.of(0, 0, 256, 512)  # readout 512 x 10.39 us = 5.32 ms
    frame_bytes = sdk.setup_cont(camera.handle, region, 8, CIRC_OVERWRITE)  # 8 ms exposure
    buffer = np.zeros(frame_bytes * 8 // 2, dtype=np.uint16)
    bofs = []
    sdk.on_frame(camera.handle, PL_CALLBACK_BOF, lambda i: bofs.append(i.FrameNr))
    eof_counter = FrameCounter()
    records = []

    def on_eof(info):
        records.append((info.FrameNr, info.TimeStampBOF, info.TimeStamp, info.ReadoutTime))
        eof_counter(info)

    sdk.on_frame(camera.handle, PL_CALLBACK_EOF, on_eof)
    sdk.start_cont(camera.handle, buffer)
    try:
        assert eof_counter.wait_beyond(10, timeout=5)
    finally:
        sdk.abort(camera.handle)
        sdk.clear_callback(camera.handle, PL_CALLBACK_EOF)
        sdk.clear_callback(camera.handle, PL_CALLBACK_BOF)
    numbers = [r[0] for r in records]
    assert numbers[:10] == list(range(1, 11))
    assert bofs[:10] == list(range(1, 11))
    bof_steps = np.diff([r[1] for r in records[:10]])
    assert set(bof_steps) <= {79, 80, 81}  # period = max(8 ms, 5.32 ms)
    durations = [r[2] - r[1] for r in records[:10]]
    assert all(132 <= d <= 134 for d in durations)  # 8 ms + 5.32 ms
    assert all(r[3] == 53 for r in records[:10])


@pytest.mark.parametrize(
    ("port", "roi_height", "exposure_ms", "expected_period_ms"),
    [
        ("Sensitivity", 2048, 1, 21.28),  # 16-bit full frame: ~47 fps
        ("Speed", 2048, 1, 10.64),  # 11-bit full frame: ~94 fps
        ("Sensitivity", 512, 1, 5.32),  # readout shrinks with ROI height
        ("Sensitivity", 512, 30, 30.0),  # exposure-limited
    ],
)
def test_frame_period_is_max_of_exposure_and_readout(
    camera, port, roi_height, exposure_ms, expected_period_ms
):
    camera.readout_port = port
    sdk = Sdk()
    region = Region.of(0, 0, 2048, roi_height, binning=4)
    frame_bytes = sdk.setup_cont(camera.handle, region, exposure_ms, CIRC_OVERWRITE)
    buffer = np.zeros(frame_bytes * 4 // 2, dtype=np.uint16)
    records = []
    counter = FrameCounter()

    def on_eof(info):
        records.append(info.TimeStampBOF)
        counter(info)

    sdk.on_frame(camera.handle, PL_CALLBACK_EOF, on_eof)
    sdk.start_cont(camera.handle, buffer)
    try:
        assert counter.wait_beyond(6, timeout=5)
    finally:
        sdk.abort(camera.handle)
        sdk.clear_callback(camera.handle, PL_CALLBACK_EOF)
    period_ms = (records[6] - records[0]) / 6 * 0.1
    assert period_ms == pytest.approx(expected_period_ms, abs=0.1)


def test_frame_metadata_carries_the_camera_frame_number_and_clock(camera):
    """With metadata on (off by default, as on the real camera), pyvcam hands
    over the frame header: FrameNr and BOF/EOF times in ps since the start."""
    assert camera.metadata_enabled is False
    camera.metadata_enabled = True
    camera.set_roi(8, 16, 256, 128)
    camera.start_live(exp_time=5)
    try:
        frames = [camera.poll_frame(timeout_ms=POLL_MS)[0] for _ in range(4)]
    finally:
        camera.finish()
    headers = [f["meta_data"]["frame_header"] for f in frames]
    assert [h["frameNr"] for h in headers] == [1, 2, 3, 4]
    assert [sim.frame_number(f["pixel_data"]) for f in frames] == [1, 2, 3, 4]
    assert frames[0]["pixel_data"].shape == (128, 256)
    assert frames[0]["meta_data"]["roi_headers"][0]["roi"]["s1"] == 8
    bofs = [h["timestampBofPs"] for h in headers]
    assert set(np.diff(bofs)) == {5_000_000_000}  # exposure-limited: 5 ms apart
    readout_ps = 128 * 10_390_000
    assert headers[0]["timestampEofPs"] - bofs[0] == 5_000_000_000 + readout_ps
    assert headers[0]["exposureTimePs"] == 5_000_000_000
    assert headers[0]["bitDepth"] == 16


def test_pvcam_errors_reach_python_as_runtime_errors(camera):
    with pytest.raises(PvcamError, match="is not a circular mode"):
        Sdk().setup_cont(camera.handle, Region.of(0, 0, 64, 64), 1, 0)
