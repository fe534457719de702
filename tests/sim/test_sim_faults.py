"""Injected faults surface exactly as pyvcam surfaces the real ones."""

from __future__ import annotations

import pytest

import ophyd_pvcam.sim as sim

POLL_MS = 1000


def _small_live(camera, exposure_ms: int = 2, buffer_frames: int = 16) -> None:
    camera.set_roi(0, 0, 128, 128)
    camera.start_live(exp_time=exposure_ms, buffer_frame_count=buffer_frames)


def _until_readout_failure(camera, at_most: int) -> list[int]:
    """Frames polled until the readout failure, which reaches the poll after the frames
    before it -- or before those not yet read, on a loaded machine: pvc refuses queued
    frames once the camera's status says READOUT_FAILED, as with a real camera."""
    got: list[int] = []
    with pytest.raises(RuntimeError, match="Frame readout failed"):
        for _ in range(at_most + 1):
            got += _collect(camera, 1)
    assert got == list(range(1, at_most + 1))[: len(got)]
    return got


def _collect(camera, count: int) -> list[int]:
    return [
        sim.frame_number(camera.poll_frame(timeout_ms=POLL_MS)[0]["pixel_data"])
        for _ in range(count)
    ]


def test_stall_stops_callbacks_after_n_frames_while_status_claims_running(camera):
    sim.inject_fault("stall", after_frames=10)
    _small_live(camera)
    try:
        assert _collect(camera, 10) == list(range(1, 11))
        with pytest.raises(RuntimeError, match="Frame timeout"):
            camera.poll_frame(timeout_ms=500)
        assert camera.check_frame_status() in {"EXPOSURE_IN_PROGRESS", "FRAME_AVAILABLE"}
    finally:
        camera.finish()


def test_stall_injected_into_a_running_acquisition_counts_from_its_start(camera):
    _small_live(camera)
    try:
        assert _collect(camera, 5) == [1, 2, 3, 4, 5]
        sim.inject_fault("stall", after_frames=8)
        assert _collect(camera, 3) == [6, 7, 8]
        with pytest.raises(RuntimeError, match="Frame timeout"):
            camera.poll_frame(timeout_ms=500)
    finally:
        camera.finish()


def test_a_stall_with_a_duration_resumes_by_itself(camera):
    sim.inject_fault("stall", after_frames=5, duration=0.5)
    # pixels are copied after the frame is handed over: on a loaded machine 16 slots
    # (32 ms) can wrap under the reader; 64 slots of 5 ms leave it 0.3 s
    _small_live(camera, exposure_ms=5, buffer_frames=64)
    try:
        numbers = [
            sim.frame_number(camera.poll_frame(timeout_ms=3000)[0]["pixel_data"]) for _ in range(15)
        ]
    finally:
        camera.finish()
    assert numbers == list(range(1, 16))  # paused, then contiguous


def test_clearing_faults_ends_a_stall(camera):
    sim.inject_fault("stall", after_frames=3)
    _small_live(camera)
    try:
        assert _collect(camera, 3) == [1, 2, 3]
        with pytest.raises(RuntimeError, match="Frame timeout"):
            camera.poll_frame(timeout_ms=300)
        sim.clear_faults()
        assert _collect(camera, 2) == [4, 5]
    finally:
        camera.finish()


def test_readout_failure_after_n_frames(camera):
    sim.inject_fault("readout_failure", after_frames=5)
    made = sim.frames_generated()
    _small_live(camera)
    try:
        _until_readout_failure(camera, 5)
        assert sim.frames_generated() - made == 6  # five made, the sixth failed in readout
        assert camera.check_frame_status() == "READOUT_FAILED"
    finally:
        camera.finish()
    # the next acquisition fails again (the fault applies until cleared)...
    _small_live(camera)
    try:
        _until_readout_failure(camera, 5)
        assert sim.frames_generated() - made == 12
    finally:
        camera.finish()


def test_a_fault_limited_to_one_acquisition_fires_once(camera):
    sim.inject_fault("readout_failure", after_frames=2, times=1)
    _small_live(camera)
    try:
        _until_readout_failure(camera, 2)
    finally:
        camera.finish()
    assert sim.active_fault_count() == 0
    _small_live(camera)
    try:
        assert _collect(camera, 4) == [1, 2, 3, 4]
    finally:
        camera.finish()


def test_disconnect_fails_every_call_until_reopened(camera):
    sim.inject_fault("disconnect", after_frames=4, times=1)
    _small_live(camera)
    assert _collect(camera, 4) == [1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="disconnected"):
        camera.poll_frame(timeout_ms=POLL_MS)
    with pytest.raises(RuntimeError, match="disconnected"):
        camera.get_param(sim_param_temp())
    with pytest.raises(RuntimeError, match="disconnected"):
        camera.finish()
    camera.close()
    camera.open()
    assert camera.get_frame(exp_time=1, timeout_ms=POLL_MS).shape == (2048, 2048)


def sim_param_temp() -> int:
    from pyvcam import constants

    return constants.PARAM_TEMP


def test_drop_leaves_gaps_in_the_frame_numbers(camera):
    sim.inject_fault("drop", every=5)
    generated_before = sim.frames_generated(0)
    _small_live(camera)
    try:
        numbers = _collect(camera, 12)
        dropped = sim.frames_dropped(0)
    finally:
        camera.finish()
    assert numbers == [1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14]
    assert dropped >= 2
    assert sim.frames_generated(0) - generated_before >= 14


def test_fault_arguments_are_checked():
    with pytest.raises(ValueError, match="not one of"):
        sim.inject_fault("explode")
    with pytest.raises(ValueError, match="after_frames"):
        sim.inject_fault("stall", after_frames=-1)
    with pytest.raises(ValueError, match="every=N"):
        sim.inject_fault("drop")
    with pytest.raises(ValueError, match="duration"):
        sim.inject_fault("stall", duration=0)
    with pytest.raises(ValueError, match="only applies"):
        sim.inject_fault("stall", every=3)


def test_fault_spec_from_the_environment_is_parsed():
    assert sim.parse_fault_spec("stall:after=85; drop:every=10,duration=2.5") == [
        {"kind": "stall", "after_frames": 85},
        {"kind": "drop", "every": 10, "duration": 2.5},
    ]
    with pytest.raises(sim.SimulatorError, match="after=N"):
        sim.parse_fault_spec("stall:afterwards=3")
