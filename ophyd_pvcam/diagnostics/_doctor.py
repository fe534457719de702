"""The stall doctor: why does a PVCAM stream stop?  One controlled experiment per cause
reported from the field, and a verdict.

Other teams saw real Prime BSI streams stop and suspected, never confirming one,
several separate causes (DESIGN.md, "Why real PVCAM streams stop").  Each gets an
experiment on the attached camera, driven directly through the SDK (pyvcam would
not do the faulty things), with two arms that differ only in the suspected cause,
so that the outcome differs between "cause present" and "cause absent":

- ``no-unlock``: CIRC_NO_OVERWRITE, the latest frame taken and never unlocked,
  against the oldest frame taken and unlocked, at several buffer sizes
  (``run_strategy`` in the probe).  This is how PVCAM is documented to
  behave, so it is reproduced on every camera: a property of the buffer mode;
- ``param-polling``: one stream with a temperature read every few frames (as a
  background monitor does), one without;
- ``callback-reregistration``: the EOF callback registered twice without
  deregistering, against once;
- ``byte-limit`` and ``frame-limit``: streams of full and quarter-height frames,
  each with a small and a large buffer, long enough to pass both reported limits
  (~85 frames, ~744-780 MB).  A fixed frame count stops all four at the same frame;
  a fixed byte count stops the quarter-height frames four times later.

Every stream counts EOF callbacks (distinct frame numbers), and ends when it
reaches its target or when no frame came for the stall timeout; only the arm that
tests ``param-polling`` makes a parameter call while frames stream.
"""

from __future__ import annotations

import logging
import math
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

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

log = logging.getLogger(__name__)

HYPOTHESES = ("no-unlock", "param-polling", "callback-reregistration", "byte-limit", "frame-limit")
CLAIMS = {
    "no-unlock": "CIRC_NO_OVERWRITE without pl_exp_unlock_oldest_frame halts at the buffer size",
    "param-polling": "a parameter read while frames stream stops them",
    "callback-reregistration": "an EOF callback registered twice without deregistering "
    "stops the callbacks",
    "byte-limit": "frames stop after a fixed number of bytes: the stop moves with the frame size",
    "frame-limit": "frames stop at the same frame whatever the buffer and frame size",
}
REMEDIES = {
    "no-unlock": "In CIRC_NO_OVERWRITE, release every frame with pl_exp_unlock_oldest_frame as "
    "soon as it is copied; or stream in CIRC_OVERWRITE, take pl_exp_get_latest_frame_ex in the "
    "EOF callback and count gaps in FrameNr as lost frames (as pyvcam, Micro-Manager and "
    "ophyd-pvcam do).",
    "param-polling": "Make no parameter call while frames stream (temperature, readout time, "
    "any pl_get_param or pl_set_param): read before the start and after the stop and show the "
    "cached values meanwhile, as ADKinetix, Micro-Manager and ophyd-pvcam do.",
    "callback-reregistration": "Register the EOF callback once per acquisition and deregister it "
    "(pl_cam_deregister_callback) when the acquisition ends, also after a start that failed; "
    "with pyvcam, call finish() after a start_live that raised.",
    "byte-limit": "Restart the acquisition before that many bytes (sequences, or a planned "
    "restart), or stream smaller frames (ROI, binning); report the limit, the PVCAM version and "
    "the interface to Teledyne Photometrics.",
    "frame-limit": "No buffer strategy helps: restart acquisitions before that frame as a "
    "workaround; check the PVCAM version, the firmware and the link (cable, USB/PCIe card) and "
    "report it to Teledyne Photometrics with this output.",
}
READ_EVERY = 5  # frames between parameter reads in the param-polling arm
READ_FROM = 10  # the first read, after this many frames
MIB = 1 << 20

# the buffer strategies the probe compares (names as its table prints them)
OVERWRITE = "OVERWRITE + get latest"
UNLOCK = "NO_OVERWRITE + get oldest + unlock"
NO_UNLOCK = "NO_OVERWRITE + get latest, no unlock"


