"""Sustained fly scans (issue 21): the camera's top full-frame rates for a long run, and
the writer's lag at a 6 kHz ROI.

Two fly scans of the device, bslz4 (the default), each against the disk's own
measured sequential write bandwidth in the same run:

- 5000 full frames (2048 x 2048) on port "Speed", speed 0: 11-bit, readout
  10.6 ms, 94 fps;
- 3000 full frames on port "Sensitivity": 16-bit, readout 21.3 ms, 47 fps;
- 100,000 frames of 128 x 32 at 6 kHz: how far the writer falls behind (frames
  waiting in the memory queue, as seconds of frames; ADR 0012 batches them).

For each: frames lost (the device's count), the rate frames reach the disk (frames
written over the time from the camera's start until the last is written and
collected, and the file's bytes over that time), the sensor's measured pace
(frames the simulated sensor made per second over its nominal rate: it never waits
for the host, so a pace below 1 means this machine could not even run the
simulator on time), CPU per frame by thread, and the simulator's own CPU per frame
(``ophyd_pvcam.sim.stats``: its sensor and callback threads, callbacks excluded).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import _common as common
import throughput
from throughput import Point

import ophyd_pvcam.sim as sim

PROBE_BYTES = 2 << 30  # written and fsynced to measure the disk (quick: 256 MiB)


def points(quick: bool) -> list[Point]:
    return [
        Point("2048x2048 11-bit", 2048, 2048, 1e-6, 300 if quick else 5000, "Speed", 0),
        Point("2048x2048 16-bit", 2048, 2048, 1e-6, 200 if quick else 3000, "Sensitivity", 0),
        Point("128x32 6 kHz", 128, 32, 1e-6, 6000 if quick else 100_000, "Speed", 0),
    ]


class _Sampler:
    """Calls ``sample()`` every ``interval_s`` on a thread of its own, from entering the
    ``with`` block to leaving it."""

    interval_s = 0.05

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"bench-{type(self).__name__}", daemon=True
        )

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        raise NotImplementedError


class WriterLag(_Sampler):
    """How far the writer is behind the camera: frames waiting in the device's memory
    queue (every 50 ms) times the frame period, in seconds; the largest seen."""

    def __init__(self, period_s: float):
        super().__init__()
        self.period_s = period_s
        self.most = 0
        self._camera: Any = None

    def __call__(self, camera: Any) -> WriterLag:
        self._camera = camera
        return self

    def sample(self) -> None:
        frames = getattr(self._camera._controller, "_frames", None)
        if frames is not None:
            self.most = max(self.most, frames.depth)

    @property
    def seconds(self) -> float:
        return self.most * self.period_s


def disk_bandwidth(folder: Path, nbytes: int) -> dict[str, float]:
    """Sequential writes of 8 MiB blocks, then fsync: what this disk takes, in MB/s
    (the page cache absorbs bursts; a long run is bounded by this)."""
    block = os.urandom(8 << 20)
    path = folder / "probe.bin"
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < nbytes:
            written += os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return {"bytes": written, "seconds": seconds, "mb_per_s": written / seconds / 1e6}


def _file_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.h5"))


class SensorPace(_Sampler):
    """Watches the simulator's frame count (every 20 ms) and measures the sensor's own
    pace: frames made per second from its first frame to the ``frames``-th, over the
    nominal rate.  (The device's figures time the run to its last frame written.)"""

    interval_s = 0.02

    def __init__(self, frames: int, nominal_fps: float):
        super().__init__()
        self.frames, self.nominal_fps = frames, nominal_fps
        self.base = sim.stats().frames_generated
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None

    def sample(self) -> None:
        made = sim.stats().frames_generated - self.base
        now = time.monotonic()
        if made and self.first is None:
            self.first = (now, made)
        if made and (self.last is None or self.last[1] < self.frames):
            self.last = (now, made)

    @property
    def pace(self) -> float:
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return float("nan")
        rate = (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])
        return rate / self.nominal_fps


def measure(point: Point, folder: Path) -> dict[str, Any]:
    """The device's fly scan of ``point``, with the simulator's own cost beside it."""
    before = sim.stats()
    lag = WriterLag(point.period_s)
    with SensorPace(point.frames, point.nominal_fps) as pace:
        result = throughput.measure_device(point, folder, watch=lag)
    cost = sim.stats() - before
    written = max(result["frames_written"], 1)
    end_to_end_s = written / result["fps"]
    file_bytes = _file_bytes(folder)
    return result | {
        "camera_pace": pace.pace,
        "writer_lag_s": lag.seconds,
        "writer_lag_frames": lag.most,
        "device_pace": result["camera_pace"],  # frames made / time to the last written
        "disk_fps": result["fps"],
        "disk_mb_per_s": file_bytes / end_to_end_s / 1e6,
        "file_bytes": file_bytes,
        "compression_ratio": written * point.width * point.height * 2 / max(file_bytes, 1),
        "cpu_ms_per_frame_by_thread": {
            role: seconds / written * 1e3 for role, seconds in result["cpu_by_thread_s"].items()
        },
        "sim_cpu_us_per_frame": cost.cpu_per_frame_us,
        "sim_sensor_cpu_us_per_frame": cost.sensor_cpu_ns / max(cost.frames_generated, 1) / 1e3,
        "sim_frames_overwritten": cost.frames_overwritten,
        "sim_frames_generated": cost.frames_generated,
    }


def run(quick: bool) -> dict[str, Any]:
    rows = []
    with common.scratch_dir("disk") as folder:
        common.settle_writeback()
        disk = disk_bandwidth(folder, PROBE_BYTES // 8 if quick else PROBE_BYTES)
    for point in points(quick):
        common.settle_writeback()
        with common.scratch_dir("sustained") as folder:
            device = measure(point, folder)
        rows.append(
            {
                "point": asdict(point) | {"nominal_fps": point.nominal_fps},
                "device": device,
                "disk_needs_mb_per_s": point.nominal_fps
                * point.width
                * point.height
                * 2
                / device["compression_ratio"]
                / 1e6,
            }
        )
    return {"disk": disk, "points": rows}


COLUMNS = (
    "setting", "frames", "nominal", "lost", "disk_fps", "pace", "lag_s", "MB/s", "need",
    "disk", "cpu_ms", "sim_us", "overwr",
)  # fmt: skip


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per run: ``need`` is the disk rate the nominal pace needs at the measured
    compression, ``disk`` the disk's measured sequential rate (MB/s)."""
    rows = []
    for row in result["points"]:
        device = row["device"]
        rows.append(
            {
                "setting": row["point"]["label"],
                "frames": row["point"]["frames"],
                "nominal": row["point"]["nominal_fps"],
                "lost": device["lost"],
                "disk_fps": device["disk_fps"],
                "pace": device["camera_pace"],
                "lag_s": device["writer_lag_s"],
                "MB/s": device["disk_mb_per_s"],
                "need": row["disk_needs_mb_per_s"],
                "disk": result["disk"]["mb_per_s"],
                "cpu_ms": device["cpu_s_per_frame"] * 1e3,
                "sim_us": device["sim_cpu_us_per_frame"],
                "overwr": device["sim_frames_overwritten"],
            }
        )
    return rows


def thread_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """CPU per frame (ms) by thread, one row per run."""
    return [
        {"setting": row["point"]["label"]} | row["device"]["cpu_ms_per_frame_by_thread"]
        for row in result["points"]
    ]
