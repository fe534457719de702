"""Reading a just-recorded run back, to show that what the camera took is what the
catalog holds: ``ophyd-pvcam demo`` prints one line of this per run.

It is a small check, kin to the first-day check's replays: the frames come back with
their shape and type, and a simulated camera's frames still carry the numbers the
simulator stamped into their pixels, 1, 2, 3 ... with none missing or repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ophyd_pvcam import sim


@dataclass(frozen=True)
class Replayed:
    """One run's images as the catalog gives them back."""

    plan: str
    frames: int
    width: int
    height: int
    dtype: str
    mean: float  # of every pixel of every frame, ADU
    numbers_intact: bool | None  # stamped numbers run 1..frames; None: not simulated
    exit_status: str


def replay(run: Any, stream: str, key: str, *, simulated: bool) -> Replayed:
    """Read every image of ``stream``/``key`` back from the catalog's ``run``; for a
    ``simulated`` camera, check the frame numbers stamped in their pixels."""
    images = run[stream][key].read()
    frames = images.reshape(-1, *images.shape[-2:])
    intact = None
    if simulated:
        intact = [sim.frame_number(f) for f in frames] == list(range(1, len(frames) + 1))
    return Replayed(
        plan=run.metadata["start"]["plan_name"],
        frames=len(frames),
        width=frames.shape[2],
        height=frames.shape[1],
        dtype=str(frames.dtype),
        mean=float(np.mean(frames)),
        numbers_intact=intact,
        exit_status=run.metadata["stop"]["exit_status"],
    )


def frame_rate(times: np.ndarray) -> float | None:
    """Frames per second over a run's frame times (s), first to last; None for fewer
    than two frames or no time between them."""
    if len(times) > 1 and times[-1] > times[0]:
        return (len(times) - 1) / float(times[-1] - times[0])
    return None