@dataclass
class Hypothesis:
    """One hypothesis, its experiment's outcome and what was measured."""

    hypothesis: str
    reproduced: bool | None  # None: not tested
    evidence: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    **cause: Any,
) -> tuple[Run, Run]:
    """The same stream twice: without the cause (first), then with it."""
    common = dict(
        experiment=experiment,
        buffer_frames=buffer_frames,
        frames=frames,
        exposure_us=exposure_us,
        stall_timeout=stall_timeout,
    )
    control = stream(sdk, handle, region, arm="without", **common)
    tested = stream(sdk, handle, region, arm="with", **common, **cause)
    return control, tested


def param_polling_runs(sdk, handle, region, **common) -> tuple[Run, Run]:
    return control_pair(
        sdk, handle, region, "param-polling", read_every=READ_EVERY, read_from=READ_FROM, **common
    )


def callback_runs(sdk, handle, region, **common) -> tuple[Run, Run]:
    return control_pair(
        sdk, handle, region, "callback-reregistration", register_twice=True, **common
    )


# ---- judging ---------------------------------------------------------------------------------


def _mib(value: float) -> str:
    mib = value / MIB
    if mib >= 1024:
        return f"{mib / 1024:.2f} GiB"
    return f"{mib:.0f} MiB" if mib >= 10 else f"{mib:.1f} MiB"


def judge_limits(runs: Sequence[Run]) -> tuple[Hypothesis, Hypothesis]:
    """(frame-limit, byte-limit) from the streams of :func:`limit_runs`."""
    usable = [r for r in runs if r.error is None]
    if not usable:
        why = runs[0].error if runs else "no stream was run"
        return (
            Hypothesis("frame-limit", None, f"not tested: {why}"),
            Hypothesis("byte-limit", None, f"not tested: {why}"),
        )
    sizes = sorted({(r.width, r.height) for r in usable}, key=lambda s: -s[0] * s[1])
    buffers = sorted({r.buffer_frames for r in usable})
    stopped = [r for r in usable if r.stalled]
    tested = (
        f"{_and([f'{w}x{h} ({_mib(w * h * 2)})' for w, h in sizes])} frames, buffers of "
        f"{_and(buffers)} frames"
    )
    stops = _stops_by_size(usable, sizes)
    if not stopped:
        evidence = f"no stream stopped: {stops}"
        return Hypothesis("frame-limit", False, evidence), Hypothesis("byte-limit", False, evidence)
    if all(r.last_frame == 0 for r in stopped):
        evidence = f"no frame arrived at all in {len(stopped)} of {len(usable)} streams ({tested})"
        return Hypothesis("frame-limit", False, evidence), Hypothesis("byte-limit", False, evidence)
    every_size = {(r.width, r.height) for r in stopped} == set(sizes) and len(sizes) > 1
    frames_fit = _one_frame_count(usable)
    bytes_fit = _one_byte_count(usable)
    if every_size and frames_fit:
        frame = int(np.median([r.last_frame for r in stopped]))
        ratio = max(r.stop_bytes for r in stopped) / max(1, min(r.stop_bytes for r in stopped))
        return (
            Hypothesis(
                "frame-limit",
                True,
                f"frames stopped at frame {frame} in all {len(stopped)} streams ({tested}): "
                "the stop moved neither with the buffer nor with the frame size",
            ),
            Hypothesis(
                "byte-limit",
                False,
                f"the bytes at the stop differed {ratio:.1f}-fold ({stops}): a frame count, "
                "not a byte count",
            ),
        )
    if every_size and bytes_fit:
        low, high = _byte_window(usable)
        return (
            Hypothesis("frame-limit", False, f"the stop moved with the frame size ({stops})"),
            Hypothesis(
                "byte-limit",
                True,
                f"{stops}: the stop moved with the frame size, the bytes did not (one limit "
                f"between {low / 1e6:.1f} and {high / 1e6:.1f} MB explains every stream), "
                "whatever the buffer",
            ),
        )
    if not every_size and (bytes_fit or frames_fit):
        fits = "a byte limit" if not frames_fit else "a frame limit" if not bytes_fit else "either"
        evidence = (
            f"{stops}: frames did not stop at every frame size, so the two limits cannot be "
            f"told apart ({fits} would fit; longer streams, --limit-frames and --limit-bytes, "
            "would tell)"
        )
        return Hypothesis("frame-limit", False, evidence), Hypothesis("byte-limit", False, evidence)
    evidence = (
        f"frames stopped in {len(stopped)} of {len(usable)} streams ({stops}): neither one "
        "frame count nor one byte count explains where"
    )
    return Hypothesis("frame-limit", False, evidence), Hypothesis("byte-limit", False, evidence)


