"""Resident memory across a long fly scan (issue item 5).

20,000-frame fly scans of 128 x 128 frames at 1 kHz, RSS sampled every
50 ms from /proc/self/statm.  A short fly scan first warms up everything
loaded lazily (imports, caches); three long ones follow on the same device,
so growth from run to run (a leak) can be told from the allocator keeping
what a first run took (a high-water mark).  Growth while frames arrive and
the jump while ``collect`` builds the events are reported separately: they
have different causes.  The count of memory blocks Python's allocator has
handed out (``sys.getallocatedblocks``) tells objects kept (a leak) from
memory merely not returned to the system.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import _common as common
import numpy as np
import throughput

WIDTH, HEIGHT, EXPOSURE_S = 128, 128, 1e-3


def _fly(camera: Any, frames: int) -> dict[str, Any]:
    """One fly scan with RSS sampled throughout; MiB figures and the growth slope."""
    engine = common.run_engine()
    camera.num_frames.set(frames).wait(5)
    tally = throughput.EventTally(camera.name)
    token = engine.subscribe(tally)
    marks: dict[str, float] = {}
    gc.collect()
    start, blocks = common.rss_bytes(), sys.getallocatedblocks()
    try:
        with common.Sampler() as sampler:
            engine(throughput._timed_fly(camera, marks))
    finally:
        engine.unsubscribe(token)
    gc.collect()
    end = common.rss_bytes()
    acquiring = [(t, v) for t, v in sampler.rss if marks["started"] <= t <= marks["complete"]]
    return {
        "frames": frames,
        "events": tally.events,
        "lost": int(camera.dropped_frames.get()),
        "start_mib": start / common.MiB,
        "peak_mib": sampler.peak_rss / common.MiB,
        "peak_while_acquiring_mib": max((v for _, v in acquiring), default=start) / common.MiB,
        "end_mib": end / common.MiB,
        "growth_while_acquiring_kib_per_1000_frames": _slope(acquiring, frames, marks),
        "python_blocks_start": blocks,
        "python_blocks_end": sys.getallocatedblocks(),
    }


def _slope(samples: list[tuple[float, int]], frames: int, marks: dict[str, float]) -> float:
    """Least-squares RSS growth while acquiring, per thousand frames (KiB)."""
    if len(samples) < 3:
        return float("nan")
    times, values = np.array(samples, dtype=float).T
    bytes_per_second = np.polyfit(times, values, 1)[0]
    seconds_per_frame = (marks["complete"] - marks["started"]) / frames
    return float(bytes_per_second * seconds_per_frame * 1000 / 1024)


def run(quick: bool) -> dict[str, Any]:
    """Warm-up, then three long fly scans on one device; then one of 100,000 frames at
    the fastest small ROI, for the memory its collect takes."""
    frames = 1000 if quick else 20000
    with common.scratch_dir("memory") as folder:
        camera = common.new_device(folder)
        try:
            camera.readout_port.set("Speed").wait(5)
            camera.roi.set((0, 0, WIDTH, HEIGHT)).wait(5)
            camera.exposure_time.set(EXPOSURE_S).wait(5)
            _fly(camera, 500)
            runs = [_fly(camera, frames) for _ in range(3)]
            camera.roi.set((0, 0, WIDTH, 32)).wait(5)
            camera.exposure_time.set(1e-6).wait(5)  # 6 kHz: the readout of 32 rows
            long = _fly(camera, 5000 if quick else 100_000)
        finally:
            camera.close()
    return {
        "roi": [WIDTH, HEIGHT],
        "exposure_s": EXPOSURE_S,
        "runs": runs,
        "end_minus_start_mib": runs[-1]["end_mib"] - runs[0]["start_mib"],
        "last_run_growth_mib": runs[-1]["end_mib"] - runs[-2]["end_mib"],
        "python_blocks_growth_per_run": (
            runs[-1]["python_blocks_end"] - runs[0]["python_blocks_end"]
        )
        / (len(runs) - 1),
        "collect_jump_mib": max(r["peak_mib"] - r["peak_while_acquiring_mib"] for r in runs),
        "long_run": long,
        "long_collect_over_acquiring_mib": long["peak_mib"] - long["peak_while_acquiring_mib"],
    }


COLUMNS = (
    "run", "frames", "lost", "start_MiB", "peak_acq_MiB", "peak_MiB", "end_MiB", "KiB/1000fr",
    "py_blocks",
)  # fmt: skip


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "run": index,
            "frames": entry["frames"],
            "lost": entry["lost"],
            "start_MiB": entry["start_mib"],
            "peak_acq_MiB": entry["peak_while_acquiring_mib"],
            "peak_MiB": entry["peak_mib"],
            "end_MiB": entry["end_mib"],
            "KiB/1000fr": entry["growth_while_acquiring_kib_per_1000_frames"],
            "py_blocks": entry["python_blocks_end"],
        }
        for index, entry in enumerate([*result["runs"], result["long_run"]], start=1)
    ]
