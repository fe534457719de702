"""Turning what is known at the moment frames stopped into a message a scientist can act on."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ophyd_pvcam.hardware import Capabilities

from ._readout import ReadoutModel
from ._settings import Settings

if TYPE_CHECKING:
    from ._session import Session


@dataclass(frozen=True)
class StallSnapshot:
    camera: str  # device name
    camera_id: str  # "pvcamSim_0 (Prime BSI, serial ...)"
    activity: str  # "fly scan" or "trigger (step scan point)"
    silent_for_s: float
    timeout_s: float
    received: int
    expected: int | None  # None: until stopped
    last_number: int
    last_frame_time: float | None  # wall clock
    expected_period_s: float
    camera_status: str
    settings: str  # one line: exposure, ROI, binning, readout, trigger mode
    buffer_frames: int
    lost: int
    data_file: str | None
    frames_in_file: int
    hardware_triggered: bool
    trigger_mode: str = ""
    period_source: str = ""  # how expected_period_s is known


def describe_stall(s: StallSnapshot) -> str:
    expected = f"of {s.expected}" if s.expected else "(running until stopped)"
    if s.last_frame_time is None:
        last = "no frame arrived at all"
    else:
        when = datetime.datetime.fromtimestamp(s.last_frame_time).strftime("%H:%M:%S.%f")[:-3]
        last = f"last frame number {s.last_number} at {when}"
    if s.hardware_triggered:
        # the camera waits for its trigger input: its own pace means nothing here
        headline = (
            f"{s.camera}: no trigger arrived in {s.silent_for_s:.2f} s during a {s.activity} "
            f"({s.trigger_mode}; stall timeout {s.timeout_s:.2f} s), or the camera ignored "
            f"it; {s.received} frames received {expected}, {last}."
        )
    else:
        headline = (
            f"{s.camera}: frames stopped during a {s.activity}: no frame for "
            f"{s.silent_for_s:.2f} s (stall timeout {s.timeout_s:.2f} s); {s.received} frames "
            f"received {expected}, {last}, expected one every "
            f"{s.expected_period_s * 1e3:.1f} ms"
            + (f" ({s.period_source})." if s.period_source else ".")
        )
    lines = [
        headline,
        f"Camera {s.camera_id} reported status {s.camera_status}"
        + (
            " - it still claims to be acquiring while delivering nothing."
            if s.camera_status in {"EXPOSURE_IN_PROGRESS", "READOUT_IN_PROGRESS", "FRAME_AVAILABLE"}
            else "."
        ),
        f"Settings: {s.settings}; circular buffer {s.buffer_frames} frames; "
        f"{s.lost} frames lost before the stall.",
    ]
    if s.data_file:
        lines.append(
            f"Data: {s.frames_in_file} frames up to the stall are saved in {s.data_file} "
            "(closed, readable, as the camera stops) and referenced by the run."
        )
    hints = ["The camera has been stopped; the next acquisition starts it afresh."]
    if s.hardware_triggered:
        hints.insert(
            0,
            "The camera waits for external triggers: check the trigger source and "
            "cabling, or raise stall_timeout above the trigger interval.",
        )
    elif s.buffer_frames and s.last_number and s.last_number % s.buffer_frames == 0:
        hints.insert(
            0,
            f"Frames stopped at a multiple of the buffer size ({s.buffer_frames}): "
            "suspect buffer slots that are never released (CIRC_NO_OVERWRITE "
            "without pl_exp_unlock_oldest_frame).",
        )
    else:
        hints.insert(
            0,
            "Check the camera's cable, power and temperature; run "
            "'ophyd-pvcam probe' to see whether the stall follows the buffer size, "
            "exposure or readout settings.",
        )
    lines.append(" ".join(hints))
    return "\n".join(lines)


def expected_period(session: Session, readout: ReadoutModel) -> tuple[float, str]:
    """How often a frame was due, and how that is known: the pace frames came at in a
    fly scan (median of its last intervals), else the readout model, else the exposure
    alone (before any acquisition at this readout speed)."""
    times = session.ledger.times
    if session.kind == "fly" and len(times) >= 3:
        recent = np.diff(np.asarray(times[-33:]))
        return float(np.median(recent)), "measured"
    setup = session.ctx.setup
    if readout.knows(setup):
        return readout.period_s(setup), "exposure and readout"
    return setup.exposure_us * 1e-6, "the exposure; readout not known yet"


def snapshot_of(
    session: Session,
    s: Settings,
    caps: Capabilities,
    readout: ReadoutModel,
    *,
    silent_for_s: float,
    timeout_s: float,
    hardware_triggered: bool,
) -> StallSnapshot:
    """What is known of ``session`` at the moment its frames stopped (no camera call:
    the camera is still streaming, or says nothing)."""
    ledger = session.ledger
    x, y, width, height = s.roi
    flying = session.kind == "fly"
    period, source = expected_period(session, readout)
    speed = caps.port(s.readout_port).speeds[s.speed_index]
    gain = next(g for g in speed.gains if g.index == s.gain_index)
    return StallSnapshot(
        camera=session.name,
        camera_id=f"{caps.name} ({caps.model}, serial {caps.serial_number})",
        activity="fly scan" if flying else "trigger (step-scan point)",
        silent_for_s=silent_for_s,
        timeout_s=timeout_s,
        received=ledger.received if flying else (ledger.request.filled if ledger.request else 0),
        expected=(s.num_frames or None) if flying else s.frames_per_point,
        last_number=ledger.last_number,
        last_frame_time=ledger.times[-1] if len(ledger.times) else None,
        expected_period_s=period,
        period_source=source,
        camera_status=session.stream.camera_status if session.stream else "not started",
        settings=(
            f"exposure {s.exposure_time * 1e3:g} ms, ROI {width}x{height} at ({x}, {y}), "
            f"binning {s.binning}x{s.binning}, port {s.readout_port}, speed {s.speed_index} "
            f"({speed.name}), gain {s.gain_index} ({gain.name}, {gain.bit_depth}-bit), "
            f"trigger mode {s.trigger_mode}"
        ),
        buffer_frames=session.ctx.buffer_frames,
        lost=ledger.lost.total,
        data_file=str(session.path),
        frames_in_file=session.rows_on_disk,
        hardware_triggered=hardware_triggered,
        trigger_mode=s.trigger_mode,
    )