def _stops_by_size(runs: Sequence[Run], sizes: Sequence[tuple[int, int]]) -> str:
    """Where each frame size stopped, buffers together when they agree."""
    parts = []
    for width, height in sizes:
        here = sorted(
            (r for r in runs if (r.width, r.height) == (width, height)),
            key=lambda r: r.buffer_frames,
        )
        buffers = " and ".join(str(r.buffer_frames) for r in here)
        outcomes = {(r.stalled, r.last_frame if r.stalled else r.target) for r in here}
        head = f"{width}x{height} frames ({_mib(here[0].frame_bytes)} each)"
        if len(outcomes) == 1:
            run = here[0]
            what = (
                f"stopped after frame {run.last_frame} ({_mib(run.stop_bytes)})"
                if run.stalled
                else f"streamed all {run.target} ({_mib(run.target * run.frame_bytes)})"
            )
            parts.append(f"{head} {what} with buffers of {buffers}")
        else:
            each = ", ".join(
                f"buffer {r.buffer_frames}: "
                + (f"stopped after frame {r.last_frame}" if r.stalled else f"all {r.target}")
                for r in here
            )
            parts.append(f"{head}: {each}")
    return "; ".join(parts)


def _byte_window(runs: Sequence[Run]) -> tuple[float, float]:
    """The byte limits consistent with every stream (stops, and streams that went on)."""
    low, high = 0.0, math.inf
    for run in runs:
        if run.stalled:
            low = max(low, run.last_frame * run.frame_bytes)
            high = min(high, (run.last_frame + 1) * run.frame_bytes)
        else:
            low = max(low, run.last_frame * run.frame_bytes)
    return low, high


def _tolerance(frames: int) -> int:
    """Frames of slack for a real camera's jitter (the simulator is exact)."""
    return max(1, round(0.01 * frames))


def _one_frame_count(runs: Sequence[Run]) -> bool:
    """Could one frame limit explain every stream (stopped, or not stopped by then)?"""
    low, high = 0.0, math.inf
    for run in runs:
        if run.stalled:
            slack = _tolerance(run.last_frame)
            low, high = max(low, run.last_frame - slack), min(high, run.last_frame + slack)
        else:
            low = max(low, run.last_frame + 1)
    return low <= high


def _one_byte_count(runs: Sequence[Run]) -> bool:
    """Could one byte limit explain every stream?  A stop after frame n of b bytes puts
    it between n*b and (n+1)*b."""
    low, high = 0.0, math.inf
    for run in runs:
        if run.stalled:
            slack = _tolerance(run.last_frame)
            low = max(low, (run.last_frame - slack) * run.frame_bytes)
            high = min(high, (run.last_frame + 1 + slack) * run.frame_bytes)
        else:
            low = max(low, run.last_frame * run.frame_bytes)
    return low < high


