"""What a scientist runs: the command-line tool, the examples and the IPython profile,
each run as a subprocess exactly as a user would, against a fresh data folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def user(tmp_path):
    """A user's environment: own data folder (no catalog yet), working directory, the
    simulator (this machine has no PVCAM)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPHYD_PVCAM")}
    env.update(OPHYD_PVCAM_DATA=str(tmp_path / "data"), MPLBACKEND="Agg")
    work = tmp_path / "work"
    work.mkdir()

    def run(*command, timeout=180, check=True):
        result = subprocess.run(
            list(command), cwd=work, env=env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    run.work = work
    run.data = tmp_path / "data"
    return run


def cli(user, *args, **kwargs):
    return user(sys.executable, "-m", "ophyd_pvcam.cli", *args, **kwargs)


def assert_png(path: Path, min_width: int = 400):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[1] >= min_width and image.std() > 0  # a picture, not a blank


def test_cli_without_a_catalog(user):
    assert "no catalog at" in cli(user, "runs").stdout
    result = cli(user, "show", "abc", check=False)
    assert result.returncode == 4
    assert result.stderr.startswith("ophyd-pvcam: error: no catalog")
    assert "Traceback" not in result.stderr


def test_demo_then_runs_and_show(user):
    demo = cli(user, "demo", "--frames", "120")
    assert "SIMULATED CAMERA" in demo.stderr
    assert "frame numbers 1..5 intact" in demo.stdout
    assert "frame numbers 1..120 intact" in demo.stdout
    assert demo.stdout.count("exit success") == 2
    runs = cli(user, "runs").stdout.splitlines()
    assert runs[0].split() == ["uid", "started", "plan", "events", "exit"]
    fly = next(line for line in runs if " fly " in line)
    uid = fly.split()[0]
    show = cli(user, "show", uid, "--png", "frame.png", "--frame", "7").stdout
    assert "images   cam/cam_image: shape (120, 1, 512, 512), uint16" in show
    assert "lost     0 frames" in show
    assert_png(user.work / "frame.png")
    missing = cli(user, "show", "ffffffff", check=False)
    assert missing.returncode == 4 and "no run 'ffffffff'" in missing.stderr


def test_info_lists_the_table_with_frame_rates(user):
    out = cli(user, "info").stdout
    assert "Prime BSI (simulated)" in out
    assert "2048 x 2048 pixels of 6.5 um" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("Sensitivity", "Speed"))]
    assert len(rows) == 6
    hdr = next(r for r in rows if "(HDR)" in r)
    assert "16" in hdr and "47.0" in hdr
    fast = next(r for r in rows if "(Balanced)" in r)
    assert "11" in fast and "94.0" in fast
    # the frames it measures readout times with are nobody's data: none is left behind
    assert not list(user.data.rglob("*.h5"))


def test_bad_arguments_exit_2_without_a_traceback(user):
    result = cli(user, "probe", "--buffers", "8,x", check=False)
    assert result.returncode == 2 and "not a comma-separated list" in result.stderr


def test_probe_shows_where_stalls_come_from(user):
    result = cli(
        user,
        "probe",
        "--inject-stall",
        "85",
        "--buffers",
        "8,16,32",
        "--frames",
        "120",
        "--png",
        "probe.png",
        "--json",
        "probe.json",
        timeout=300,
    )
    report = json.loads((user.work / "probe.json").read_text())
    device = report["device"]
    # the injected stall, whatever the buffer size: 85 frames made, each written or
    # counted lost (at 500 frames/s an 8-frame buffer wraps if a loaded machine holds up
    # the reader for 16 ms; that is counted, and the stall point stays where it was)
    assert {(r["buffer_frames"], r["delivered"] + r["lost"], r["outcome"]) for r in device} == {
        (8, 85, "stalled"),
        (16, 85, "stalled"),
        (32, 85, "stalled"),
    }
    sdk = {(r["strategy"], r["buffer_frames"]): r for r in report["sdk"]}
    for buffer in (8, 16, 32):
        no_unlock = sdk[("NO_OVERWRITE + get latest, no unlock", buffer)]
        assert no_unlock["stalled"] and no_unlock["delivered"] == buffer  # follows the buffer
        for strategy in ("OVERWRITE + get latest", "NO_OVERWRITE + get oldest + unlock"):
            assert sdk[(strategy, buffer)]["delivered"] == 120  # streams on
    assert "stalled" in result.stdout
    assert_png(user.work / "probe.png", min_width=800)


@pytest.mark.parametrize("example", ["count_and_scan", "stall_demo", "hardware_trigger"])
def test_examples_run_as_they_are(user, example):
    out = user(sys.executable, str(ROOT / "examples" / f"{example}.py")).stdout
    expected = {
        "count_and_scan": ["scan: images (5, 3, 256, 256)"],
        "stall_demo": ["exit status 'fail', 85 frames saved (numbers 1..85), stalled=True"],
        "hardware_trigger": [
            "edge-triggered count: 5 points",
            "edge-triggered fly: 40 frames at",
            "trigger-first fly: 40 frames after one edge",
        ],
    }[example]
    for line in expected:
        assert line in out


def test_fly_example_then_the_replay_example_writes_its_plots(user):
    """The replay example reads the fly example's run back, as a user would next."""
    fly = user(sys.executable, str(ROOT / "examples" / "fly.py")).stdout
    assert "400 frames, numbers 1..400, 0 lost" in fly
    out = user(sys.executable, str(ROOT / "examples" / "replay.py")).stdout
    assert "400 frames 512x512 uint16" in out
    assert_png(user.work / "replay_frame.png")
    assert_png(user.work / "replay_timeseries.png")


def test_the_profile_loads_in_ipython_and_runs_a_count_and_a_fly(user):
    code = (
        "RE(count([cam], num=3)); cam.num_frames.put(40); RE(fly([cam])); "
        "RE(dark_series(cam, num=2)); "
        "print('RUNS', len(catalog), [catalog[k].metadata['stop']['exit_status'] for k in catalog])"
    )
    result = user(
        sys.executable,
        "-m",
        "IPython",
        f"--profile-dir={ROOT / 'profile_collection'}",
        "--no-banner",
        "--HistoryManager.enabled=False",
        "-c",
        code,
    )
    assert "RUNS 3 ['success', 'success', 'success']" in result.stdout
    assert "SIMULATED CAMERA" in result.stdout
    log = user.data / "logs" / "ophyd-pvcam.log"
    assert "profile starting" in log.read_text()
