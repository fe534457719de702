"""The stall doctor on the simulator in this process: a probe that survives stalls, and
SDK experiments that leave the camera as they found it."""

from __future__ import annotations

import json
import logging
import time

import pytest

import ophyd_pvcam.cli as cli
import ophyd_pvcam.sim as sim
from ophyd_pvcam.diagnostics import _doctor as doctor
from ophyd_pvcam.hardware import sdk as sdk

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
