"""Hazards reported from real PVCAM streams, as opt-in simulator faults.

Each hazard gets a loop that does the faulty thing (frames stop where the
report says) and one that does the right thing (every frame arrives):

- ``param_poll``: parameter calls while streaming (a background task reading
  temperature and readout time every 2 s) stopped the callbacks and left the
  status READOUT_NOT_ACTIVE;
- ``callback_reregister``: an EOF callback registered again without
  deregistering: callbacks died after ~5 frames;
- ``byte_limit``: the unverified "DMA limit" theory (~744-780 MB, whatever the
  frame size).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from pyvcam import constants as const
from pyvcam import pvc

import ophyd_pvcam.sim as sim
from ophyd_pvcam.hardware.sdk import (
    CIRC_OVERWRITE,
    PL_CALLBACK_EOF,
    FrameCounter,
    Region,
    Sdk,
)

POLL_MS = 1000
QUIET_S = 0.5  # how long "no more frames" is watched for (hundreds of frame periods)
# pvc's frame queue holds as many frames as the buffer: with 256 (8 MiB of small
# frames) no test frame is lost or overwritten however late a loaded machine polls.
BUFFER_FRAMES = 256


def _small_live(camera, exposure_ms: int = 2, height: int = 128) -> None:
    camera.set_roi(0, 0, 128, height)
    camera.start_live(exp_time=exposure_ms, buffer_frame_count=BUFFER_FRAMES)


def _collect(camera, count: int) -> list[int]:
    return [
        sim.frame_number(camera.poll_frame(timeout_ms=POLL_MS)[0]["pixel_data"])
        for _ in range(count)
    ]


def _poll_until_error(camera, limit: int = 2000, timeout_ms: int = 500):
    """Frame numbers polled until pyvcam raises, and the error."""
    numbers = []
    for _ in range(limit):
        try:
            frame, _, _ = camera.poll_frame(timeout_ms=timeout_ms)
        except RuntimeError as error:
            return numbers, error
        numbers.append(sim.frame_number(frame["pixel_data"]))
    raise AssertionError(f"frames never stopped ({limit} polled)")


def _generation_stopped(camera_index: int = 0) -> bool:
    """True if the camera produces no frame within QUIET_S."""
    before = sim.frames_generated(camera_index)
    deadline = time.monotonic() + QUIET_S
    while time.monotonic() < deadline:
        if sim.frames_generated(camera_index) != before:
            return False
        time.sleep(0.02)
    return True


class _RawStream:
    """A continuous acquisition through the ctypes binding, counting EOF callbacks."""

    def __init__(self, camera, on_eof=None, *, register: bool = True):
        self.sdk = Sdk()
        self.handle = camera.handle
        self.region = Region.of(0, 0, 64, 64)
        self.frame_bytes = self.sdk.setup_cont(self.handle, self.region, 1, CIRC_OVERWRITE)
        self.buffer = np.zeros(self.frame_bytes * 8 // 2, dtype=np.uint16)
        self.counter = FrameCounter()
        self.also_on_eof = on_eof
        if register:
            self.register()

    def on_eof(self, info) -> None:
        self.counter(info)
        if self.also_on_eof:
            self.also_on_eof(info)

    def register(self) -> None:
        self.sdk.on_frame(self.handle, PL_CALLBACK_EOF, self.on_eof)

    def start(self) -> None:
        self.sdk.start_cont(self.handle, self.buffer)

    def stop(self) -> None:
        self.sdk.abort(self.handle)
        self.sdk.clear_callback(self.handle, PL_CALLBACK_EOF)


# ---- param_poll ------------------------------------------------------------------


def test_param_poll_stops_frames_right_after_the_nth_mid_stream_call(camera):
    """Calls made from the EOF callback leave no frame in flight, so the stop is exact:
    one temperature read on frames 5, 10 and 15; the third call ends the stream."""
    sim.inject_fault("param_poll", after_calls=3)
    calls_before = sim.param_calls_mid_stream()
    stream = None

    def read_temperature(info):
        if info.FrameNr % 5 == 0:
            stream.sdk.get_param(stream.handle, const.PARAM_TEMP)

    stream = _RawStream(camera, read_temperature)
    stream.start()
    try:
        assert stream.counter.wait_beyond(14, timeout=5)  # calls 1 and 2 did no harm
        assert not stream.counter.wait_beyond(15, timeout=QUIET_S)
        assert stream.counter.count == 15
        assert stream.counter.last.FrameNr == 15
        assert stream.sdk.status(stream.handle)[0] == "READOUT_NOT_ACTIVE"
    finally:
        stream.stop()
    assert sim.param_calls_mid_stream() - calls_before == 3
    assert sim.last_param_mid_stream() == const.PARAM_TEMP
    assert sim.active_fault_count() == 1  # fires in every acquisition until cleared


def test_param_poll_a_stream_without_parameter_calls_delivers_every_frame(camera):
    sim.inject_fault("param_poll", after_calls=1)
    calls_before = sim.param_calls_mid_stream()
    stream = _RawStream(camera)
    stream.start()
    try:
        assert stream.counter.wait_beyond(99, timeout=10)
        assert stream.sdk.status(stream.handle)[0] == "FRAME_AVAILABLE"
    finally:
        stream.stop()
    assert sim.param_calls_mid_stream() == calls_before


def test_param_poll_in_pyvcam_a_temperature_read_ends_the_stream(camera):
    """pyvcam's get_param is three SDK calls (ATTR_AVAIL, ATTR_TYPE, the value);
    the read itself answers, and the next poll_frame raises at once, even with
    frames still in pvc's queue."""
    sim.inject_fault("param_poll", after_calls=2)
    _small_live(camera)
    try:
        assert _collect(camera, 5) == [1, 2, 3, 4, 5]
        before = sim.param_calls_mid_stream()
        assert -30 < camera.temp < 30
        assert sim.param_calls_mid_stream() - before == 3
        with pytest.raises(RuntimeError, match="Acquisition not active"):
            camera.poll_frame(timeout_ms=POLL_MS)
        assert camera.check_frame_status() == "READOUT_NOT_ACTIVE"
        assert _generation_stopped()
        sim.clear_faults()  # re-arms nothing: the stream stays stopped
        with pytest.raises(RuntimeError, match="Acquisition not active"):
            camera.poll_frame(timeout_ms=200)
    finally:
        camera.finish()
    _small_live(camera)  # a restarted acquisition streams again
    try:
        assert _collect(camera, 3) == [1, 2, 3]
    finally:
        camera.finish()


