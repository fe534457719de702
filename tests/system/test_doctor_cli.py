"""The stall doctor (``ophyd-pvcam probe``) in a fresh process: each run arms one hazard
of the simulator (as a user's environment would) and the verdict names exactly that
hazard, and ``no-unlock`` as a property of CIRC_NO_OVERWRITE."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import matplotlib.image
import pytest

from ophyd_pvcam.diagnostics import _doctor as doctor

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