def judge_no_unlock(rows: Sequence[Any]) -> Hypothesis:
    """From the buffer-strategy rows (:class:`ophyd_pvcam.diagnostics.SdkResult`)."""

    without = {r.buffer_frames: r for r in rows if r.strategy == NO_UNLOCK}
    with_unlock = {r.buffer_frames: r for r in rows if r.strategy == UNLOCK}
    buffers = sorted(set(without) & set(with_unlock))
    if not buffers:
        return Hypothesis("no-unlock", None, "not tested")
    conclusive = [b for b in buffers if with_unlock[b].delivered > b]
    halted = [b for b in conclusive if without[b].stalled and b - 1 <= without[b].delivered <= b]
    evidence = (
        f"CIRC_NO_OVERWRITE with buffers of {_and(buffers)} frames: taking the latest frame "
        f"and never unlocking, {_strategy_outcomes([without[b] for b in buffers])}; taking the "
        f"oldest and unlocking it, {_strategy_outcomes([with_unlock[b] for b in buffers])}"
    )
    if not conclusive:
        return Hypothesis(
            "no-unlock",
            None,
            f"inconclusive: frames stopped within the buffer with unlocking too ({evidence})",
        )
    return Hypothesis("no-unlock", len(halted) == len(conclusive), evidence)


def _strategy_outcomes(rows: Sequence[Any]) -> str:
    if all(r.stalled for r in rows):
        return f"frames stopped after {_and([r.delivered for r in rows])} frames"
    if not any(r.stalled for r in rows):
        return f"{_and([r.delivered for r in rows])} of {rows[0].target} frames"
    return ", ".join(
        f"stopped after {r.delivered}" if r.stalled else f"{r.delivered} of {r.target}"
        for r in rows
    )


def _and(items: Sequence[Any]) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def judge_param_polling(control: Run, tested: Run) -> Hypothesis:
    name = "param-polling"
    if control.error or tested.error:
        return Hypothesis(name, None, f"not tested: {control.error or tested.error}")
    reads = (
        f"the temperature read every {READ_EVERY} frames from frame {READ_FROM} "
        f"({tested.reads} read{'s' if tested.reads != 1 else ''})"
    )
    if tested.stalled and not control.stalled and tested.reads:
        return Hypothesis(
            name,
            True,
            f"with {reads}, frames stopped after frame {tested.last_frame}, camera status "
            f"{tested.status}; the same stream without reads: {control.delivered} of "
            f"{control.target} frames",
        )
    if tested.stalled and control.stalled:
        return Hypothesis(
            name,
            False,
            f"frames stopped with and without reads (after frames {tested.last_frame} and "
            f"{control.last_frame}): the reads are not what stops them",
        )
    if tested.stalled:
        return Hypothesis(
            name,
            False,
            f"frames stopped after frame {tested.last_frame}, before any read: not the reads",
        )
    return Hypothesis(
        name,
        False,
        f"with {reads}: {tested.delivered} of {tested.target} frames; without: "
        f"{control.delivered} of {control.target}",
    )


def judge_callback(control: Run, tested: Run) -> Hypothesis:
    name = "callback-reregistration"
    if control.error or tested.error:
        return Hypothesis(name, None, f"not tested: {control.error or tested.error}")
    if tested.stalled and not control.stalled:
        running = ""
        if tested.latest_in_buffer and tested.latest_in_buffer > tested.last_frame:
            running = (
                f" while the camera went on filling its buffer (frame {tested.latest_in_buffer}"
                " was in it)"
            )
        return Hypothesis(
            name,
            True,
            f"registered twice, callbacks stopped after frame {tested.last_frame}{running}; "
            f"registered once: {control.delivered} of {control.target} frames",
        )
    if tested.stalled and control.stalled:
        return Hypothesis(
            name,
            False,
            f"frames stopped registered once and twice (after frames {control.last_frame} and "
            f"{tested.last_frame}): the registration is not what stops them",
        )
    return Hypothesis(
        name,
        False,
        f"registered twice: {tested.delivered} of {tested.target} frames; once: "
        f"{control.delivered} of {control.target}",
    )


# ---- the verdict ------------------------------------------------------------------------------


