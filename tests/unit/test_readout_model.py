"""The readout model: a frame's readout is its ROI's rows times the row time of its
readout speed, learnt from one acquisition at that speed (issue 19: frame_period kept
the previous setup's value after the ROI changed)."""

from __future__ import annotations

import pytest

from ophyd_pvcam.acquisition import ReadoutModel
from ophyd_pvcam.hardware import CameraSetup


def setup(rows: int, exposure_s: float = 0.01, port: str = "Sensitivity", speed: int = 0):
    return CameraSetup(
        exposure_us=round(exposure_s * 1e6),
        roi=(0, 0, 2048, rows),
        binning=1,
        readout_port=port,
        speed_index=speed,
        gain_index=1,
        clear_mode="Pre-Sequence",
        trigger_mode="Internal Trigger",
        expose_out_mode="First Row",
        temperature_setpoint=-20.0,
        fan_speed="High",
    )


def test_a_speed_never_seen_has_no_readout_and_the_exposure_stands_for_the_period():
    model = ReadoutModel()
    assert model.readout_s(setup(2048)) is None and not model.knows(setup(2048))
    assert model.period_s(setup(2048)) == pytest.approx(0.01)


def test_one_acquisition_teaches_the_period_of_every_roi_at_its_speed():
    model = ReadoutModel()
    model.learn(setup(2048), 0.02128)  # full frame: 47 fps
    assert model.period_s(setup(2048)) == pytest.approx(0.02128)
    assert model.readout_s(setup(128)) == pytest.approx(0.02128 * 128 / 2048)
    assert model.period_s(setup(128)) == pytest.approx(0.01)  # the exposure is longer
    assert model.period_s(setup(128, exposure_s=0.0001)) == pytest.approx(0.00133)
    assert model.readout_s(setup(2048, speed=1)) is None  # another speed: not known


@pytest.mark.parametrize("readout", [float("nan"), 0.0, -1.0])
def test_a_reading_that_says_nothing_teaches_nothing(readout):
    model = ReadoutModel()
    model.learn(setup(2048), readout)
    assert not model.knows(setup(2048))
