"""The first-day check's checks through the SDK (no pyvcam, no disk): the full-frame rate
of every readout mode, and software triggers.

Driven directly through the SDK so that what is measured is the camera and its
driver, not this package: the rate with the camera's own frame timestamps against the
readout time the camera reports for that mode, and each triggered frame's arrival
against the shortest time an exposure and a readout take.  Each gives back one row of
the report (``_check_report``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ophyd_pvcam.hardware.sdk import (
    CIRC_OVERWRITE,
    PARAM_BIT_DEPTH,
    PARAM_GAIN_INDEX,
    PARAM_READOUT_PORT,
    PARAM_READOUT_TIME,
    PARAM_SPDTAB_INDEX,
    PL_CALLBACK_EOF,
    FrameLog,
    FrameRecord,
    Region,
    Sdk,
    quietly,
)

from ._bench import Bench
from ._check_report import Check, CheckOptions, Mode

SOFTWARE_EDGE = "Software Trigger Edge"


def select_mode(sdk: Sdk, handle: int, mode: Mode) -> None:
    """Set the camera's readout port, speed and gain to ``mode``."""
    sdk.write(handle, PARAM_READOUT_PORT, mode.port_value)
    sdk.write(handle, PARAM_SPDTAB_INDEX, mode.speed)
    sdk.write(handle, PARAM_GAIN_INDEX, mode.gain)


def full_frame_rate(bench: Bench, handle: int, mode: Mode, options: CheckOptions) -> Check:
    """Full frames per second in ``mode`` by the camera's clock, against 1 / readout time."""
    sdk, o = bench.sdk, options
    started = time.monotonic()
    select_mode(sdk, handle, mode)
    width, height = bench.sensor
    exposure_us = 1000  # shorter than any full-frame readout: the readout sets the rate
    frame_bytes = sdk.setup_cont(
        handle, Region.of(0, 0, width, height), exposure_us, CIRC_OVERWRITE
    )
    readout_us = float(sdk.read(handle, PARAM_READOUT_TIME))
    bit_depth = int(sdk.read(handle, PARAM_BIT_DEPTH))
    period = max(exposure_us, readout_us) * 1e-6
    expected = 1 / period
    wanted = int(min(400, max(20, round(expected * o.rate_seconds)))) + 1
    records, stalled, status = stream_frames(sdk, handle, frame_bytes, 8, wanted, period)
    label = f"full-frame rate {mode.label}"
    expected_text = f"{expected:.1f} fps (readout {readout_us / 1e3:.2f} ms)"
    values: dict[str, Any] = {
        "expected_fps": expected,
        "readout_ms": readout_us / 1e3,
        "frames": len(records),
        "bit_depth": bit_depth,
        "mode": mode.label,
    }
    seconds = round(time.monotonic() - started, 2)
    if len(records) < 3:
        return Check(
            label,
            "fail",
            f"{len(records)} frames",
            expected_text,
            f"frames stopped after {len(records)} (camera status {status})",
            values,
            seconds,
        )
    camera_fps, host_fps = frame_rates(records[1:])  # the first frame includes the start
    values.update(camera_fps=camera_fps, host_fps=host_fps)
    close = abs(camera_fps / expected - 1) <= o.rate_tolerance
    problems = []
    if stalled:
        problems.append(f"frames stopped after {len(records)} of {wanted} (status {status})")
    if not close:
        problems.append(
            f"{camera_fps:.1f} fps is {100 * (camera_fps / expected - 1):+.1f} % from the "
            f"{expected:.1f} fps its readout time allows"
        )
    if bit_depth != mode.bit_depth:
        problems.append(f"bit depth {bit_depth}, the camera's table says {mode.bit_depth}")
    return Check(
        label,
        "fail" if problems else "pass",
        f"{camera_fps:.1f} fps (camera clock), {bit_depth}-bit",
        expected_text,
        "; ".join(problems),
        values,
        seconds,
    )


