"""Step-scan overhead.

``count(num=200)`` of the camera at 1 ms exposure: the time per point minus
the exposure and the readout is what the device, the file and the
RunEngine add.  Two baselines from the same run: a bare loop (pyvcam software
trigger, the frame written with h5py and flushed, per point) and ``ophyd.sim``'s
detector in the same plan on the same RunEngine (the RunEngine's own share).

Like with like: the camera writes bitshuffle/LZ4 by default (ADR 0007), so the
bare loop the goal compares it with writes bslz4 too (HDF5's own filter, one
call per frame).  Each case also runs the pair uncompressed (the camera with
``compression="none"`` against the bare loop's plain chunks), so neither
comparison hides the other.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import _common as common

EXPOSURE_S = 1e-3


@dataclass(frozen=True)
class Case:
    """A camera setting for the step scan."""

    label: str
    width: int
    height: int
    port: str


CASES = (
    Case("2048x2048 Sensitivity", 2048, 2048, "Sensitivity"),
    Case("128x128 Speed", 128, 128, "Speed"),
)


class EventClock:
    """Records when each event was made (events of a count are emitted one by one)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, name: str, doc: dict) -> None:
        if name == "event":
            self.times.append(doc["time"])
        elif name == "event_page":
            self.times.extend(doc["time"])

    def periods(self) -> list[float]:
        """Seconds between consecutive points (the first point also pays for staging)."""
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def _count(detector: Any, num: int) -> dict[str, Any]:
    """Run ``count([detector], num)`` and time its points."""
    import bluesky.plans as bp

    engine = common.run_engine()
    clock = EventClock()
    token = engine.subscribe(clock)
    try:
        with common.cpu_clock() as usage:
            engine(bp.count([detector], num=num))
    finally:
        engine.unsubscribe(token)
    periods = clock.periods()
    return {
        "points": len(clock.times),
        "run_s": usage["wall_s"],
        "cpu_ms_per_point": usage["cpu_s"] / num * 1e3,
        "period_ms": {k: v * 1e3 for k, v in common.summary(periods).items()},
    }


def measure_reference(num: int) -> dict[str, Any]:
    """``ophyd.sim.det`` (a synthetic gaussian): the RunEngine's per-point cost."""
    from ophyd.sim import det

    return _count(det, num)


def measure_camera(case: Case, num: int, compression: str = "bslz4") -> dict[str, Any]:
    """The simulated Prime BSI, software-triggered, one frame per point."""
    with common.scratch_dir("step") as folder:
        camera = common.new_device(folder)
        try:
            camera.compression.set(compression).wait(5)
            camera.readout_port.set(case.port).wait(5)
            camera.roi.set((0, 0, case.width, case.height)).wait(5)
            camera.exposure_time.set(EXPOSURE_S).wait(5)
            result = _count(camera, num)
            readout_s = float(camera.readout_time.get())
        finally:
            camera.close()
    floor_ms = (EXPOSURE_S + readout_s) * 1e3
    result["exposure_plus_readout_ms"] = floor_ms
    result["overhead_ms"] = {k: v - floor_ms for k, v in result["period_ms"].items()}
    return result


def measure_bare_loop(case: Case, num: int, compression: str = "bslz4") -> dict[str, Any]:
    """What a step scan needs at the least, with pyvcam and h5py alone: per point, a
    software trigger, the frame, written (``compression`` as the camera's) and flushed
    (no RunEngine, no documents)."""
    import time

    with common.scratch_dir("step-bare") as folder, common.bare_camera() as camera:
        common.configure_bare(
            camera, port=case.port, speed=0, roi=(0, 0, case.width, case.height), metadata=False
        )
        camera.exp_mode = dict(camera.exp_modes)["Software Trigger Edge"]
        appender = common.PlainAppender(folder / "bare.h5", (case.height, case.width), compression)
        times = []
        camera.start_live(exp_time=round(EXPOSURE_S * 1e6), buffer_frame_count=16)
        try:
            with common.cpu_clock() as usage:
                for _ in range(num):
                    camera.sw_trigger()
                    frame, _fps, _count = camera.poll_frame(
                        timeout_ms=common.POLL_TIMEOUT_MS, oldestFrame=True, copyData=False
                    )
                    appender.append(frame["pixel_data"])
                    appender.flush()
                    times.append(time.monotonic())
        finally:
            camera.finish()
            appender.close()
    periods = [b - a for a, b in itertools.pairwise(times)]
    return {
        "points": len(times),
        "cpu_ms_per_point": usage["cpu_s"] / num * 1e3,
        "period_ms": {k: v * 1e3 for k, v in common.summary(periods).items()},
    }


