"""How long the camera takes to read out a full frame in each readout mode.

PVCAM states a readout time only once an acquisition is set up, so ``ophyd-pvcam
info`` learns it for each port and speed by taking one short frame there; what the
camera then reports is what limits the full-frame rate in that mode.
"""

from __future__ import annotations

from typing import Any

EXPOSURE_S = 0.001  # short: the readout, not the exposure, is being measured
TIMEOUT_S = 30.0


def full_frame_readout(cam: Any, port: str, speed: int) -> float:
    """Readout time (s) of a full frame at this port and speed, as the camera reports
    it after one frame.  Leaves ``cam`` at that port and speed, set for one frame."""
    cam.readout_port.set(port).wait(10)
    cam.speed_index.set(speed).wait(10)
    cam.exposure_time.set(EXPOSURE_S).wait(10)
    cam.num_frames.set(1).wait(10)
    cam.kickoff().wait(TIMEOUT_S)
    cam.complete().wait(TIMEOUT_S)
    list(cam.collect_asset_docs())  # the frame's documents, drained: nothing records them
    list(cam.collect_pages())
    return cam.readout_time.get()
