"""Judging the stall doctor's experiments: each hypothesis reproduced, not reproduced or
not tested, with the evidence in words.

A cause counts as reproduced only when the arm with it stopped and the arm without
it did not; the limit experiments tell a frame count from a byte count by where
streams of different frame sizes stopped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._experiments import NO_UNLOCK, READ_EVERY, READ_FROM, UNLOCK, Run

MIB = 1 << 20


@dataclass
class Hypothesis:
    """One hypothesis, its experiment's outcome and what was measured."""

    hypothesis: str
    reproduced: bool | None  # None: not tested
    evidence: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mib(value: float) -> str:
    """Bytes as the doctor's text gives them: MiB, GiB from 1024 MiB."""
    size = value / MIB
    if size >= 1024:
        return f"{size / 1024:.2f} GiB"
    return f"{size:.0f} MiB" if size >= 10 else f"{size:.1f} MiB"


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
        f"{_and([f'{w}x{h} ({mib(w * h * 2)})' for w, h in sizes])} frames, buffers of "
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
        head = f"{width}x{height} frames ({mib(here[0].frame_bytes)} each)"
        if len(outcomes) == 1:
            run = here[0]
            what = (
                f"stopped after frame {run.last_frame} ({mib(run.stop_bytes)})"
                if run.stalled
                else f"streamed all {run.target} ({mib(run.target * run.frame_bytes)})"
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
