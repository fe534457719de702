"""Plans a scientist reaches for with this camera.

Device arguments are left unannotated (or use bluesky protocols) so the queue
server resolves them from names.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
from bluesky.protocols import Readable

from .errors import CameraAcquisitionError, FrameStallError

log = logging.getLogger(__name__)


def count_frames(
    detectors: Sequence[Readable], num: int = 1, frames_per_point: int = 1, md: dict | None = None
):
    """``num`` points of ``frames_per_point`` frames from every camera in ``detectors``."""
    for detector in detectors:
        if hasattr(detector, "frames_per_point"):
            yield from bps.mv(detector.frames_per_point, frames_per_point)
    return (yield from bp.count(list(detectors), num=num, md=md))


def fly_frames(cam, num_frames: int = 100, md: dict | None = None):
    """A fly scan of ``num_frames`` frames (0: until stopped), one event per frame."""
    yield from bps.mv(cam.num_frames, num_frames)
    return (yield from bp.fly([cam], md=md))


def dark_series(cam, num: int = 10, md: dict | None = None):
    """``num`` dark frames (cover or close the shutter first), labelled as such."""
    return (yield from bp.count([cam], num=num, md={"image_type": "dark", **(md or {})}))


def stall_probe(
    cam,
    buffers: Sequence[int] = (8, 16, 32),
    exposures: Sequence[float] = (0.01,),
    ports: Sequence[str] | None = None,
    frames: int = 200,
    md: dict | None = None,
):
    """Repeat fly scans over a grid of buffer sizes, exposures and readout ports and
    count the frames each delivered before it stalled (or reached ``frames``).

    Answers "does the stall move with the buffer size?" in one plan.  Each
    combination is its own run; a stall ends that run, not the probe.  Returns
    (and prints) one row per combination.
    """
    ports = list(ports or [p.name for p in cam.capabilities.ports])
    original = {
        attr: getattr(cam, attr).get()
        for attr in ("readout_port", "exposure_time", "buffer_frames", "num_frames")
    }
    rows: list[dict[str, Any]] = []
    try:
        for port, buffer, exposure in itertools.product(ports, buffers, exposures):
            yield from bps.mv(
                cam.readout_port,
                port,
                cam.exposure_time,
                exposure,
                cam.buffer_frames,
                buffer,
                cam.num_frames,
                frames,
            )
            outcome = yield from _probe_fly(
                cam, {"purpose": "stall probe", "buffer_frames": buffer, **(md or {})}
            )
            rows.append(
                {
                    "port": port,
                    "exposure_s": exposure,
                    "buffer_frames": buffer,
                    "delivered": int(cam.frames_acquired.get()),
                    "target": frames,
                    "outcome": outcome,
                }
            )
    finally:
        for attr, value in original.items():
            getattr(cam, attr).put(value)
    print(format_table(rows))
    return rows


def _probe_fly(cam, md: dict):
    """One fly scan as its own run; a stall or camera failure ends the run (collected,
    marked failed), not the probe.  Returns the outcome."""
    yield from bps.open_run(md)
    outcome, reason = "complete", None
    try:
        yield from bps.kickoff(cam, wait=True)
        yield from bps.complete(cam, wait=True)
    except FrameStallError as error:
        outcome, reason = "stalled", str(error)
    except CameraAcquisitionError as error:
        outcome, reason = "failed", str(error)
    yield from bps.collect(cam)
    yield from bps.close_run(exit_status="success" if reason is None else "fail", reason=reason)
    return outcome


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of dict rows (columns in first-row order)."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, rule, *body])
