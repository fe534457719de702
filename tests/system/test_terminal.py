"""What a scientist sees in a terminal: progress bars, one line per acquisition with its
losses, and a failure reported once.  Run in a pseudo-terminal, as a person would."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

SCRIPT = """
import ophyd_pvcam.sim as sim
sim.load()
import bluesky.plans as bp
from ophyd_pvcam.device import make_camera, make_run_engine

RE, catalog = make_run_engine()
cam = make_camera("cam", simulated=True, announce=None)
cam.roi.set((0, 0, 256, 128)); cam.exposure_time.set(0.005); cam.num_frames.set(300)
sim.inject_fault("drop", every=50)
(uid,) = RE(bp.fly([cam]))
print("REASON:", catalog[uid].metadata["stop"]["reason"])
sim.clear_faults()
cam.frames_per_point.set(40)
RE(bp.count([cam], num=2))
sim.inject_fault("stall", after_frames=120)
try:
    RE(bp.fly([cam]))
except Exception as error:
    print("FAILED:", error)
cam.close()
"""


def run_in_terminal(code: str, env: dict, timeout: float = 120) -> str:
    """Run ``code`` in a fresh Python whose output is a pseudo-terminal; its output."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        process.wait(10)
    return output.decode(errors="replace").replace("\r", "")


def test_progress_bars_losses_and_a_single_report_of_a_failure(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPHYD_PVCAM")}
    env["OPHYD_PVCAM_DATA"] = str(tmp_path)
    text = run_in_terminal(SCRIPT, env)
    # progress bars, drawn by bluesky with the stall guard installed: a fly and a count
    assert "cam frames: 100%" in text and "300.0/300.0" in text
    assert "40.0/40.0" in text
    # one line for the fly that lost frames, and the same in the run's stop document
    assert re.search(
        r"\ncam: fly scan, 294 frames written to \S+/cam_fly\.h5, 6 lost: frame numbers "
        r"50, 100, 150, 200, 250, 300 \(6 never arrived",
        text.replace("\x1b[A", ""),
    )
    assert "REASON: cam: fly scan, 294 frames written" in text
    # the stall: its diagnosis once, no traceback on the way
    assert text.count("frames stopped during a fly scan") == 1
    assert "FAILED: cam: frames stopped" in text
    assert "Traceback" not in text and "Run aborted" not in text
