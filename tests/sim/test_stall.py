"""A camera that stops delivering frames fails the running plan, with a diagnosis."""

from __future__ import annotations

import math
import time

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import numpy as np
import pytest
from bluesky import RunEngine
from helpers import file_frames, frame_files, read_run_in_new_process
from ophyd.sim import SynAxis

import ophyd_pvcam.sim as sim
from ophyd_pvcam import FrameStallError


def fast_small(cam, frames):
    cam.roi.set((0, 0, 256, 128)).wait(5)
    cam.exposure_time.set(0.002).wait(5)
    cam.num_frames.set(frames).wait(5)


def test_stall_at_frame_85_fails_the_fly_with_a_diagnosis(cam, RE, data_dir, tmp_path):
    fast_small(cam, 500)
    sim.inject_fault("stall", after_frames=85)
    with pytest.raises(FrameStallError) as failure:
        RE(bp.fly([cam]))
    message = str(failure.value)
    assert "85 frames received of 500" in message
    assert "last frame number 85" in message
    assert "stall timeout 1.00 s" in message
    assert "expected one every" in message
    assert "still claims to be acquiring" in message
    assert "circular buffer" in message and "port Sensitivity" in message
    assert "85 frames up to the stall are saved in" in message
    assert cam.stalled.get() is True
    stop = RE.recorder.of("stop")[-1]
    assert stop["exit_status"] == "fail"
    assert "frames stopped" in stop["reason"]
    uid = stop["run_start"]
    images, _ = read_run_in_new_process(data_dir / "catalog", uid, "cam", "cam_image", tmp_path)
    assert [sim.frame_number(frame) for frame in images[:, 0]] == list(range(1, 86))
    (path,) = frame_files(cam.write_path)
    on_disk, _ = file_frames(path)
    assert np.array_equal(images[:, 0], on_disk)

    sim.clear_faults()
    fast_small(cam, 50)
    RE(bp.fly([cam]))
    assert cam.stalled.get() is False
    assert RE.recorder.of("stop")[-1]["exit_status"] == "success"


def test_stall_during_count_fails_at_the_stalled_point(cam, RE, catalog):
    fast_small(cam, 0)
    sim.inject_fault("stall", after_frames=3)
    with pytest.raises(FrameStallError, match="trigger"):
        RE(bp.count([cam], num=6))
    stop = RE.recorder.of("stop")[-1]
    assert stop["exit_status"] == "fail"
    assert "frames stopped" in stop["reason"]
    images = catalog[stop["run_start"]]["primary"]["cam_image"].read()
    assert [sim.frame_number(p[0]) for p in images] == [1, 2, 3]
    sim.clear_faults()
    RE(bp.count([cam], num=2))
    assert RE.recorder.of("stop")[-1]["exit_status"] == "success"


def test_a_plan_sleeping_after_kickoff_fails_during_the_sleep(cam, RE, catalog):
    fast_small(cam, 0)
    sim.inject_fault("stall", after_frames=20)

    def plan():
        yield from bps.open_run()
        yield from bps.kickoff(cam, wait=True)
        yield from bps.sleep(600)
        yield from bps.complete(cam, wait=True)
        yield from bps.collect(cam)
        yield from bps.close_run()

    started = time.monotonic()
    with pytest.raises(FrameStallError):
        RE(plan())
    assert time.monotonic() - started < 120  # during the 600 s sleep, not after it
    uid = RE.recorder.of("stop")[-1]["run_start"]
    numbers = catalog[uid]["cam"]["cam_frame_number"].read()
    assert list(numbers) == list(range(1, 21))  # collected on the way out
    assert RE.recorder.of("stop")[-1]["exit_status"] == "fail"


def test_a_plan_moving_another_device_after_kickoff_fails_during_the_move(cam, RE):
    fast_small(cam, 0)
    slow = SynAxis(name="slow", delay=600)
    sim.inject_fault("stall", after_frames=20)

    def plan():
        yield from bps.open_run()
        yield from bps.kickoff(cam, wait=True)
        yield from bps.mv(slow, 1)
        yield from bps.complete(cam, wait=True)
        yield from bps.collect(cam)
        yield from bps.close_run()

    started = time.monotonic()
    with pytest.raises(FrameStallError):
        RE(plan())
    assert time.monotonic() - started < 120  # during the 600 s move, not after it
    assert RE.recorder.of("stop")[-1]["exit_status"] == "fail"


def test_a_stall_that_resumes_before_the_timeout_is_not_a_failure(cam, RE, catalog):
    fast_small(cam, 120)
    cam.stall_timeout.set(2.0).wait(5)
    sim.inject_fault("stall", after_frames=40, duration=0.5)
    RE(bp.fly([cam]))
    uid = RE.recorder.of("stop")[-1]["run_start"]
    assert list(catalog[uid]["cam"]["cam_frame_number"].read()) == list(range(1, 121))
    assert cam.stalled.get() is False


def test_without_the_guard_the_plan_fails_when_it_next_waits_on_the_camera(cam):
    engine = RunEngine({})
    fast_small(cam, 300)
    sim.inject_fault("stall", after_frames=10)
    with pytest.raises(Exception) as failure:
        engine(bp.fly([cam]))
    assert isinstance(failure.value.__cause__, FrameStallError)


def test_the_stall_timeout_follows_the_frame_period_unless_set(cam):
    in_force = cam.stall_timeout_in_force
    cam.exposure_time.set(2.0).wait(5)
    assert in_force.get() == pytest.approx(4.5)  # 2 periods + 0.5 s
    cam.exposure_time.set(0.001).wait(5)
    assert in_force.get() == 1.0  # the floor
    cam.stall_timeout.set(7).wait(5)
    cam.exposure_time.set(3.0).wait(5)
    assert in_force.get() == 7.0  # the user's choice stands
    cam.stall_timeout.set(0).wait(5)
    assert in_force.get() == pytest.approx(6.5)  # back to automatic
    assert cam.stall_timeout.get() == 0


@pytest.mark.parametrize("value", [-1, math.nan, math.inf, 1e300, "1"])
def test_a_stall_timeout_that_could_never_fire_is_refused_and_nothing_hangs(cam, value):
    with pytest.raises(ValueError, match=r"stall_timeout=.* outside the allowed range 0\.\.86400"):
        cam.stall_timeout.set(value)
    assert cam.stall_timeout.set(2.5).wait(1) is None  # the signal is not left hung
    assert cam.stall_timeout_in_force.get() == 2.5
