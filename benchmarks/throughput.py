"""Fly-scan throughput (issue items 1 and 2).

Three ways to put the same frames into HDF5, measured side by side in one run:

- ``ceiling``: h5py appending one in-memory frame over and over (no camera);
- ``bare``: a plain loop over pyvcam's ``poll_frame`` appending each frame to
  an h5py dataset (no ophyd-pvcam, no bluesky, no documents);
- ``device``: ``PrimeBSI`` flown by a RunEngine with the stall guard, every
  frame written, checked and turned into an event.

The simulated camera paces frames at max(exposure, rows x line time), so a
rate is chosen with the ROI height and the exposure.  Both the bare loop and
the device get the same circular buffer.  The simulated camera runs in this
process: its CPU (a copy per frame from its pool, ADR 0012) is in every CPU figure, on
both sides.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import _common as common
import numpy as np

import ophyd_pvcam.sim as sim

# The modelled line times (README, "What the simulator models"), per port and speed.
LINE_TIME_S = {("Sensitivity", 0): 10.39e-6, ("Speed", 0): 5.195e-6, ("Speed", 1): 10.39e-6}
BUFFER_SECONDS = 0.25  # of frames in the circular buffer, as the device's automatic choice
BUFFER_BYTES_MAX = 256 * common.MiB
SUSTAINED_PACE = 0.95  # the camera ran at >= 95 % of its nominal rate


@dataclass(frozen=True)
class Point:
    """One fly-scan setting: ROI, exposure and how many frames."""

    label: str
    width: int
    height: int
    exposure_s: float
    frames: int
    port: str = "Speed"
    speed: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def period_s(self) -> float:
        """The modelled frame period: max(exposure, readout)."""
        return max(self.exposure_s, self.height * LINE_TIME_S[(self.port, self.speed)])

    @property
    def nominal_fps(self) -> float:
        return 1.0 / self.period_s

    @property
    def buffer_frames(self) -> int:
        """A quarter second of frames, 16 at least, 256 MiB at most."""
        most = max(16, BUFFER_BYTES_MAX // (self.width * self.height * 2))
        return int(min(most, max(16, math.ceil(BUFFER_SECONDS / self.period_s))))


def full_frame_points(quick: bool, frames: int | None = None) -> list[Point]:
    """Item 1: the fastest modelled full-frame setting, with an exposure (1 us)
    shorter than any real Prime BSI offers; the readout (10.6 ms) sets the pace,
    so no shorter exposure goes faster."""
    return [Point("2048x2048", 2048, 2048, 1e-6, frames or (20 if quick else 2000))]


def small_roi_points(quick: bool) -> list[Point]:
    """Item 2: rising rates at 128 x 128 and 512 x 512 until the camera's limit, then
    ROIs of fewer rows (same width) to push the per-frame rate past that limit."""
    seconds = 0.2 if quick else 3.0

    def point(label: str, width: int, height: int, exposure_s: float) -> Point:
        probe = Point(label, width, height, exposure_s, 0)
        return Point(label, width, height, exposure_s, max(100, round(seconds / probe.period_s)))

    points = [
        point("128x128", 128, 128, 2e-3),
        point("128x128", 128, 128, 1e-3),
        point("128x128", 128, 128, 1e-6),
        point("128x64 probe", 128, 64, 1e-6),
        point("128x32 probe", 128, 32, 1e-6),
        point("512x512", 512, 512, 5e-3),
        point("512x512", 512, 512, 1e-6),
    ]
    return points[2:3] + points[6:] if quick else points


# ---- the three measurements ------------------------------------------------------


def measure_ceiling(shape: tuple[int, int], frames: int, folder: Path) -> dict[str, Any]:
    """h5py alone: append the same in-memory frame ``frames`` times."""
    frame = common.pretouched_frame(shape)
    appender = common.PlainAppender(folder / "ceiling.h5", shape)
    with common.cpu_clock() as clock:
        for _ in range(frames):
            appender.append(frame)
        appender.close()
    return {
        "frames": frames,
        "fps": frames / clock["wall_s"],
        "cpu_us_per_frame": clock["cpu_s"] / frames * 1e6,
    }


def _bare_loop(camera: Any, point: Point, appender: common.PlainAppender) -> dict[str, Any]:
    """Poll and append until the last frame (or a timeout).  pvc counts frame
    callbacks: a gap in that count is frames lost in its queue, and a stamped
    frame number that differs from it is a slot overwritten before it was read."""
    last = lost = overwritten = 0
    timed_out = False
    started = time.monotonic()
    while last < point.frames:
        try:
            frame, _fps, count = camera.poll_frame(
                timeout_ms=common.POLL_TIMEOUT_MS, oldestFrame=True, copyData=False
            )
        except RuntimeError:
            timed_out = True
            break
        count = min(count, point.frames + 1)
        lost += count - last - 1
        last = count
        if count > point.frames:
            break
        pixels = frame["pixel_data"]
        if sim.frame_number(pixels) != count:
            overwritten += 1
        appender.append(pixels)
    return {
        "acquire_s": time.monotonic() - started,
        "lost": lost + overwritten,
        "overwritten": overwritten,
        "timed_out": timed_out,
    }


def measure_bare(point: Point, folder: Path) -> dict[str, Any]:
    """pyvcam + h5py and nothing else, on the same camera settings and buffer."""
    with common.bare_camera() as camera:
        common.configure_bare(
            camera,
            port=point.port,
            speed=point.speed,
            roi=(0, 0, *point.shape[::-1]),
            metadata=False,
        )
        appender = common.PlainAppender(folder / "bare.h5", point.shape)
        generated = sim.frames_generated()
        with common.Sampler() as sampler, common.cpu_clock() as clock:
            camera.start_live(
                exp_time=round(point.exposure_s * 1e6), buffer_frame_count=point.buffer_frames
            )
            loop = _bare_loop(camera, point, appender)
            camera.finish()
            appender.close()
        generated = sim.frames_generated() - generated
    written = appender.rows
    return _rates(point, written, loop["acquire_s"], loop["acquire_s"], clock, generated) | {
        "lost": loop["lost"],
        "overwritten": loop["overwritten"],
        "timed_out": loop["timed_out"],
        "cpu_by_thread_s": sampler.cpu_by_role(),
    }


def _timed_fly(camera: Any, marks: dict[str, float]):
    """``bluesky.plans.fly`` with time marks: the same messages, in the same order."""
    import bluesky.plan_stubs as bps

    yield from bps.open_run()
    yield from bps.kickoff(camera, wait=True)
    marks["started"] = time.monotonic()
    yield from bps.complete(camera, wait=True)
    marks["complete"] = time.monotonic()
    yield from bps.collect(camera)
    marks["collected"] = time.monotonic()
    yield from bps.close_run()


class EventTally:
    """A light subscriber: counts the frames handed to the run (a declared stream's
    StreamDatum rows, or events) and frames reported lost in events; nothing kept."""

    def __init__(self, name: str):
        self.key = f"{name}_lost_before"
        self.image = f"{name}_image"
        self._image_resources: set[str] = set()
        self.events = 0
        self.lost_before = 0

    def __call__(self, name: str, doc: dict) -> None:
        if name == "stream_resource" and doc["data_key"] == self.image:
            self._image_resources.add(doc["uid"])
        elif name == "stream_datum" and doc["stream_resource"] in self._image_resources:
            self.events += doc["indices"]["stop"] - doc["indices"]["start"]
        elif name == "event_page":
            self.events += len(doc["seq_num"])
            self.lost_before += int(np.sum(doc["data"][self.key]))
        elif name == "event":
            self.events += 1
            self.lost_before += int(doc["data"][self.key])


def configure_device(camera: Any, point: Point, compression: str = "bslz4") -> None:
    """Settings for a free-running fly scan of ``point``."""
    camera.compression.set(compression).wait(5)
    camera.readout_port.set(point.port).wait(5)
    camera.speed_index.set(point.speed).wait(5)
    camera.roi.set((0, 0, point.width, point.height)).wait(5)
    camera.exposure_time.set(point.exposure_s).wait(5)
    camera.num_frames.set(point.frames).wait(5)
    camera.buffer_frames.set(point.buffer_frames).wait(5)


def measure_device(
    point: Point, folder: Path, compression: str = "bslz4", watch: Any = None
) -> dict[str, Any]:
    """The device end to end: kickoff, complete, collect (documents included).
    ``watch(camera)``: a context manager held around the fly scan."""
    engine = common.run_engine()
    camera = common.new_device(folder)
    try:
        configure_device(camera, point, compression)
        tally = EventTally(camera.name)
        token = engine.subscribe(tally)
        marks: dict[str, float] = {}
        generated = sim.frames_generated()
        try:
            with (
                watch(camera) if watch else contextlib.nullcontext(),
                common.Sampler() as sampler,
                common.cpu_clock() as clock,
            ):
                engine(_timed_fly(camera, marks))
        finally:
            engine.unsubscribe(token)
        generated = sim.frames_generated() - generated
        written = tally.events
        acquire_s = marks["complete"] - marks["started"]
        end_to_end_s = marks["collected"] - marks["started"]
        return _rates(point, written, acquire_s, end_to_end_s, clock, generated) | {
            "lost": int(camera.dropped_frames.get()),
            "lost_in_events": tally.lost_before,
            "unaccounted": point.frames - written - int(camera.dropped_frames.get()),
            "collect_us_per_frame": (marks["collected"] - marks["complete"]) / written * 1e6,
            "camera_frame_period_s": float(camera.frame_period.get()),
            "cpu_by_thread_s": sampler.cpu_by_role(),
        }
    finally:
        camera.close()


def _rates(
    point: Point,
    written: int,
    acquire_s: float,
    end_to_end_s: float,
    clock: dict[str, float],
    generated: int,
) -> dict[str, Any]:
    return {
        "frames_written": written,
        "acquire_fps": written / acquire_s,
        "fps": written / end_to_end_s,
        "camera_pace": generated / acquire_s / point.nominal_fps,
        "cpu_s_per_frame": clock["cpu_s"] / max(written, 1),
        "wall_s": clock["wall_s"],
    }


# ---- one point, all three ways ------------------------------------------------------


def measure_point(point: Point, ceiling: bool, raw_too: bool = False) -> dict[str, Any]:
    """Ceiling (optional), bare and device for one setting, each in its own folder
    (deleted straight after, so its dirty pages never reach the disk).  ``raw_too``:
    the device also without compression (``device_raw``)."""
    row: dict[str, Any] = {
        "point": asdict(point)
        | {"nominal_fps": point.nominal_fps, "buffer_frames": point.buffer_frames}
    }
    steps = [("bare", measure_bare), ("device", measure_device)]
    if raw_too:
        steps.append(("device_raw", lambda p, f: measure_device(p, f, "none")))
    if ceiling:
        steps.insert(0, ("ceiling", lambda p, f: measure_ceiling(p.shape, p.frames, f)))
    for name, measure in steps:
        common.settle_writeback()
        with common.scratch_dir(name) as folder:
            row[name] = measure(point, folder)
    row["verdict"] = verdict(row)
    return row


def sustained(result: dict[str, Any]) -> bool:
    """No frame lost and the camera kept its pace (the simulated camera slows down,
    rather than losing frames, when its frame callback is held up)."""
    return (
        result["lost"] == 0
        and result.get("unaccounted", 0) == 0
        and not result.get("timed_out", False)
        and result["camera_pace"] >= SUSTAINED_PACE
    )


def verdict(row: dict[str, Any]) -> dict[str, Any]:
    """The comparisons the issue asks for, for one point."""
    bare, device = row["bare"], row["device"]
    found = {
        "device_over_bare_fps": device["fps"] / bare["fps"],
        "device_acquire_over_bare_fps": device["acquire_fps"] / bare["fps"],
        "overhead_cpu_us_per_frame": (device["cpu_s_per_frame"] - bare["cpu_s_per_frame"]) * 1e6,
        "bare_sustained": sustained(bare),
        "device_sustained": sustained(device),
    }
    if "ceiling" in row:
        found["bare_over_ceiling_fps"] = bare["fps"] / row["ceiling"]["fps"]
    if "device_raw" in row:
        found["device_raw_over_bare_fps"] = row["device_raw"]["fps"] / bare["fps"]
    return found


def highest_zero_loss(rows: list[dict[str, Any]], side: str) -> dict[str, dict | None]:
    """Per ROI label, the point with the highest delivered rate and no frame lost
    (None: every point lost frames), with its nominal rate and the camera's pace."""
    best: dict[str, dict | None] = {}
    for row in rows:
        label, result = row["point"]["label"], row[side]
        best.setdefault(label, None)
        if result["lost"] or result.get("unaccounted") or result.get("timed_out"):
            continue
        current = best[label]
        if current is None or result["acquire_fps"] > current["delivered_fps"]:
            best[label] = {
                "delivered_fps": result["acquire_fps"],
                "nominal_fps": row["point"]["nominal_fps"],
                "camera_pace": result["camera_pace"],
            }
    return best


