"""What the device says about the camera's pace follows the settings and the trigger
mode (issue 19): frame_period after an ROI change, the stall headline's expected
interval on a first full-frame acquisition, and a hardware-trigger stall that says no
trigger came instead of quoting a frame rate."""

from __future__ import annotations

import bluesky.plans as bp
import pytest
from bluesky import RunEngine
from bluesky.utils import FailedStatus

import ophyd_pvcam.sim as sim
from ophyd_pvcam import FrameStallError


def fly(cam, frames: int) -> None:
    cam.num_frames.put(frames)
    RunEngine({})(bp.fly([cam]))


def test_frame_period_follows_the_roi_once_the_speed_was_seen(cam):
    cam.exposure_time.put(0.005)
    cam.roi.put((0, 0, 2048, 2048))
    fly(cam, 3)  # one acquisition at this speed teaches the readout model
    full = cam.frame_period.get()
    assert full == pytest.approx(cam.readout_time.get()) and full > 0.005
    cam.roi.put((0, 0, 2048, 128))  # no acquisition since: the model answers
    assert cam.frame_period.get() == pytest.approx(0.005)
    assert cam.readout_time.get() == pytest.approx(full * 128 / 2048, rel=1e-3)
    cam.exposure_time.put(0.0001)
    assert cam.frame_period.get() == pytest.approx(full * 128 / 2048, rel=1e-3)


def test_a_first_full_frame_stall_quotes_the_pace_frames_came_at(cam):
    cam.exposure_time.put(0.005)  # full frame: the readout (~21 ms) sets the pace
    cam.roi.put((0, 0, 2048, 2048))
    sim.inject_fault("stall", after_frames=8)
    with pytest.raises(FailedStatus) as failed:
        fly(cam, 50)
    headline = str(failed.value.__cause__).splitlines()[0]
    assert isinstance(failed.value.__cause__, FrameStallError)
    period_ms = float(headline.split("expected one every ")[1].split(" ms")[0])
    assert 15 < period_ms < 30 and "(measured)" in headline, headline


def test_a_hardware_trigger_stall_says_no_trigger_arrived(cam):
    cam.roi.put((0, 0, 256, 256))
    cam.trigger_mode.put("Edge Trigger")
    cam.stall_timeout.put(1.0)
    with pytest.raises(FailedStatus) as failed:
        fly(cam, 5)
    headline = str(failed.value.__cause__).splitlines()[0]
    assert "no trigger arrived in" in headline and "Edge Trigger" in headline, headline
    assert "expected one every" not in headline
