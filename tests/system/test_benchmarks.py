"""The benchmarks run and report every section; their numbers are not checked here
(timings on a shared 2-core machine are not test material)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SECTIONS = {
    "full_frame", "disk_burst", "small_roi", "faces", "step_scan", "stall_latency", "memory",
}  # fmt: skip
SIDES = {"bare", "device"}


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> dict:
    """``python benchmarks/run.py --quick``, run once, with its scratch files in a
    temporary folder so that leftovers can be checked."""
    folder = tmp_path_factory.mktemp("benchmarks")
    out = folder / "report.json"
    env = dict(os.environ, OPHYD_PVCAM_BENCH_TMP=str(folder))
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Goals" in done.stdout
    report = json.loads(out.read_text())
    report["_scratch"] = folder
    return report


@pytest.mark.timeout(360)
def test_quick_run_reports_every_section(quick_report):
    assert {"meta", "results", "goals"} <= set(quick_report)
    assert set(quick_report["results"]) == SECTIONS
    assert quick_report["meta"]["quick"] is True
    assert all({"goal", "value", "passed"} <= set(goal) for goal in quick_report["goals"])


@pytest.mark.timeout(360)
def test_throughput_sections_compare_device_with_baselines(quick_report):
    for section in ("full_frame", "small_roi"):
        points = quick_report["results"][section]["points"]
        assert points
        for point in points:
            assert set(point) >= SIDES
            for side in SIDES:
                assert {"fps", "acquire_fps", "lost", "cpu_s_per_frame", "camera_pace"} <= set(
                    point[side]
                )
            assert "device_over_bare_fps" in point["verdict"]
        assert "ceiling" in points[0]
    assert "device_raw" in quick_report["results"]["full_frame"]["points"][0]
    burst = quick_report["results"]["disk_burst"]
    assert set(burst) >= SIDES and all(burst[side]["burst_finished"] for side in SIDES)
    assert set(quick_report["results"]["small_roi"]["highest_zero_loss"]) == SIDES


@pytest.mark.timeout(360)
def test_faces_section_compares_both_faces_with_bare_in_one_run(quick_report):
    points = quick_report["results"]["faces"]["points"]
    assert points
    for point in points:
        for side in ("bare", "ophyd", "async"):
            assert {"fps", "lost", "camera_pace", "cpu_s_per_frame"} <= set(point[side])
            assert point[side]["frames_written"] > 0
        assert point["async"]["unaccounted"] == 0  # every frame written or counted lost
        assert {"ophyd_over_bare_fps", "async_over_bare_fps", "async_over_ophyd_fps"} <= set(
            point["verdict"]
        )


@pytest.mark.timeout(360)
def test_step_stall_and_memory_sections_have_their_figures(quick_report):
    results = quick_report["results"]
    for case in results["step_scan"]["cases"]:
        assert {"median", "max"} <= set(case["camera"]["overhead_ms"])
        assert case["camera_over_bare"] > 0 and "median" in case["bare"]["period_ms"]
    assert "median" in results["step_scan"]["reference"]["period_ms"]
    for plan in ("fly", "kickoff_then_sleep"):
        assert {"median", "max"} <= set(results["stall_latency"][plan]["latency_s"])
    for run in results["memory"]["runs"]:
        assert {"start_mib", "peak_mib", "end_mib"} <= set(run)
    assert results["memory"]["long_run"]["frames"] == 5000


@pytest.mark.timeout(360)
def test_quick_run_leaves_no_frames_behind(quick_report):
    assert not list(Path(quick_report["_scratch"]).glob("ophyd-pvcam-bench-*"))