def stream_frames(
    sdk: Sdk, handle: int, frame_bytes: int, buffer_frames: int, wanted: int, period: float
) -> tuple[list[FrameRecord], bool, str]:
    """Stream until ``wanted`` frames or a stall: (records by frame number, stalled,
    the camera's status at the end)."""
    frames = FrameLog()
    buffer = np.empty(frame_bytes * buffer_frames // 2, dtype=np.uint16)
    sdk.on_frame(handle, PL_CALLBACK_EOF, frames)
    stalled = False
    try:
        sdk.start_cont(handle, buffer)
        timeout = max(1.0, 5 * period)
        while frames.count < wanted:
            if not frames.wait_beyond(frames.count, timeout):
                stalled = True
                break
        status = sdk.status(handle)[0]
    finally:
        quietly(sdk.abort, handle)
        quietly(sdk.clear_callback, handle, PL_CALLBACK_EOF)
    return sorted(frames.records, key=lambda r: r.number), stalled, status


def frame_rates(records: list[FrameRecord]) -> tuple[float, float]:
    """(camera-clock fps, arrival fps) over frame records in order of frame number."""
    first, last = records[0], records[-1]
    arrival = (len(records) - 1) / max(1e-9, last.arrived - first.arrived)
    if last.eof > first.eof:
        return (last.number - first.number) / (last.eof - first.eof), arrival
    return arrival, arrival  # the camera gives no timestamps: the host's clock will do


def software_triggers(
    bench: Bench, caps: Any, handle: int, mode: Mode, options: CheckOptions
) -> Check:
    """One frame per software trigger, none without one, and none sooner after its
    trigger than an exposure and a readout take (its exposure began before it)."""
    sdk, o = bench.sdk, options
    name = "software triggers"
    started = time.monotonic()
    if SOFTWARE_EDGE not in caps.trigger_modes:
        return Check(
            name,
            "warn",
            "no software trigger mode",
            SOFTWARE_EDGE,
            "the camera lists no 'Software Trigger Edge': step scans take one "
            "sequence per point instead",
        )
    select_mode(sdk, handle, mode)
    expose_out = next(iter(caps.expose_out_modes.values()), 0)
    exp_mode = caps.trigger_modes[SOFTWARE_EDGE] | expose_out
    size = min(256, *bench.sensor)
    width, height = bench.sensor
    region = Region.of((width - size) // 2, (height - size) // 2, size, size)
    exposure_us = max(1, round(o.trigger_exposure * 1e6))
    frame_bytes = sdk.setup_cont(handle, region, exposure_us, CIRC_OVERWRITE, exp_mode)
    readout_s = float(sdk.read(handle, PARAM_READOUT_TIME)) * 1e-6
    minimum = exposure_us * 1e-6 + readout_s  # trigger -> end of frame, at least
    gap = max(0.02, 2 * minimum)
    frames = FrameLog()
    buffer = np.empty(frame_bytes * 16 // 2, dtype=np.uint16)
    sdk.on_frame(handle, PL_CALLBACK_EOF, frames)
    latencies: list[float] = []
    untriggered, ignored, missing = 0, 0, 0
    try:
        sdk.start_cont(handle, buffer)
        for _ in range(o.triggers):
            before = frames.count
            if frames.wait_beyond(before, gap):  # nothing may come untriggered
                untriggered += frames.count - before
                before = frames.count
            sent = time.monotonic()
            if not sdk.trigger(handle):
                ignored += 1
                continue
            if not frames.wait_beyond(before, max(1.0, 10 * minimum)):
                missing += 1
                continue
            latencies.append(frames.records[before].arrived - sent)
    finally:
        quietly(sdk.abort, handle)
        quietly(sdk.clear_callback, handle, PL_CALLBACK_EOF)
    slack = 0.5e-3  # timestamp and scheduling granularity
    early = [t for t in latencies if t < minimum - slack]
    values = {
        "latencies_ms": [round(t * 1e3, 3) for t in latencies],
        "minimum_ms": round(minimum * 1e3, 3),
        "exposure_ms": exposure_us / 1e3,
        "readout_ms": round(readout_s * 1e3, 3),
    }
    problems = []
    if missing or ignored:
        problems.append(f"{missing} triggers got no frame, {ignored} were ignored")
    if untriggered:
        problems.append(f"{untriggered} frames came without a trigger")
    if early:
        problems.append(
            f"{len(early)} frames ended {min(early) * 1e3:.2f} ms after their trigger, "
            f"sooner than exposure + readout ({minimum * 1e3:.2f} ms): their exposure began "
            "before the trigger"
        )
    spread = f"{min(latencies) * 1e3:.1f}-{max(latencies) * 1e3:.1f} ms" if latencies else "none"
    return Check(
        name,
        "fail" if problems else "pass",
        f"{len(latencies)} of {o.triggers} triggers answered, trigger to end of frame {spread}",
        f"one frame per trigger, none untriggered, each >= {minimum * 1e3:.1f} ms "
        f"(exposure {exposure_us / 1e3:g} ms + readout {readout_s * 1e3:.2f} ms)",
        "; ".join(problems),
        values,
        round(time.monotonic() - started, 2),
    )
