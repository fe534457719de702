"""The stall doctor's judging, on made-up measurements (in microseconds), and the probe's
care for the camera it borrows (on a stand-in camera).  The probe on the simulator:
``tests/sim/test_doctor_sdk.py``; the verdict in a fresh process:
``tests/system/test_doctor_cli.py``."""

from __future__ import annotations

import json

import pytest
from bluesky import RunEngine
from pyvcam import constants as const

from ophyd_pvcam.device._plans import _idle, _restore
from ophyd_pvcam.diagnostics import (
    NO_UNLOCK,
    OVERWRITE,
    UNLOCK,
    Hypothesis,
    Run,
    SdkResult,
    report_writer,
)
from ophyd_pvcam.diagnostics import _doctor as doctor
from ophyd_pvcam.hardware import sdk as sdk


class Setting:
    """A setting the camera refuses while it acquires."""

    def __init__(self, cam):
        self.cam = cam

    def put(self, value):
        if self.cam.acquiring:
            raise RuntimeError("cannot change while the camera is acquiring")
        self.cam.puts.append(value)


class FakeCamera:
    """Acquires for ``busy`` polls of ``acquiring``; counts stops and settings put."""

    name = "fake"

    def __init__(self, busy: int, stops_it: bool = True):
        self.busy = busy
        self.stops_it = stops_it
        self.stops = 0
        self.puts: list = []
        self.exposure_time = Setting(self)

    @property
    def acquiring(self) -> bool:
        self.busy -= 1
        return self.busy >= 0

    def stop(self) -> None:
        self.stops += 1
        if self.stops_it:
            self.busy = 0


def test_the_probe_waits_for_a_stopping_camera_before_the_next_settings():
    engine = RunEngine({})
    slow = FakeCamera(busy=5)
    engine(_idle(slow, timeout=5))
    assert slow.stops == 0 and not slow.acquiring
    stuck = FakeCamera(busy=10**9, stops_it=False)
    with pytest.raises(TimeoutError, match="still acquiring"):
        engine(_idle(stuck, timeout=0.05))
    assert stuck.stops == 1  # asked to stop before giving up


def test_restoring_settings_stops_a_camera_still_running_first():
    cam = FakeCamera(busy=3)
    _restore(cam, {"exposure_time": 0.01})
    assert cam.stops == 1 and cam.puts == [0.01]


def test_sdk_parameter_ids_are_pvcams():
    for name in ("PARAM_PAR_SIZE", "PARAM_SER_SIZE", "PARAM_READOUT_TIME", "PARAM_READOUT_PORT",
                 "PARAM_BIT_DEPTH", "PARAM_GAIN_INDEX", "PARAM_SPDTAB_INDEX", "PARAM_CLEAR_MODE",
                 "PARAM_TEMP", "PARAM_TEMP_SETPOINT", "PARAM_FAN_SPEED_SETPOINT", "PARAM_EXP_RES",
                 "EXT_TRIG_SOFTWARE_EDGE", "EXP_RES_ONE_MICROSEC", "ATTR_ACCESS"):  # fmt: skip
        assert getattr(sdk, name) == getattr(const, name), name


# ---- judging, on made-up measurements ----------------------------------------------------------

FULL, QUARTER = (2048, 2048), (2048, 512)


def limit(size, buffer, last, target=200, stalled=True) -> Run:
    width, height = size
    return Run("limits", "", width, height, buffer, target, frame_bytes=width * height * 2,
               delivered=min(last, target), last_frame=last, stalled=stalled)  # fmt: skip


def judged(runs) -> dict[str, bool | None]:
    frame_limit, byte_limit = doctor.judge_limits(runs)
    return {"frame-limit": frame_limit.reproduced, "byte-limit": byte_limit.reproduced}


def test_a_stop_at_one_frame_whatever_the_buffer_and_frame_size_is_a_frame_limit():
    runs = [limit(s, b, 85) for s in (FULL, QUARTER) for b in (8, 32)]
    frame_limit, byte_limit = doctor.judge_limits(runs)
    assert (frame_limit.reproduced, byte_limit.reproduced) == (True, False)
    assert "frame 85 in all 4 streams" in frame_limit.evidence
    assert "differed 4.0-fold" in byte_limit.evidence