def test_param_poll_a_background_temperature_monitor_fails_the_poll_not_hangs_it(camera):
    """The reported setup: one thread polls frames, another reads the temperature
    while streaming.  The poller gets pyvcam's "Acquisition not active." error."""
    sim.inject_fault("param_poll")
    stop = threading.Event()
    reads = []

    def monitor():
        while not stop.is_set():
            reads.append(camera.temp)
            stop.wait(0.05)

    _small_live(camera)
    thread = threading.Thread(target=monitor, daemon=True)
    try:
        assert _collect(camera, 3) == [1, 2, 3]
        thread.start()
        numbers, error = _poll_until_error(camera, timeout_ms=POLL_MS)
    finally:
        stop.set()
        thread.join(timeout=5)
        camera.finish()
    assert "Acquisition not active" in str(error)
    assert numbers == list(range(4, 4 + len(numbers)))  # in order until it stopped
    assert reads, "the monitor never read"


def test_param_poll_software_trigger_after_the_stream_died_is_refused(camera):
    sim.inject_fault("param_poll")
    camera.exp_mode = "Software Trigger Edge"
    camera.set_roi(0, 0, 64, 64)
    camera.start_live(exp_time=1)
    try:
        camera.sw_trigger()
        assert _collect(camera, 1) == [1]
        camera.readout_time  # noqa: B018  (a parameter read mid-stream)
        with pytest.raises(ValueError, match="Failed to deliver software trigger"):
            camera.sw_trigger()
        with pytest.raises(RuntimeError, match="Acquisition not active"):
            camera.poll_frame(timeout_ms=POLL_MS)
    finally:
        camera.finish()


def test_param_poll_counts_only_from_the_first_frame_until_the_stop(camera):
    """Setup and start (pyvcam's start_live reads PARAM_METADATA_ENABLED), reads
    before the first frame and reads after the stop do not count."""
    sim.inject_fault("param_poll")
    before = sim.param_calls_mid_stream()
    camera.exp_mode = "Software Trigger Edge"
    camera.set_roi(0, 0, 64, 64)
    camera.start_live(exp_time=1)
    try:
        assert camera.temp < 30  # waiting for a trigger: no frame yet
        camera.sw_trigger()
        assert _collect(camera, 1) == [1]
    finally:
        camera.finish()
    assert camera.temp < 30
    assert camera.readout_time > 0
    assert sim.param_calls_mid_stream() == before
    assert sim.active_fault_count() == 1


def test_param_poll_leaves_sequences_alone(camera):
    sim.inject_fault("param_poll")
    before = sim.param_calls_mid_stream()
    camera.set_roi(0, 0, 64, 64)
    camera.start_seq(exp_time=1, num_frames=10)
    try:
        numbers = _collect(camera, 5)
        assert camera.temp < 30
        camera.readout_time  # noqa: B018
        numbers += _collect(camera, 5)
    finally:
        camera.finish()
    assert numbers == list(range(1, 11))
    assert sim.param_calls_mid_stream() == before


