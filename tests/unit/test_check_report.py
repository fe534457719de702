"""``ophyd-pvcam check``'s report lines and frame rates (the check itself, in a fresh
process: ``tests/system/test_check.py``)."""

from __future__ import annotations

import pytest

from ophyd_pvcam.diagnostics import Check
from ophyd_pvcam.diagnostics import _sdk_checks as sdk_checks  # frame_rates: not exported
from ophyd_pvcam.hardware.sdk import FrameRecord


def test_one_check_line_is_one_line():
    row = Check("stream 1000 x", "fail", "m", "e", "cam: frames stopped\nCamera said   so")
    assert row.line() == "stream 1000 x: cam: frames stopped Camera said so"
    assert not row.passed and Check("t", "warn", "m", "e").passed


def test_rates_come_from_the_cameras_clock():
    records = [FrameRecord(n, 0.0, n * 0.02, 100 + n * 0.03) for n in range(2, 12)]
    camera_fps, arriving = sdk_checks.frame_rates(records)
    assert camera_fps == pytest.approx(50.0)
    assert arriving == pytest.approx(1 / 0.03)
    no_clock = [FrameRecord(n, 0.0, 0.0, n * 0.5) for n in range(3)]
    assert sdk_checks.frame_rates(no_clock) == (pytest.approx(2.0), pytest.approx(2.0))
