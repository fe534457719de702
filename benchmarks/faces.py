"""The two faces over one core (issue 20): a small-ROI fly scan end to end, three ways,
measured one after the other in the same run:

- ``bare``: the SDK loop alone (pyvcam's ``poll_frame`` into h5py, as in throughput.py);
- ``ophyd``: ``PrimeBSI`` flown by the RunEngine (kickoff, complete, collect);
- ``async``: ``PvcamDetector`` flown by the same RunEngine: stage, prepare, a declared
  stream, kickoff, complete, collect.

Both faces drive the same acquisition core, so the difference between them is what
each face adds around it (documents, the event loop hop); each rate is printed with the
simulated sensor's measured pace, since the simulator slows down rather than lose
frames when its callback is held up (see README, "Reading the numbers").
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import _common as common
import throughput
from throughput import Point

import ophyd_pvcam.sim as sim

SIDES = ("bare", "ophyd", "async")


def points(quick: bool) -> list[Point]:
    """128 x 128 at its fastest (readout-bound) and at 1 ms exposure."""
    seconds = 0.2 if quick else 3.0

    def point(exposure_s: float) -> Point:
        probe = Point("128x128", 128, 128, exposure_s, 0)
        return Point("128x128", 128, 128, exposure_s, max(100, round(seconds / probe.period_s)))

    return [point(1e-6)] if quick else [point(1e-3), point(1e-6)]


def _async_fly(camera: Any, point: Point, marks: dict[str, Any]):
    """The async face's fly scan, configured first, with the same time marks as
    throughput's: after kickoff, after complete, after the collect."""
    import bluesky.plan_stubs as bps
    from ophyd_async.core import TriggerInfo

    yield from bps.mv(
        camera.compression, "bslz4", camera.readout_port, point.port,
        camera.speed_index, point.speed, camera.roi, [0, 0, point.width, point.height],
        camera.exposure_time, point.exposure_s, camera.buffer_frames, point.buffer_frames,
    )  # fmt: skip
    yield from bps.stage(camera, wait=True)
    yield from bps.open_run()
    yield from bps.prepare(camera, TriggerInfo(number_of_events=point.frames), wait=True)
    yield from bps.declare_stream(camera, name="primary")
    yield from bps.kickoff(camera, wait=True)
    marks["started"] = time.monotonic()
    yield from bps.complete(camera, wait=True)
    marks["complete"] = time.monotonic()
    yield from bps.collect(camera)
    marks["collected"] = time.monotonic()
    marks["lost"] = yield from bps.rd(camera.dropped_frames)
    yield from bps.close_run()
    yield from bps.unstage(camera, wait=True)


def measure_async(point: Point, folder: Path) -> dict[str, Any]:
    """``PvcamDetector`` end to end on the RunEngine the ophyd face uses."""
    from ophyd_async.core import StaticFilenameProvider, StaticPathProvider, init_devices

    from ophyd_pvcam.asyncio import PvcamDetector

    engine = common.run_engine()  # made first: init_devices connects on its event loop
    with init_devices():
        cam = PvcamDetector(
            sim=True, path_provider=StaticPathProvider(StaticFilenameProvider("cam"), folder)
        )
    try:
        tally = throughput.EventTally(cam.name)
        token = engine.subscribe(tally)
        marks: dict[str, Any] = {}
        generated = sim.frames_generated()
        try:
            with common.Sampler() as sampler, common.cpu_clock() as clock:
                engine(_async_fly(cam, point, marks))
        finally:
            engine.unsubscribe(token)
        generated = sim.frames_generated() - generated
        written = tally.events
        acquire_s = marks["complete"] - marks["started"]
        end_to_end_s = marks["collected"] - marks["started"]
        lost = int(marks["lost"])
        return throughput._rates(point, written, acquire_s, end_to_end_s, clock, generated) | {
            "lost": lost,
            "unaccounted": point.frames - written - lost,
            "collect_us_per_frame": (marks["collected"] - marks["complete"]) / written * 1e6,
            "cpu_by_thread_s": sampler.cpu_by_role(),
        }
    finally:
        cam.close()


def measure_point(point: Point) -> dict[str, Any]:
    """Bare, the ophyd face and the async face, one after the other, each in its own
    scratch folder (deleted straight after)."""
    row: dict[str, Any] = {
        "point": asdict(point)
        | {"nominal_fps": point.nominal_fps, "buffer_frames": point.buffer_frames}
    }
    steps = (
        ("bare", throughput.measure_bare),
        ("ophyd", throughput.measure_device),
        ("async", measure_async),
    )
    for name, measure in steps:
        common.settle_writeback()
        with common.scratch_dir(f"faces-{name}") as folder:
            row[name] = measure(point, folder)
    bare, ophyd, asynch = row["bare"], row["ophyd"], row["async"]
    row["verdict"] = {
        "ophyd_over_bare_fps": ophyd["fps"] / bare["fps"],
        "async_over_bare_fps": asynch["fps"] / bare["fps"],
        "async_over_ophyd_fps": asynch["fps"] / ophyd["fps"],
        "async_overhead_cpu_us_per_frame": (asynch["cpu_s_per_frame"] - bare["cpu_s_per_frame"])
        * 1e6,
    }
    return row


def run(quick: bool) -> dict[str, Any]:
    return {"points": [measure_point(p) for p in points(quick)]}


COLUMNS = (
    "roi", "exp_ms", "nominal", "frames", "bare", "pace_b", "ophyd", "pace_o", "async",
    "pace_a", "oph/bare", "asy/bare", "asy/oph", "lost_b", "lost_o", "lost_a", "cpu_ms_b",
    "cpu_ms_o", "cpu_ms_a",
)  # fmt: skip


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per point: end-to-end fps of each side with the sensor's pace beside it."""
    lines = []
    for row in result["points"]:
        point, verdict = row["point"], row["verdict"]
        line: dict[str, Any] = {
            "roi": point["label"],
            "exp_ms": point["exposure_s"] * 1e3,
            "nominal": point["nominal_fps"],
            "frames": point["frames"],
            "oph/bare": verdict["ophyd_over_bare_fps"],
            "asy/bare": verdict["async_over_bare_fps"],
            "asy/oph": verdict["async_over_ophyd_fps"],
        }
        for side, tag in zip(SIDES, ("b", "o", "a"), strict=True):
            found = row[side]
            line[side] = found["fps"]
            line[f"pace_{tag}"] = found["camera_pace"]
            line[f"lost_{tag}"] = found["lost"] + found.get("unaccounted", 0)
            line[f"cpu_ms_{tag}"] = found["cpu_s_per_frame"] * 1e3
        lines.append(line)
    return lines