def test_param_poll_times_and_camera_options(camera):
    sim.inject_fault("param_poll", camera=1)  # another camera: this one is unaffected
    _small_live(camera)
    try:
        _collect(camera, 2)
        camera.temp  # noqa: B018
        assert _collect(camera, 2) == [3, 4]
    finally:
        camera.finish()
    sim.clear_faults()
    sim.inject_fault("param_poll", times=1)
    for expected_error in (True, False):  # fires in the first acquisition only
        _small_live(camera)
        try:
            _collect(camera, 2)
            camera.temp  # noqa: B018
            if expected_error:
                with pytest.raises(RuntimeError, match="Acquisition not active"):
                    camera.poll_frame(timeout_ms=POLL_MS)
            else:
                assert _collect(camera, 2) == [3, 4]
        finally:
            camera.finish()
    assert sim.active_fault_count() == 0


@pytest.mark.parametrize("metadata", [False, True], ids=["plain", "metadata"])
def test_pyvcam_streaming_calls_make_no_parameter_calls(camera, metadata):
    """300 frames of start_live / sw_trigger / poll_frame(timeout_ms) /
    check_frame_status / finish with param_poll armed at its strictest: had any
    of these calls touched a parameter, the stream would have died."""
    sim.inject_fault("param_poll", after_calls=1)
    camera.metadata_enabled = metadata
    camera.exp_mode = "Software Trigger Edge"
    camera.set_roi(0, 0, 64, 64)
    before = sim.param_calls_mid_stream()
    camera.start_live(exp_time=1, buffer_frame_count=16)
    numbers, statuses = [], set()
    try:
        for _ in range(300):
            camera.sw_trigger()
            frame, _fps, _count = camera.poll_frame(timeout_ms=POLL_MS)
            numbers.append(sim.frame_number(frame["pixel_data"]))
            statuses.add(camera.check_frame_status())
    finally:
        camera.finish()
    assert numbers == list(range(1, 301))
    assert statuses <= {"EXPOSURE_IN_PROGRESS", "READOUT_IN_PROGRESS", "FRAME_AVAILABLE"}
    assert sim.param_calls_mid_stream() == before
    assert sim.active_fault_count() == 1  # armed, never fired


# ---- callback_reregister ------------------------------------------------------------


def test_callback_registered_twice_dies_after_five_frames(camera):
    sim.inject_fault("callback_reregister")
    stream = _RawStream(camera)
    stream.register()  # again, without deregistering: the reported mistake
    generated = sim.frames_generated(0)
    stream.start()
    try:
        assert stream.counter.wait_beyond(4, timeout=5)
        assert not stream.counter.wait_beyond(5, timeout=QUIET_S)
        assert stream.counter.count == 5
        # the sensor keeps running: frames land in the buffer, nobody is told
        assert sim.frames_generated(0) - generated > 5
        assert stream.sdk.latest_frame(stream.handle, stream.region.shape).number > 5
        assert stream.sdk.status(stream.handle)[0] == "FRAME_AVAILABLE"
    finally:
        stream.stop()


@pytest.mark.parametrize("after_frames", [1, 8])
def test_callback_reregister_after_frames_option(camera, after_frames):
    sim.inject_fault("callback_reregister", after_frames=after_frames)
    stream = _RawStream(camera)
    stream.register()
    stream.start()
    try:
        assert stream.counter.wait_beyond(after_frames - 1, timeout=5)
        assert not stream.counter.wait_beyond(after_frames, timeout=QUIET_S)
    finally:
        stream.stop()


@pytest.mark.parametrize("deregister_first", [True, False], ids=["deregistered", "once"])
def test_callback_registered_properly_delivers_every_frame(camera, deregister_first):
    sim.inject_fault("callback_reregister")
    stream = _RawStream(camera, register=not deregister_first)
    if deregister_first:
        stream.register()
        stream.sdk.clear_callback(stream.handle, PL_CALLBACK_EOF)
        stream.register()
    stream.start()
    try:
        assert stream.counter.wait_beyond(49, timeout=10)
    finally:
        stream.stop()


def test_callback_registered_twice_without_the_fault_keeps_streaming(camera):
    stream = _RawStream(camera)
    stream.register()
    stream.start()
    try:
        assert stream.counter.wait_beyond(49, timeout=10)
    finally:
        stream.stop()


