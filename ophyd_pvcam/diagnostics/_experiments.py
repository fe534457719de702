"""The stall doctor's experiments: streams driven directly through the SDK, each
counting its EOF callbacks until its target or a stall.

Each experiment has two arms that differ only in the suspected cause (pyvcam would
not do the faulty things, so the SDK is called directly), so that the outcome
differs between "cause present" and "cause absent".  Only the arm that tests
``param-polling`` makes a parameter call while frames stream.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypedDict, Unpack

import numpy as np

from ophyd_pvcam.hardware.sdk import (
    CIRC_OVERWRITE,
    PARAM_READOUT_TIME,
    PARAM_TEMP,
    PL_CALLBACK_EOF,
    FrameLog,
    PvcamError,
    Region,
    Sdk,
    quietly,
)

READ_EVERY = 5  # frames between parameter reads in the param-polling arm
READ_FROM = 10  # the first read, after this many frames

# the buffer strategies the probe compares (names as its table prints them)
OVERWRITE = "OVERWRITE + get latest"
UNLOCK = "NO_OVERWRITE + get oldest + unlock"
NO_UNLOCK = "NO_OVERWRITE + get latest, no unlock"


class Cause(TypedDict, total=False):
    """What the tested arm of a pair does that the control does not (:func:`stream`)."""

    register_twice: bool
    read_every: int
    read_from: int


@dataclass
class Run:
    """One stream of an experiment, driven through the SDK."""

    experiment: str
    arm: str
    width: int
    height: int
    buffer_frames: int
    target: int
    frame_bytes: int = 0
    delivered: int = 0  # distinct frames whose EOF callback came (up to the target)
    last_frame: int = 0  # the highest frame number seen
    lost: int = 0  # gaps in the frame numbers seen
    stalled: bool = False  # no frame for the stall timeout before the target
    status: str = ""  # the camera's status when the stream ended
    latest_in_buffer: int | None = None  # newest frame in the buffer after a stall
    reads: int = 0  # parameter reads made while frames streamed
    seconds: float = 0.0
    error: str | None = None  # an SDK call failed

    @property
    def outcome(self) -> str:
        return "failed" if self.error else "stalled" if self.stalled else "complete"

    @property
    def stop_bytes(self) -> int:
        return self.last_frame * self.frame_bytes

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome, "stop_bytes": self.stop_bytes}


# ---- one stream ---------------------------------------------------------------------------


def stream(
    sdk: Sdk,
    handle: int,
    region: Region,
    *,
    experiment: str,
    arm: str,
    buffer_frames: int,
    frames: int,
    exposure_us: int,
    stall_timeout: float,
    register_twice: bool = False,
    read_every: int = 0,
    read_from: int = 0,
) -> Run:
    """Stream ``frames`` frames in CIRC_OVERWRITE, counting EOF callbacks, until the
    target or a stall (no frame for the stall timeout, at least five frame periods).

    ``register_twice``: register the EOF callback a second time before the start,
    without deregistering.  ``read_every``: read the temperature every that many
    frames from frame ``read_from`` on, while frames stream."""
    rows, columns = region.shape
    run = Run(experiment, arm, columns, rows, buffer_frames, frames)
    records = FrameLog()
    registered = False
    started_at = time.monotonic()
    try:
        run.frame_bytes = sdk.setup_cont(handle, region, exposure_us, CIRC_OVERWRITE)
        timeout = max(stall_timeout, 5 * _frame_period(sdk, handle, exposure_us))
        buffer = np.empty(run.frame_bytes * buffer_frames // 2, dtype=np.uint16)
        sdk.on_frame(handle, PL_CALLBACK_EOF, records)
        registered = True
        if register_twice:
            sdk.on_frame(handle, PL_CALLBACK_EOF, records)
        sdk.start_cont(handle, buffer)
        try:
            seen, next_read = 0, read_from
            while seen < frames:
                if not records.wait_beyond(seen, timeout):
                    run.stalled = True
                    break
                seen = records.count
                if read_every and seen >= next_read:
                    sdk.read(handle, PARAM_TEMP)  # the suspected cause
                    run.reads += 1
                    next_read = seen + read_every
            run.status = sdk.status(handle)[0]  # a streaming call, not a parameter
            if run.stalled:
                run.latest_in_buffer = sdk.latest_frame(handle, region.shape).number
        except PvcamError as error:
            run.error = str(error)
        finally:
            quietly(sdk.abort, handle)  # before ``buffer`` can go: the camera writes into it
    except PvcamError as error:
        run.error = str(error)
    finally:
        if registered:
            quietly(sdk.clear_callback, handle, PL_CALLBACK_EOF)
    run.delivered = min(records.count, frames)
    run.last_frame = records.last_number
    run.lost = records.lost
    run.seconds = round(time.monotonic() - started_at, 3)
    return run


def _frame_period(sdk: Sdk, handle: int, exposure_us: int) -> float:
    """Seconds per frame after a setup: the exposure or the readout, whichever is longer."""
    try:
        readout_us = float(sdk.read(handle, PARAM_READOUT_TIME))
    except PvcamError:
        readout_us = 0.0
    return max(exposure_us, readout_us) * 1e-6


# ---- the experiments -----------------------------------------------------------------------


def limit_runs(
    sdk: Sdk,
    handle: int,
    sensor: tuple[int, int],
    buffers: Sequence[int],
    exposure_us: int,
    min_frames: int,
    byte_budget: int,
    stall_timeout: float,
    progress: Callable[[Run], None] | None = None,
) -> list[Run]:
    """Full and quarter-height frames, each with the smallest and largest buffer, each
    streamed past ``min_frames`` frames and ``byte_budget`` bytes."""
    width, height = sensor
    runs = []
    for rows in (height, max(1, height // 4)):
        region = Region.of(0, (height - rows) // 2, width, rows)
        target = max(min_frames, math.ceil(byte_budget / (width * rows * 2)))
        for buffer in limit_buffers(buffers):
            run = stream(
                sdk,
                handle,
                region,
                experiment="limits",
                arm=f"{width}x{rows}, buffer {buffer}",
                buffer_frames=buffer,
                frames=target,
                exposure_us=exposure_us,
                stall_timeout=stall_timeout,
            )
            runs.append(run)
            if progress:
                progress(run)
    return runs


def limit_buffers(buffers: Sequence[int]) -> list[int]:
    """Two buffer sizes: the smallest and largest asked for (or one and its double)."""
    low, high = min(buffers), max(buffers)
    return [low, high] if high > low else [low, 2 * low]


def control_pair(
    sdk: Sdk,
    handle: int,
    region: Region,
    experiment: str,
    *,
    buffer_frames: int,
    frames: int,
    exposure_us: int,
    stall_timeout: float,
    **cause: Unpack[Cause],
) -> tuple[Run, Run]:
    """The same stream twice: without the cause (first), then with it."""
    one_arm = functools.partial(
        stream,
        sdk,
        handle,
        region,
        experiment=experiment,
        buffer_frames=buffer_frames,
        frames=frames,
        exposure_us=exposure_us,
        stall_timeout=stall_timeout,
    )
    control = one_arm(arm="without")
    tested = one_arm(arm="with", **cause)
    return control, tested


def param_polling_runs(sdk: Sdk, handle: int, region: Region, **common: Any) -> tuple[Run, Run]:
    """``param-polling``: without, then with a temperature read every few frames."""
    return control_pair(
        sdk, handle, region, "param-polling", read_every=READ_EVERY, read_from=READ_FROM, **common
    )


def callback_runs(sdk: Sdk, handle: int, region: Region, **common: Any) -> tuple[Run, Run]:
    """``callback-reregistration``: the EOF callback registered once, then twice."""
    return control_pair(
        sdk, handle, region, "callback-reregistration", register_twice=True, **common
    )
