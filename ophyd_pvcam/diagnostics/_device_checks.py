"""The first-day check's checks through ophyd-pvcam: a stream of frames per readout
mode, a step scan and a fly scan through the RunEngine replayed from the catalog, and
the sensor's temperature.

These see the camera as a beamline will: the device writes to disk and the runs are
read back from a catalog opened afresh, as a later process would.  Each gives back one
row of the report (``_check_report``); a simulated camera's frames are also checked
pixel by pixel (the simulator stamps each frame's number into its pixels).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from bluesky.utils import RunEngineInterrupted

from ophyd_pvcam import sim

from ._bench import Bench
from ._check_report import Check, CheckOptions, Mode

IDLE_TIMEOUT_S = 30.0


def prepare(cam: Any, bench: Bench) -> None:
    """The beamline's own temperature setpoint, if the camera had one."""
    from ophyd_pvcam.hardware.sdk import PARAM_TEMP_SETPOINT

    saved = bench.saved.get(PARAM_TEMP_SETPOINT)
    low, high = cam.capabilities.temperature_setpoint_range
    if saved is not None and low <= saved / 100 <= high:
        cam.temperature_setpoint.set(saved / 100).wait(10)
    cam.trigger_mode.set("Internal Trigger").wait(10)


def _apply(cam: Any, bench: Bench, mode: Mode, size: int, exposure: float, **settings: Any) -> None:
    """A centred square ROI of ``size``, ``mode``, the exposure (s) and ``settings`` (by
    signal name), once the camera is idle."""
    width, height = bench.sensor
    size = min(size, width, height)
    _wait_idle(cam)
    cam.roi.set(((width - size) // 2, (height - size) // 2, size, size)).wait(10)
    cam.readout_port.set(mode.port).wait(10)
    cam.speed_index.set(mode.speed).wait(10)
    cam.gain_index.set(mode.gain).wait(10)
    cam.exposure_time.set(exposure).wait(10)
    for name, value in settings.items():
        getattr(cam, name).set(value).wait(10)


def stream(cam: Any, bench: Bench, mode: Mode, options: CheckOptions) -> Check:
    """``stream_frames`` frames of a small ROI to disk in ``mode``: none lost, frame
    numbers 1..n without a gap (the disk, not the camera, would limit full frames)."""
    from ophyd_pvcam.errors import CameraAcquisitionError, FrameStallError

    o = options
    started = time.monotonic()
    _apply(cam, bench, mode, o.stream_size, o.stream_exposure, num_frames=o.stream_frames)
    failure = None
    try:
        cam.kickoff().wait(30)
        cam.complete().wait(60 + o.stream_frames * max(o.stream_exposure, 0.001) * 3)
    except (FrameStallError, CameraAcquisitionError) as error:
        failure = str(error).splitlines()[0]
    finally:
        list(cam.collect_asset_docs())
        pages = list(cam.collect_pages())
        _wait_idle(cam)
    numbers = [int(n) for page in pages for n in page["data"]["cam_frame_number"]]
    times = [float(t) for page in pages for t in page["data"]["cam_frame_time"]]
    lost = int(cam.dropped_frames.get())
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    contiguous = numbers == list(range(1, o.stream_frames + 1))
    problems = [failure] if failure else []
    if lost:
        problems.append(f"{lost} frames lost")
    if not contiguous and not failure:
        gaps = [b for a, b in zip([0, *numbers], numbers, strict=False) if b != a + 1]
        problems.append(f"frame numbers not 1..{o.stream_frames}: jumps at {gaps[:8]}")
    size = min(o.stream_size, *bench.sensor)
    return Check(
        f"stream {o.stream_frames} {mode.label}",
        "fail" if problems else "pass",
        f"{len(numbers)} frames, {lost} lost, numbers "
        f"{'1..' + str(numbers[-1]) if numbers else 'none'}"
        f"{' contiguous' if contiguous else ''}, {fps:.0f} fps",
        f"{o.stream_frames} frames, 0 lost, contiguous (ROI {size}x{size}, exposure "
        f"{o.stream_exposure * 1e3:g} ms)",
        "; ".join(problems),
        {"frames": len(numbers), "lost": lost, "fps": fps, "mode": mode.label},
        round(time.monotonic() - started, 2),
    )


@dataclass
class Scans:
    """A RunEngine recording into the check's catalog, and the catalog opened afresh to
    replay each run, as a later process would."""

    engine: Any
    replay: Callable[[str], Any]  # a run's uid -> the run

    def run(self, plan: Any) -> tuple[str, str | None, Any]:
        """Run a plan that opens one run: (its uid, the first line of its error or None,
        the run replayed).  A failed plan still leaves its run in the catalog."""
        from ophyd_pvcam.device import summaries_hidden

        uids: list[str] = []
        token = self.engine.subscribe(lambda name, doc: uids.append(doc["uid"]), "start")
        try:
            with summaries_hidden():  # the check's own row says it, in its table
                self.engine(plan, purpose="ophyd-pvcam check")
            failure = None
        except RunEngineInterrupted:
            raise
        except Exception as error:  # the plan failed: what it says, and replay the rest
            text = str(error)
            failure = f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
        finally:
            self.engine.unsubscribe(token)
        if not uids:
            raise RuntimeError(failure or "the plan opened no run")
        return uids[0], failure, self.replay(uids[0])


def open_scans(bench: Bench, options: CheckOptions) -> Scans:
    """The check's RunEngine and catalog: the one named, or a temporary one."""
    from ophyd_pvcam.catalog import open_catalog
    from ophyd_pvcam.device import make_run_engine

    location = options.catalog
    if location is None:
        if bench.temporary is None:  # a bench that keeps its data has no scratch folder
            raise ValueError("the check keeps its data: name the catalog to record it in")
        location = bench.temporary / "catalog"
    readable = [bench.write_path]
    engine, _ = make_run_engine(open_catalog(location, readable=readable), progress_bar=False)
    return Scans(engine, lambda uid: open_catalog(location, readable=readable)[uid])


def step_scan(cam: Any, bench: Bench, mode: Mode, options: CheckOptions, scans: Scans) -> Check:
    """A step scan, replayed: one fresh exposure of ``frames_per_point`` frames per point."""
    import bluesky.plans as bp
    from ophyd.sim import SynAxis

    o = options
    started = time.monotonic()
    _apply(cam, bench, mode, o.scan_size, 0.01, frames_per_point=o.frames_per_point)
    uid, failure, run = scans.run(bp.scan([cam], SynAxis(name="check_motor"), 0, 1, o.scan_points))
    fpp = o.frames_per_point
    size = min(o.scan_size, *bench.sensor)
    try:
        stream = run["primary"]
        images = stream["cam_image"].read()
        numbers = [int(n) for n in stream["cam_frame_number"].read()]
        dropped = int(stream["cam_dropped_frames"].read()[-1])
    except (KeyError, IndexError):  # not one point was taken
        images, numbers, dropped = np.zeros((0, fpp, size, size), np.uint16), [], 0
    expected_numbers = [fpp * (p + 1) for p in range(o.scan_points)]
    shape = (o.scan_points, fpp, size, size)
    exit_status, problems = _replayed(run, failure, images, shape)
    if numbers != expected_numbers:
        problems.append(f"last frame of each point {numbers}, expected {expected_numbers}")
    if dropped:
        problems.append(f"{dropped} frames lost")
    stamped = _stamped(cam, images.reshape(-1, size, size)) if not problems else None
    if stamped is not None and stamped != list(range(1, o.scan_points * fpp + 1)):
        problems.append(f"pixels carry frame numbers {stamped}")
    return Check(
        "step scan",
        "fail" if problems else "pass",
        f"scan of {o.scan_points} points x {fpp} frames, replayed: images "
        f"{tuple(images.shape)}, last frame of each point "
        f"{', '.join(map(str, numbers)) or 'none'}, {dropped} lost, exit {exit_status}",
        f"images {shape}, a fresh exposure per trigger, 0 lost, exit success",
        "; ".join(problems),
        {"uid": uid, "shape": list(images.shape), "frame_numbers": numbers},
        round(time.monotonic() - started, 2),
    )


def fly_scan(cam: Any, bench: Bench, mode: Mode, options: CheckOptions, scans: Scans) -> Check:
    """A fly scan, replayed: ``fly_frames`` frames numbered 1..n, none lost."""
    import bluesky.plans as bp

    o = options
    started = time.monotonic()
    _apply(cam, bench, mode, o.scan_size, 0.002, num_frames=o.fly_frames)
    uid, failure, run = scans.run(bp.fly([cam]))
    size = min(o.scan_size, *bench.sensor)
    try:
        stream = run["cam"]
        images = stream["cam_image"].read()
        numbers = [int(n) for n in stream["cam_frame_number"].read()]
        lost = int(np.sum(stream["cam_lost_before"].read()))
        if "cam_lost_after" in stream:  # a stream of events (not declared) has it
            lost += int(np.sum(stream["cam_lost_after"].read()))
    except KeyError:  # not one frame was collected
        images, numbers, lost = np.zeros((0, 1, size, size), np.uint16), [], 0
    shape = (o.fly_frames, 1, size, size)
    exit_status, problems = _replayed(run, failure, images, shape)
    if numbers != list(range(1, o.fly_frames + 1)):
        problems.append(f"frame numbers are not 1..{o.fly_frames}")
    if lost:
        problems.append(f"{lost} frames lost")
    stamped = _stamped(cam, images.reshape(-1, size, size)) if not problems else None
    if stamped is not None and stamped != numbers:
        problems.append("the pixels carry other frame numbers than the events")
    return Check(
        "fly scan",
        "fail" if problems else "pass",
        f"fly scan of {o.fly_frames} frames, replayed: images {tuple(images.shape)}, "
        f"frame numbers {numbers[0] if numbers else '?'}..{numbers[-1] if numbers else '?'}"
        f", {lost} lost, exit {exit_status}",
        f"images {shape}, frame numbers 1..{o.fly_frames}, 0 lost, exit success",
        "; ".join(problems),
        {"uid": uid, "shape": list(images.shape)},
        round(time.monotonic() - started, 2),
    )


def _stamped(cam: Any, frames: np.ndarray) -> list[int] | None:
    """The frame numbers the simulator stamps into pixels (None on a real camera)."""
    if not cam.capabilities.simulated:
        return None
    return [int(sim.frame_number(frame)) for frame in frames]


def temperature(cam: Any, options: CheckOptions) -> Check:
    """The sensor at its setpoint, or where it got to after a wait: a note, not a
    failure, while it still approaches."""
    o = options
    started = time.monotonic()
    _wait_idle(cam)
    setpoint = float(cam.temperature_setpoint.get())
    trace = [(0.0, float(cam.temperature.get()))]
    pause = threading.Event()  # never set: paces the readings
    while (
        not math.isnan(trace[-1][1])
        and abs(trace[-1][1] - setpoint) > o.temperature_tolerance
        and time.monotonic() - started < o.temperature_wait
    ):
        pause.wait(min(2.0, max(0.0, o.temperature_wait - (time.monotonic() - started))))
        trace.append((round(time.monotonic() - started, 1), float(cam.temperature.get())))
    elapsed, reached = trace[-1]
    values = {"setpoint": setpoint, "tolerance": o.temperature_tolerance, "trace": trace}
    expected = f"{setpoint:g} +/- {o.temperature_tolerance:g} degC"
    seconds = round(time.monotonic() - started, 2)
    if math.isnan(reached):
        return Check(
            "temperature",
            "fail",
            "no reading",
            expected,
            "the camera reports no temperature",
            values,
            seconds,
        )
    if abs(reached - setpoint) <= o.temperature_tolerance:
        waited = f", after waiting {elapsed:.0f} s" if elapsed else ""
        measured = f"{reached:.2f} degC (setpoint {setpoint:g} degC{waited})"
        return Check("temperature", "pass", measured, expected, "", values, seconds)
    if elapsed == 0:
        detail = (
            f"{reached:.2f} degC, setpoint {setpoint:g} degC: not waited for "
            "(--temperature-wait 0); reported, not failed"
        )
        return Check(
            "temperature", "warn", f"{reached:.2f} degC", expected, detail, values, seconds
        )
    rate = (trace[-1][1] - trace[0][1]) / elapsed * 60
    approaching = (trace[0][1] - setpoint) * (trace[-1][1] - setpoint) >= 0 and abs(
        trace[-1][1] - setpoint
    ) < abs(trace[0][1] - setpoint)
    detail = (
        f"not at the setpoint after {elapsed:.0f} s: {reached:.2f} degC "
        f"(setpoint {setpoint:g} degC), changing {rate:+.1f} degC/min"
    )
    if approaching:
        detail += "; still approaching: reported, not failed (--temperature-wait waits longer)"
        status = "warn"
    else:
        detail += ": not approaching its setpoint (check the fan, coolant and power)"
        status = "fail"
    return Check("temperature", status, f"{reached:.2f} degC", expected, detail, values, seconds)


def _replayed(
    run: Any, failure: str | None, images: np.ndarray, shape: tuple[int, ...]
) -> tuple[str, list[str]]:
    """A replayed scan's exit status, and what is wrong with it whatever the scan: the
    plan's failure, another exit status than success, images of another shape."""
    stop = run.metadata["stop"]
    exit_status = stop["exit_status"]
    problems = [failure] if failure else []
    if exit_status != "success" and not failure:
        reason = ((stop.get("reason") or "").splitlines() or [""])[0]
        problems.append(f"exit status {exit_status}: {reason}")
    if tuple(images.shape) != shape:
        problems.append(f"images {tuple(images.shape)}, expected {shape}")
    return exit_status, problems


def _wait_idle(cam: Any, timeout: float = IDLE_TIMEOUT_S) -> None:
    """Until the device has stopped acquiring (a failed status can come first)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while cam.acquiring and time.monotonic() < deadline:
        pause.wait(0.01)
    if cam.acquiring:
        cam.stop()
        raise TimeoutError(f"{cam.name} was still acquiring {timeout:g} s after a scan")