def test_callback_reregister_through_pyvcam_after_a_failed_start(camera):
    """pvc registers its EOF handler in start_live before pl_exp_start_cont and
    deregisters it only in finish(): a start that fails (here error 185, an
    exposure mode the camera does not list) leaves it registered, and the next
    start_live registers it again."""
    sim.inject_fault("callback_reregister")
    camera.set_roi(0, 0, 128, 128)
    with pytest.raises(RuntimeError, match="185"):
        pvc.start_live(camera.handle, camera.rois, 2, const.TIMED_MODE, 16, None)
    _small_live(camera)
    try:
        numbers, error = _poll_until_error(camera)
        assert numbers == [1, 2, 3, 4, 5]
        assert "Frame timeout" in str(error)
    finally:
        camera.finish()
    # finish() deregistered: the next acquisition is clean
    _small_live(camera)
    try:
        assert _collect(camera, 30) == list(range(1, 31))
    finally:
        camera.finish()


def test_a_failed_start_cleaned_up_with_finish_does_not_reregister(camera):
    sim.inject_fault("callback_reregister")
    camera.set_roi(0, 0, 128, 128)
    with pytest.raises(RuntimeError, match="185"):
        pvc.start_live(camera.handle, camera.rois, 2, const.TIMED_MODE, 16, None)
    pvc.abort(camera.handle)  # what Camera.finish() does after a failed start_live
    _small_live(camera)
    try:
        assert _collect(camera, 30) == list(range(1, 31))
    finally:
        camera.finish()


# ---- byte_limit ---------------------------------------------------------------------


@pytest.mark.parametrize(("height", "expected"), [(128, 10), (64, 20)])
def test_byte_limit_stalls_at_a_byte_count_whatever_the_frame_size(camera, height, expected):
    limit = 10 * 128 * 128 * 2 + 100  # ten 128x128 frames and a bit
    frame_bytes = 128 * height * 2
    assert limit // frame_bytes == expected
    sim.inject_fault("byte_limit", bytes=limit)
    _small_live(camera, height=height)
    try:
        numbers, error = _poll_until_error(camera)
        assert camera.check_frame_status() in {"EXPOSURE_IN_PROGRESS", "FRAME_AVAILABLE"}
    finally:
        camera.finish()
    assert numbers == list(range(1, expected + 1))
    assert "Frame timeout" in str(error)


def test_byte_limit_applies_to_sequences_too(camera):
    sim.inject_fault("byte_limit", bytes=5 * 64 * 64 * 2)
    camera.set_roi(0, 0, 64, 64)
    camera.start_seq(exp_time=1, num_frames=20)
    try:
        numbers, error = _poll_until_error(camera)
    finally:
        camera.finish()
    assert numbers == [1, 2, 3, 4, 5]
    assert "Frame timeout" in str(error)


def test_byte_limit_above_what_the_loop_streams_delivers_every_frame(camera):
    sim.inject_fault("byte_limit", bytes=100 * 128 * 128 * 2)
    _small_live(camera)
    try:
        assert _collect(camera, 60) == list(range(1, 61))
    finally:
        camera.finish()


def test_clearing_a_byte_limit_resumes_like_a_stall(camera):
    sim.inject_fault("byte_limit", bytes=3 * 128 * 128 * 2)
    _small_live(camera)
    try:
        assert _collect(camera, 3) == [1, 2, 3]
        with pytest.raises(RuntimeError, match="Frame timeout"):
            camera.poll_frame(timeout_ms=300)
        sim.clear_faults()
        assert _collect(camera, 2) == [4, 5]
    finally:
        camera.finish()


# ---- arguments ----------------------------------------------------------------------


def test_hazard_fault_arguments_are_checked():
    with pytest.raises(ValueError, match="after_calls=N"):
        sim.inject_fault("param_poll", after_calls=0)
    with pytest.raises(ValueError, match="does not apply"):
        sim.inject_fault("param_poll", after_frames=3)
    with pytest.raises(ValueError, match="does not apply"):
        sim.inject_fault("param_poll", duration=1.0)
    with pytest.raises(ValueError, match="bytes=N"):
        sim.inject_fault("byte_limit")
    with pytest.raises(ValueError, match="only applies to 'byte_limit'"):
        sim.inject_fault("stall", bytes=10)
    with pytest.raises(ValueError, match="only applies to 'param_poll'"):
        sim.inject_fault("callback_reregister", after_calls=2)
    assert sim.inject_fault("callback_reregister").after_frames == 5
    assert sim.inject_fault("param_poll").after_calls == 1


def test_hazard_fault_specs_from_the_environment_are_parsed():
    assert sim.parse_fault_spec(
        "param_poll:after_calls=2;callback_reregister:after=3;byte_limit:bytes=780000000"
    ) == [
        {"kind": "param_poll", "after_calls": 2},
        {"kind": "callback_reregister", "after_frames": 3},
        {"kind": "byte_limit", "bytes": 780000000},
    ]
    assert sim.parse_fault_spec("param_poll") == [{"kind": "param_poll"}]
