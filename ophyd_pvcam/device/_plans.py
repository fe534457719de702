"""Plans a scientist reaches for with this camera.

Device arguments are left unannotated (or use bluesky protocols) so the queue
server resolves them from names.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
from bluesky.protocols import Readable
from bluesky.utils import Msg, RunEngineControlException

from ophyd_pvcam.errors import FrameStallError

log = logging.getLogger(__name__)


def count_frames(
    detectors: Sequence[Readable], num: int = 1, frames_per_point: int = 1, md: dict | None = None
):
    """``num`` points of ``frames_per_point`` frames from every camera in ``detectors``."""
    for detector in detectors:
        signal = getattr(detector, "frames_per_point", None)  # our cameras have one
        if signal is not None:
            yield from bps.mv(signal, frames_per_point)
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
    roi: Sequence[int] | None = None,
    on_row=None,
):
    """Repeat fly scans over a grid of buffer sizes, exposures and readout ports and
    count the frames each delivered (and lost) before it stalled or reached ``frames``.

    Answers "does the stall move with the buffer size?" in one plan.  Each
    combination is its own run; a stall or a camera failure ends that run, not the
    probe, and the camera is idle again before the next settings are applied.
    ``roi`` (x, y, width, height): the region to use (default: the camera's).
    ``on_row(row)`` is called as each row is known, so no row is lost if the probe
    is interrupted.  Every setting it changes is put back at the end.  Returns (and
    prints) one row per combination.
    """
    ports = list(ports or [p.name for p in cam.capabilities.ports])
    changed = ["readout_port", "exposure_time", "buffer_frames", "num_frames", "roi"]
    original = {attr: getattr(cam, attr).get() for attr in changed}
    region = tuple(roi) if roi is not None else tuple(original["roi"])
    rows: list[dict[str, Any]] = []
    try:
        yield from _idle(cam)
        yield from bps.mv(cam.roi, region)
        for port, buffer, exposure in itertools.product(ports, buffers, exposures):
            row = {
                "port": port,
                "exposure_s": exposure,
                "buffer_frames": buffer,
                "roi": list(region),
                "target": frames,
                "delivered": 0,
                "lost": 0,
                "outcome": "failed",
                "reason": None,
            }
            try:
                yield from _idle(cam)  # a stalled scan may still be stopping
                yield from bps.mv(
                    cam.readout_port, port, cam.exposure_time, exposure,
                    cam.buffer_frames, buffer, cam.num_frames, frames,
                )  # fmt: skip
                md_run = {"purpose": "stall probe", "buffer_frames": buffer, **(md or {})}
                row["outcome"], row["reason"] = yield from _probe_fly(cam, md_run)
                yield from _idle(cam)
                row["delivered"] = int(cam.frames_acquired.get())
                row["lost"] = int(cam.dropped_frames.get())
            except RunEngineControlException:
                raise
            except Exception as error:  # this combination failed; the next may not
                log.warning("stall probe: %s, buffer %s: %s", port, buffer, error)
                row["reason"] = f"{type(error).__name__}: {error}"
            rows.append(row)
            if on_row is not None:
                on_row(row)
    finally:
        _restore(cam, original)
    print(fly_table(rows))
    return rows


def fly_table(rows: list[dict[str, Any]]) -> str:
    """The stall probe's rows as a table, under the ROI they used."""
    if not rows:
        return "(no fly scans)"
    x, y, width, height = rows[0]["roi"]
    table = format_table(
        [
            {
                "port": r["port"],
                "exposure": f"{r['exposure_s'] * 1e3:g} ms",
                "buffer": r["buffer_frames"],
                "target": r["target"],
                "delivered": r["delivered"],
                "lost": r["lost"],
                "outcome": r["outcome"],
            }
            for r in rows
        ]
    )
    return f"ROI {width}x{height} at ({x}, {y})\n{table}"


IDLE_TIMEOUT_S = 30.0


def _idle(cam, timeout: float = IDLE_TIMEOUT_S):
    """Wait (a plan stub) until ``cam`` has stopped acquiring; stop it if it has not
    within ``timeout``.  Settings that change the camera's setup are refused while it
    acquires, and a scan's status can fail (a stall) before its camera has stopped."""
    if not cam.acquiring:
        return
    deadline = time.monotonic() + timeout

    async def stopped() -> None:
        while cam.acquiring and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    yield Msg("wait_for", None, [stopped])
    if cam.acquiring:
        cam.stop()
        deadline = time.monotonic() + timeout
        yield Msg("wait_for", None, [stopped])
    if cam.acquiring:
        raise TimeoutError(f"{cam.name} was still acquiring {2 * timeout:g} s after a scan")


def _restore(cam, original: dict[str, Any], timeout: float = IDLE_TIMEOUT_S) -> None:
    """Put settings back (not a plan: it runs in ``finally``, also when the plan is
    closed).  Stops the camera first if it still acquires."""
    if cam.acquiring:
        cam.stop()
        deadline = time.monotonic() + timeout
        while cam.acquiring and time.monotonic() < deadline:
            time.sleep(0.01)
    for attr, value in original.items():
        try:
            getattr(cam, attr).put(value)
        except Exception as error:  # keep restoring the others
            log.error("stall probe: %s.%s not restored to %r: %s", cam.name, attr, value, error)


def _probe_fly(cam, md: dict):
    """One fly scan as its own run; a stall or camera failure ends the run (collected,
    marked failed), not the probe.  Returns (outcome, reason)."""
    yield from bps.open_run(md)
    outcome, reason = "complete", None
    try:
        yield from bps.kickoff(cam, wait=True)
        yield from bps.complete(cam, wait=True)
    except RunEngineControlException:
        raise
    except FrameStallError as error:
        outcome, reason = "stalled", str(error)
    except Exception as error:  # a camera failure, a refused start
        outcome, reason = "failed", f"{type(error).__name__}: {error}"
    try:
        yield from bps.collect(cam)
    except RunEngineControlException:
        raise
    except Exception as error:  # frames that cannot be handed over
        if reason is None:
            outcome, reason = "failed", f"{type(error).__name__}: {error}"
    yield from bps.close_run(exit_status="success" if reason is None else "fail", reason=reason)
    return outcome, reason


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