@dataclass
class Verdict:
    reproduced: list[str]  # hypothesis ids, causes first, then no-unlock
    lines: list[str]  # the verdict, then one remedy per reproduced hypothesis

    def as_dict(self) -> dict[str, Any]:
        return {
            "reproduced": self.reproduced,
            "text": "\n".join(self.lines),
            "remedies": {h: REMEDIES[h] for h in self.reproduced},
        }


def verdict(hypotheses: Sequence[Hypothesis], fly_rows: Sequence[dict] = ()) -> Verdict:
    """What stopped the streams here, and what a driver must do instead."""
    found = {h.hypothesis: h for h in hypotheses}
    causes = [h for h in HYPOTHESES if h != "no-unlock" and found.get(h) and found[h].reproduced]
    untested = [h for h in HYPOTHESES if h in found and found[h].reproduced is None]
    lines = []
    if causes:
        lines.append(
            "Verdict: reproduced on this camera: "
            + "; ".join(f"{c} ({CLAIMS[c]})" for c in causes)
            + "."
        )
    else:
        tested = [h for h in HYPOTHESES if h != "no-unlock" and h not in untested]
        lines.append(
            "Verdict: none of the reported causes stops this camera's streams"
            + (f" ({', '.join(tested)}: not reproduced)" if tested else "")
            + "."
        )
    no_unlock = found.get("no-unlock")
    if no_unlock is not None and no_unlock.reproduced:
        lines.append(
            "no-unlock: reproduced, as PVCAM documents it: CIRC_NO_OVERWRITE halts once every "
            "buffer slot holds a frame nobody unlocked. A property of the buffer mode, a "
            "mistake a driver can make, not a fault of the camera."
        )
    if untested:
        lines.append(f"Not tested: {', '.join(untested)}.")
    if fly_rows:
        lines.append(fly_summary(fly_rows))
    reproduced = causes + (["no-unlock"] if no_unlock is not None and no_unlock.reproduced else [])
    if reproduced:
        lines.append("What a driver must do instead:")
        lines += [f"- {h}: {REMEDIES[h]}" for h in reproduced]
    return Verdict(reproduced, lines)


def fly_summary(rows: Sequence[dict]) -> str:
    """One line on ophyd-pvcam's own fly scans of the probe."""
    total = len(rows)
    stalled = [r for r in rows if r["outcome"] == "stalled"]
    failed = [r for r in rows if r["outcome"] == "failed"]
    lost = sum(r.get("lost") or 0 for r in rows)
    line = f"ophyd-pvcam's own fly scans: {total - len(stalled) - len(failed)} of {total} complete"
    if stalled:
        points = sorted({r["delivered"] + (r.get("lost") or 0) for r in stalled})
        where = (
            f"at frame {points[0]} whatever the buffer size"
            if len(points) == 1 and len({r["buffer_frames"] for r in stalled}) > 1
            else f"after frames {', '.join(map(str, points))}"
        )
        line += f", {len(stalled)} stalled {where}"
    if failed:
        line += f", {len(failed)} failed"
    return line + f"; {lost} frames lost."


# ---- text ---------------------------------------------------------------------------------------


def hypotheses_table(hypotheses: Sequence[Hypothesis], width: int = 100) -> str:
    """The hypotheses, one block each: id, outcome, evidence (wrapped)."""
    label = {True: "REPRODUCED", False: "not reproduced", None: "not tested"}
    lines = []
    for h in hypotheses:
        head = f"{h.hypothesis:<24} {label[h.reproduced]:<15} "
        body = textwrap.wrap(h.evidence, width - len(head)) or [""]
        lines.append(head + body[0])
        lines += [" " * len(head) + more for more in body[1:]]
    return "\n".join(lines)


def wrap_lines(lines: Sequence[str], width: int = 100) -> str:
    out = []
    for line in lines:
        indent = "  " if line.startswith("- ") else ""
        out += textwrap.wrap(line, width, subsequent_indent=indent) or [""]
    return "\n".join(out)