def run(quick: bool) -> dict[str, Any]:
    """Each camera case and its bare loop, bslz4 (the camera's default: the goal's
    pair) then uncompressed, then the reference detector, same ``num``."""
    num = 20 if quick else 200
    cases = []
    for case in CASES:
        frame_bytes = case.width * case.height * 2
        measured = {}
        for key, measure, compression in (
            ("camera", measure_camera, "bslz4"),
            ("bare", measure_bare_loop, "bslz4"),
            ("camera_raw", measure_camera, "none"),
            ("bare_raw", measure_bare_loop, "none"),
        ):
            common.settle_writeback()
            common.recycle_page_cache(num * frame_bytes)
            measured[key] = measure(case, num, compression)
        camera, bare = measured["camera"], measured["bare"]
        ratio = camera["period_ms"]["median"] / bare["period_ms"]["median"]
        raw_ratio = (
            measured["camera_raw"]["period_ms"]["median"]
            / measured["bare_raw"]["period_ms"]["median"]
        )
        cases.append({"case": asdict(case), **measured, "camera_over_bare": ratio,
                      "camera_raw_over_bare_raw": raw_ratio})  # fmt: skip
    reference = measure_reference(num)
    for entry in cases:
        for key in ("camera", "camera_raw"):
            entry[f"{key}_overhead_beyond_reference_ms"] = (
                entry[key]["overhead_ms"]["median"] - reference["period_ms"]["median"]
            )
        entry["overhead_beyond_reference_ms"] = entry["camera_overhead_beyond_reference_ms"]
    return {"num": num, "exposure_s": EXPOSURE_S, "cases": cases, "reference": reference}


COLUMNS = (
    "detector", "points", "period_med", "period_max", "exp+readout", "overhead_med",
    "overhead_max", "beyond_ref", "cpu_ms", "camera/bare",
)  # fmt: skip


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per camera case and compression, one per bare loop, and one for the
    reference (milliseconds); ``camera/bare`` pairs the same compression."""
    lines = []
    for key, what in (("camera", "bslz4"), ("camera_raw", "none")):
        for entry in result["cases"]:
            camera = entry.get(key)
            if camera is None:
                continue
            lines.append(
                {
                    "detector": f"{entry['case']['label']} {what}",
                    "points": camera["points"],
                    "period_med": camera["period_ms"]["median"],
                    "period_max": camera["period_ms"]["max"],
                    "exp+readout": camera["exposure_plus_readout_ms"],
                    "overhead_med": camera["overhead_ms"]["median"],
                    "overhead_max": camera["overhead_ms"]["max"],
                    "beyond_ref": entry[f"{key}_overhead_beyond_reference_ms"],
                    "cpu_ms": camera["cpu_ms_per_point"],
                }
            )
    for key, ratio, what in (
        ("bare", "camera_over_bare", "bslz4"),
        ("bare_raw", "camera_raw_over_bare_raw", "none"),
    ):
        for entry in result["cases"]:
            bare = entry.get(key)
            if bare is None:
                continue
            lines.append(
                {
                    "detector": f"bare loop {entry['case']['label']} {what}",
                    "points": bare["points"],
                    "period_med": bare["period_ms"]["median"],
                    "period_max": bare["period_ms"]["max"],
                    "beyond_ref": None,
                    "cpu_ms": bare["cpu_ms_per_point"],
                    "camera/bare": entry[ratio],
                }
            )
    reference = result["reference"]
    lines.append(
        {
            "detector": "ophyd.sim.det",
            "points": reference["points"],
            "period_med": reference["period_ms"]["median"],
            "period_max": reference["period_ms"]["max"],
            "cpu_ms": reference["cpu_ms_per_point"],
        }
    )
    return lines
