"""``ophyd-pvcam check``, the first-day acceptance test, run as a beamline would: a fresh
process and data folder, the simulated camera healthy or with one fault armed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import matplotlib.image
import pytest


def check_process(tmp_path, *args, faults: str = ""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPHYD_PVCAM")}
    env.update(OPHYD_PVCAM_DATA=str(tmp_path / "data"), MPLBACKEND="Agg")
    if faults:
        env["OPHYD_PVCAM_SIM_FAULTS"] = faults
    return subprocess.Popen(
        [sys.executable, "-m", "ophyd_pvcam.cli", "check", *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.realtime  # 1000-frame streams at 500 frames/s without a loss, rates within 5 %
def test_check_passes_on_the_simulator(tmp_path):
    started = time.monotonic()
    process = check_process(tmp_path, "--json", "check.json", "--png", "check.png")
    out, err = process.communicate(timeout=300)
    elapsed = time.monotonic() - started
    assert process.returncode == 0, out + err
    report = json.loads((tmp_path / "check.json").read_text())
    assert report["passed"] is True and report["first_failure"] is None
    rows = {row["check"]: row for row in report["checks"]}
    modes = report["camera"]["modes"]
    assert len(modes) == 6  # the simulated Prime BSI's ports x speeds x gains
    for mode in modes:
        label = f"{mode['port']} / {mode['speed_name']} / {mode['gain_name']}"
        rate = rows[f"full-frame rate {label}"]["values"]
        assert rate["camera_fps"] == pytest.approx(rate["expected_fps"], rel=0.05)
        stream = rows[f"stream 1000 {label}"]["values"]
        assert (stream["frames"], stream["lost"]) == (1000, 0)
    assert rows["full-frame rate Sensitivity / 100 MHz / HDR"]["values"]["expected_fps"] == (
        pytest.approx(47.0, abs=0.1)
    )
    triggers = rows["software triggers"]["values"]
    assert len(triggers["latencies_ms"]) == 20
    assert min(triggers["latencies_ms"]) >= triggers["minimum_ms"] - 0.5
    assert {"identity", "step scan", "fly scan", "temperature"} <= set(rows)
    assert rows["temperature"]["status"] == "pass"  # it cools to -20 degC within the wait
    for row in report["checks"]:
        assert set(row) >= {"check", "passed", "status", "measured", "expected", "detail"}
        assert row["passed"] is True
    assert "PASSED: all 17 checks" in out
    table = out.split("\n\n")[0].splitlines()  # only rows: no scan's summary inside it
    assert len(table) == 17 and all(line.startswith("PASS  ") for line in table), out
    assert err.count("\n") <= 8 and "Traceback" not in err  # the simulator's banner only
    image = matplotlib.image.imread(tmp_path / "check.png")
    assert image.shape[0] > image.shape[1] > 800 and image.std() > 0  # one portrait page
    assert not list((tmp_path / "data").rglob("*.h5"))  # frames of the check removed
    assert elapsed < 300


FAULTS = {  # what the one line must name
    "stall:after=85": "frames stopped after 85",
    "readout_failure": "READOUT_FAILED",
    "drop:every=10": "triggers got no frame",
}


def test_check_fails_with_one_line_naming_the_first_failure(tmp_path):
    """One process per fault, side by side (each mostly waits for frames that never come)."""
    runs = {}
    for faults in FAULTS:
        folder = tmp_path / faults.split(":")[0]
        folder.mkdir()
        runs[faults] = folder, check_process(
            folder, "--stream-frames", "200", "--temperature-wait", "0", "--json", "check.json",
            faults=faults,
        )  # fmt: skip
    for faults, (folder, process) in runs.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 1, faults + out + err
        lines = [line for line in err.splitlines() if line.startswith("ophyd-pvcam:")]
        assert len(lines) == 1 and "Traceback" not in err, faults + err
        assert lines[0].startswith("ophyd-pvcam: error: check failed: ")
        assert FAULTS[faults] in lines[0], faults + lines[0]
        report = json.loads((folder / "check.json").read_text())
        assert report["passed"] is False
        assert lines[0].endswith(report["first_failure"])
        assert "FAILED:" in out