def run(
    quick: bool,
    sections: tuple[str, ...] = ("full_frame", "small_roi"),
    full_frames: int | None = None,
) -> dict[str, Any]:
    """Both throughput benchmarks; returns their results."""
    results: dict[str, Any] = {}
    if "full_frame" in sections:
        points = full_frame_points(quick, full_frames)
        rows = [measure_point(p, ceiling=True, raw_too=True) for p in points]
        results["full_frame"] = {"points": rows}
    if "disk_burst" in sections:
        results["disk_burst"] = disk_burst(quick, full_frames)
    if "small_roi" in sections:
        rows = []
        shapes_with_ceiling: set[tuple[int, int]] = set()
        for p in small_roi_points(quick):
            rows.append(measure_point(p, ceiling=p.shape not in shapes_with_ceiling))
            shapes_with_ceiling.add(p.shape)
        results["small_roi"] = {
            "points": rows,
            "highest_zero_loss": {
                "bare": highest_zero_loss(rows, "bare"),
                "device": highest_zero_loss(rows, "device"),
            },
        }
    return results


COLUMNS = (
    "roi", "exp_ms", "nominal", "frames", "ceiling", "bare", "device", "dev/bare", "raw",
    "lost_b", "lost_d", "lost_raw", "pace_b", "pace_d", "cpu_ms_b", "cpu_ms_d", "ovh_us",
    "coll_us",
)  # fmt: skip


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per point for the printed table (fps unless said otherwise)."""
    lines = []
    for row in rows:
        point, bare, device = row["point"], row["bare"], row["device"]
        lines.append(
            {
                "roi": point["label"],
                "exp_ms": point["exposure_s"] * 1e3,
                "nominal": point["nominal_fps"],
                "frames": point["frames"],
                "ceiling": row.get("ceiling", {}).get("fps"),
                "bare": bare["fps"],
                "device": device["fps"],
                "dev/bare": row["verdict"]["device_over_bare_fps"],
                "raw": row.get("device_raw", {}).get("fps"),
                "lost_b": bare["lost"],
                "lost_d": device["lost"] + device["unaccounted"],
                "lost_raw": (
                    row["device_raw"]["lost"] + row["device_raw"]["unaccounted"]
                    if "device_raw" in row
                    else None
                ),
                "pace_b": bare["camera_pace"],
                "pace_d": device["camera_pace"],
                "cpu_ms_b": bare["cpu_s_per_frame"] * 1e3,
                "cpu_ms_d": device["cpu_s_per_frame"] * 1e3,
                "ovh_us": row["verdict"]["overhead_cpu_us_per_frame"],
                "coll_us": device["collect_us_per_frame"],
            }
        )
    return lines


# ---- a disk burst under a fly scan ------------------------------------------------------

BURST_BYTES = 1536 * common.MiB


def _burst(folder: Path, delay_s: float, size: int = BURST_BYTES) -> Any:
    """Another process writing 1.5 GiB to the same disk, synced, starting after
    ``delay_s`` (a colleague copying a data set)."""
    import subprocess

    script = (
        f"sleep {delay_s}; dd if=/dev/zero of={folder / 'burst.bin'} bs=16M "
        f"count={size // (16 * common.MiB)} conv=fsync status=none"
    )
    return subprocess.Popen(["sh", "-c", script])


def disk_burst(quick: bool, frames: int | None = None) -> dict[str, Any]:
    """16-bit full frames (47 fps) through a 1.5 GiB burst from another process (256 MiB
    in a quick run): bare (writes in its polling loop) and the device (memory between
    camera and disk)."""
    seconds = 4 if quick else 15
    point = Point("2048x2048 16-bit", 2048, 2048, 1e-6, frames or round(seconds * 47),
                  port="Sensitivity", speed=0)  # fmt: skip
    row: dict[str, Any] = {"point": asdict(point) | {"nominal_fps": point.nominal_fps}}
    for name, measure in (("bare", measure_bare), ("device", measure_device)):
        common.settle_writeback()
        with common.scratch_dir(f"burst-{name}") as folder:
            burst = _burst(folder, delay_s=1.0, size=256 * common.MiB if quick else BURST_BYTES)
            try:
                row[name] = measure(point, folder)
            finally:
                burst.wait(120)
            row[name]["burst_finished"] = burst.returncode == 0
    row["verdict"] = verdict(row)
    return row