def test_a_stop_that_keeps_the_bytes_is_a_byte_limit():
    limit_bytes = 780_000_000
    runs = [
        limit(s, b, limit_bytes // (s[0] * s[1] * 2), target=600)
        for s in (FULL, QUARTER)
        for b in (8, 32)
    ]
    frame_limit, byte_limit = doctor.judge_limits(runs)
    assert (frame_limit.reproduced, byte_limit.reproduced) == (False, True)
    assert "after frame 92" in byte_limit.evidence and "after frame 371" in byte_limit.evidence
    assert "between 778.0 and 780.1 MB" in byte_limit.evidence


def test_a_real_cameras_jitter_of_a_frame_is_tolerated():
    runs = [limit(FULL, 8, 85), limit(FULL, 32, 86), limit(QUARTER, 8, 84), limit(QUARTER, 32, 85)]
    assert judged(runs) == {"frame-limit": True, "byte-limit": False}


def test_streams_that_do_not_stop_reproduce_neither():
    runs = [limit(FULL, b, 200, stalled=False) for b in (8, 32)]
    runs += [limit(QUARTER, b, 512, target=512, stalled=False) for b in (8, 32)]
    frame_limit, _ = doctor.judge_limits(runs)
    assert judged(runs) == {"frame-limit": False, "byte-limit": False}
    assert frame_limit.evidence.startswith("no stream stopped: 2048x2048 frames (8.0 MiB each)")


def test_a_stop_that_moves_with_the_buffer_is_neither():
    runs = [limit(s, b, b * 3) for s in (FULL, QUARTER) for b in (8, 32)]
    assert judged(runs) == {"frame-limit": False, "byte-limit": False}


def test_a_stop_at_one_frame_size_only_cannot_tell_the_limits_apart():
    runs = [limit(FULL, b, 143) for b in (8, 32)]
    runs += [limit(QUARTER, b, 512, target=512, stalled=False) for b in (8, 32)]
    _, byte_limit = doctor.judge_limits(runs)
    assert judged(runs) == {"frame-limit": False, "byte-limit": False}
    assert "cannot be told apart (a byte limit would fit" in byte_limit.evidence


def test_streams_that_failed_leave_the_limits_untested():
    run = limit(FULL, 8, 0)
    run.error = "pl_exp_setup_cont failed: no"
    assert judged([run]) == {"frame-limit": None, "byte-limit": None}


def strategy(name, buffer, delivered, target=150) -> SdkResult:
    return SdkResult(name, buffer, delivered, target, delivered < target, delivered)


def test_no_unlock_halts_at_the_buffer_size_and_unlocking_goes_on():
    rows = [strategy(OVERWRITE, b, 150) for b in (8, 16)]
    rows += [strategy(UNLOCK, b, 150) for b in (8, 16)]
    rows += [strategy(NO_UNLOCK, b, b) for b in (8, 16)]
    h = doctor.judge_no_unlock(rows)
    assert h.reproduced
    assert "never unlocking, frames stopped after 8 and 16 frames" in h.evidence
    rows[-1] = strategy(NO_UNLOCK, 16, 150)  # a camera that does not halt
    assert doctor.judge_no_unlock(rows).reproduced is False


def test_no_unlock_is_inconclusive_when_unlocking_stops_as_early():
    rows = [strategy(UNLOCK, 32, 30), strategy(NO_UNLOCK, 32, 30)]
    assert doctor.judge_no_unlock(rows).reproduced is None


def pair(experiment, control_last, tested_last, target=60, reads=0, status="FRAME_AVAILABLE"):
    control = Run(experiment, "without", 256, 128, 16, target, delivered=min(control_last, target),
                  last_frame=control_last, stalled=control_last < target)  # fmt: skip
    tested = Run(experiment, "with", 256, 128, 16, target, delivered=min(tested_last, target),
                 last_frame=tested_last, stalled=tested_last < target, reads=reads,
                 status=status)  # fmt: skip
    return control, tested


def test_param_polling_needs_the_read_arm_to_stop_and_the_control_to_go_on():
    h = doctor.judge_param_polling(*pair("p", 60, 10, reads=1, status="READOUT_NOT_ACTIVE"))
    assert h.reproduced and "stopped after frame 10" in h.evidence
    assert "READOUT_NOT_ACTIVE" in h.evidence
    assert not doctor.judge_param_polling(*pair("p", 30, 30, reads=5)).reproduced  # both stop
    assert not doctor.judge_param_polling(*pair("p", 60, 8, reads=0)).reproduced  # before a read
    assert not doctor.judge_param_polling(*pair("p", 60, 60, reads=11)).reproduced


def test_callback_reregistration_needs_the_twice_arm_to_stop_alone():
    control, tested = pair("c", 60, 5)
    tested.latest_in_buffer = 250
    h = doctor.judge_callback(control, tested)
    assert h.reproduced and "(frame 250 was in it)" in h.evidence
    assert not doctor.judge_callback(*pair("c", 30, 30)).reproduced


def test_the_verdict_lists_causes_then_no_unlock_each_with_its_remedy():
    hypotheses = [
        Hypothesis("no-unlock", True, "e"),
        Hypothesis("param-polling", True, "e"),
        Hypothesis("callback-reregistration", False, "e"),
        Hypothesis("byte-limit", False, "e"),
        Hypothesis("frame-limit", None, "not tested: x"),
    ]
    rows = [{"outcome": "stalled", "delivered": 85, "lost": 0, "buffer_frames": b} for b in (8, 16)]
    result = doctor.verdict(hypotheses, rows)
    assert result.reproduced == ["param-polling", "no-unlock"]
    text = "\n".join(result.lines)
    assert result.lines[0].startswith("Verdict: reproduced on this camera: param-polling")
    assert "Not tested: frame-limit." in text
    assert "0 of 2 complete, 2 stalled at frame 85 whatever the buffer size" in text
    assert text.index("- param-polling:") < text.index("- no-unlock:")
    assert result.as_dict()["remedies"] == {h: doctor.REMEDIES[h] for h in result.reproduced}


def test_the_json_report_is_replaced_whole_as_it_grows(tmp_path):
    save = report_writer(tmp_path / "r.json")
    save({"device": [1]})
    save({"device": [1, 2]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"device": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
