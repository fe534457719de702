"""The stall doctor (``ophyd-pvcam probe``): each hypothesis's experiment, its verdict,
and a probe that survives stalls and leaves the camera as it found it.

The verdict tests arm one hazard of the simulator in a fresh process (as a user's
environment would) and check that the probe names exactly that hazard, and
``no-unlock`` as a property of CIRC_NO_OVERWRITE; the judging is also tested on
made-up measurements, in microseconds.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import matplotlib.image
import pytest
from bluesky import RunEngine
from pyvcam import constants as const

import ophyd_pvcam.sim as sim
from ophyd_pvcam.cli import _main as cli
from ophyd_pvcam.device._plans import _idle, _restore
from ophyd_pvcam.diagnostics import NO_UNLOCK, OVERWRITE, UNLOCK, Hypothesis, Run, SdkResult
from ophyd_pvcam.diagnostics import _doctor as doctor
from ophyd_pvcam.hardware import sdk as sdk

# A lean probe: the doctor's experiments only, small streams (full frames stay full:
# the limit experiment needs them), short stall timeouts.
LEAN = [
    "--no-fly",
    "--buffers", "8,16",
    "--frames", "60",
    "--limit-frames", "40",
    "--limit-bytes", "20000000",
    "--stall-timeout", "0.5",
]  # fmt: skip


# ---- the verdict on the simulator, one hazard armed per fresh process ----------------------


def run_cli(tmp_path, *args, faults: str = "", timeout: float = 240):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPHYD_PVCAM")}
    env.update(OPHYD_PVCAM_DATA=str(tmp_path / "data"), MPLBACKEND="Agg")
    if faults:
        env["OPHYD_PVCAM_SIM_FAULTS"] = faults
    return subprocess.run(
        [sys.executable, "-m", "ophyd_pvcam.cli", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("faults", "cause"),
    [
        ("", None),
        ("param_poll", "param-polling"),
        ("callback_reregister", "callback-reregistration"),
        ("byte_limit:bytes=20000000", "byte-limit"),
    ],  # frame-limit (a stall at one frame, as first reported): the PNG test below
    ids=["nothing", "param_poll", "callback_reregister", "byte_limit"],
)
def test_the_verdict_names_exactly_the_armed_hazard(tmp_path, faults, cause):
    result = run_cli(tmp_path, "probe", *LEAN, "--json", "probe.json", faults=faults)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "probe.json").read_text())
    hypotheses = report["hypotheses"]
    assert [h["hypothesis"] for h in hypotheses] == list(doctor.HYPOTHESES)
    assert all(set(h) == {"hypothesis", "reproduced", "evidence"} for h in hypotheses)
    assert all(h["reproduced"] in (True, False) and h["evidence"] for h in hypotheses)
    reproduced = {h["hypothesis"] for h in hypotheses if h["reproduced"]}
    assert reproduced == {"no-unlock"} | ({cause} if cause else set())
    verdict = report["verdict"]
    assert verdict["reproduced"] == ([cause] if cause else []) + ["no-unlock"]
    first = verdict["text"].splitlines()[0]
    if cause:
        assert first.startswith(f"Verdict: reproduced on this camera: {cause} (")
        assert doctor.REMEDIES[cause] in verdict["text"]
        assert f"- {cause}: " in result.stdout  # the text report ends with the remedy
    else:
        assert first.startswith("Verdict: none of the reported causes stops")
    assert report["complete"] and report["camera"]["simulated"]
    assert not list((tmp_path / "data").rglob("*.h5"))  # no frame files left behind


def test_an_injected_stall_is_a_frame_limit_and_the_png_marks_it(tmp_path):
    result = run_cli(
        tmp_path, "probe", "--buffers", "8,16", "--frames", "60", "--limit-frames", "40",
        "--limit-bytes", "20000000", "--stall-timeout", "0.5", "--inject-stall", "30",
        "--png", "probe.png", "--json", "probe.json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "probe.json").read_text())
    # every frame up to the stall is delivered or counted lost (a loaded machine loses some
    # from an 8-frame buffer at 500 frames/s)
    rows = {(r["port"], r["buffer_frames"], r["delivered"] + r["lost"], r["outcome"])
            for r in report["device"]}  # fmt: skip
    assert rows == {(p, b, 30, "stalled") for p in ("Sensitivity", "Speed") for b in (8, 16)}
    assert all(r["roi"] == [0, 0, 256, 128] for r in report["device"])
    assert report["verdict"]["reproduced"] == ["frame-limit", "no-unlock"]
    assert "ROI 256x128 at (0, 0)" in result.stdout
    assert "lost" in result.stdout.splitlines()[result.stdout.splitlines().index(
        "ROI 256x128 at (0, 0)") + 1]  # fmt: skip
    image = matplotlib.image.imread(tmp_path / "probe.png")
    assert image.shape[1] >= 1200 and image.std() > 0


# ---- the probe survives stalls -------------------------------------------------------------


@pytest.fixture
def quiet_cli(data_dir):
    """``cli.main`` in this process: put back the log levels it changes."""
    loggers = [logging.getLogger(name) for name in ("ophyd_pvcam", "bluesky")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def test_the_probe_survives_20_runs_with_an_injected_stall(tmp_path, quiet_cli, capsys):
    """It crashed about one run in five ('cam.readout_port cannot change while the camera
    is acquiring') and lost every row.  Each run: two fly scans stalling at 85."""
    for run in range(20):
        path = tmp_path / f"probe{run}.json"
        code = cli.main(
            ["probe", "--camera", "sim", "--inject-stall", "85", "--no-sdk", "--ports",
             "Sensitivity", "--buffers", "8,16", "--exposures", "0.001", "--frames", "100",
             "--stall-timeout", "0.2", "--json", str(path)]
        )  # fmt: skip
        out = capsys.readouterr()
        assert code == 0, out.out + out.err
        rows = json.loads(path.read_text())["device"]
        assert [(r["buffer_frames"], r["delivered"] + r["lost"], r["outcome"]) for r in rows] == [
            (8, 85, "stalled"),
            (16, 85, "stalled"),
        ], f"run {run}"
    assert sim.active_fault_count() == 1  # only the suite's param_poll: the stall was cleared


class FakeCamera:
    """Acquires for ``busy`` polls of ``acquiring``; counts stops and settings put."""

    name = "fake"

    def __init__(self, busy: int, stops_it: bool = True):
        self._busy = busy
        self._stops_it = stops_it
        self.stops = 0
        self.puts: list = []
        self.exposure_time = self._Setting(self)

    @property
    def acquiring(self) -> bool:
        self._busy -= 1
        return self._busy >= 0

    def stop(self) -> None:
        self.stops += 1
        if self._stops_it:
            self._busy = 0

    class _Setting:
        def __init__(self, cam):
            self.cam = cam

        def put(self, value):
            if self.cam.acquiring:
                raise RuntimeError("cannot change while the camera is acquiring")
            self.cam.puts.append(value)


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


# ---- the SDK experiments clean up ----------------------------------------------------------


class _Interrupted(Exception):
    pass


def test_a_stream_interrupted_mid_experiment_leaves_the_camera_stopped(camera):
    """Whatever happens inside an experiment, the acquisition is aborted and the
    callback deregistered (here the mid-stream read itself raises)."""

    class Exploding(sdk.Sdk):
        def read(self, handle, param_id, attribute=sdk.ATTR_CURRENT):
            if param_id == sdk.PARAM_TEMP:
                raise _Interrupted
            return super().read(handle, param_id, attribute)

    binding = Exploding()
    with pytest.raises(_Interrupted):
        doctor.stream(
            binding, camera.handle, sdk.Region.of(0, 0, 64, 64), experiment="x", arm="with",
            buffer_frames=8, frames=60, exposure_us=1, stall_timeout=1.0, read_every=5,
            read_from=3,
        )  # fmt: skip
    assert binding.registered(camera.handle, sdk.PL_CALLBACK_EOF) == 0
    assert binding.status(camera.handle)[0] == "READOUT_NOT_ACTIVE"
    generated = sim.frames_generated(0)
    assert not _frames_arrive_within(0.3, lambda: sim.frames_generated(0) != generated)


def _frames_arrive_within(seconds: float, changed) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if changed():
            return True
        time.sleep(0.02)
    return False


def test_settings_snapshot_and_restore(camera):
    binding = sdk.Sdk()
    handle = camera.handle
    saved = sdk.snapshot(binding, handle)
    assert {sdk.PARAM_READOUT_PORT, sdk.PARAM_SPDTAB_INDEX, sdk.PARAM_GAIN_INDEX,
            sdk.PARAM_EXP_RES, sdk.PARAM_TEMP_SETPOINT} <= set(saved)  # fmt: skip
    binding.write(handle, sdk.PARAM_READOUT_PORT, 1)  # "Speed"
    binding.write(handle, sdk.PARAM_GAIN_INDEX, 2)
    binding.write(handle, sdk.PARAM_TEMP_SETPOINT, -1000)
    assert sdk.restore(binding, handle, saved) == []
    assert sdk.snapshot(binding, handle) == saved


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
    save = cli._json_writer(str(tmp_path / "r.json"))
    save({"device": [1]})
    save({"device": [1, 2]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"device": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
