"""Recorded runs as a person looks at them: the newest runs and their state, and one
run's camera images, frames lost, and single frames with the camera's own number and
their place on the sensor.

``ophyd-pvcam runs`` and ``ophyd-pvcam show`` print what these find; the finding is
catalog work (run markers, the frame files a run references or left on disk, the
stream's configuration), so it lives here and the command line only words it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

STALE_AFTER_S = 3600.0  # a run without a stop, or a marker, this long may be left open
IMAGE_SUFFIX = "_image"  # a stream key holding camera images: "<device>_image"


# ---- the newest runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    """One run of the list: when, what, how many events, and how it ended."""

    uid: str
    started: float  # s since the epoch (0 when the start document says nothing)
    plan: str  # "?" when the start document says nothing
    events: int
    state: str  # its exit status; without a stop: "left open", "running" or "running?"
    stale: bool = False  # "running?" for over an hour: perhaps left by a process that died


@dataclass(frozen=True)
class RunsOverview:
    """The newest runs, and every run of the catalog a process that is gone left open."""

    runs: list[RunState]
    left_open: list[str]

    @property
    def stale(self) -> int:
        """How many of the listed runs may have been left open (no marker says)."""
        return sum(run.stale for run in self.runs)


def newest_runs(catalog: Any, last: int) -> RunsOverview:
    """The ``last`` newest runs of ``catalog``, oldest first, each with its state.  A run
    without a stop document is "left open" when its marker says its process is gone,
    "running" when a live process holds it, "running?" when nothing says (a catalog
    server, or a run recorded without markers)."""
    from . import guard_of, left_open

    uids = list(catalog.keys())[-last:]
    if not uids:
        return RunsOverview([], [])
    markers = getattr(guard_of(catalog), "runs", None)
    dead = list(dict.fromkeys(left_open(catalog)))  # each once, in order
    runs = []
    for uid in uids:
        metadata = catalog[uid].metadata
        start, stop = metadata.get("start") or {}, metadata.get("stop") or {}
        stale = False
        if stop:
            state = stop.get("exit_status", "?")
        elif uid in dead:
            state = "left open"
        elif markers is not None and markers.holder(uid):
            state = "running"
        else:
            state = "running?"
            stale = time.time() - start.get("time", 0) > STALE_AFTER_S
        runs.append(
            RunState(
                uid=uid,
                started=start.get("time", 0),
                plan=start.get("plan_name", "?"),
                events=sum((stop.get("num_events") or {}).values()),
                state=state,
                stale=stale,
            )
        )
    return RunsOverview(runs, dead)


# ---- one run's files ---------------------------------------------------------------------


def files_not_in_run(catalog: Any, run: Any, referenced: Iterable[Path]) -> list[Path]:
    """Frame files of the run on disk that it does not reference (``referenced``, from
    :func:`frame_files`): for a run left open, what recovery would make reachable."""
    from . import run_files

    listed = set(referenced)
    return [path for path in run_files(catalog, run.metadata["start"]["uid"]) if path not in listed]


# ---- one run's images ------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedFrame:
    """One frame of a run, and what is known of it."""

    image: np.ndarray
    point: int  # the event it belongs to (a fly scan: one event per frame)
    number: int | None  # the camera's own frame number, when the run or its file says
    roi: tuple[int, ...] | None  # x, y, width, height on the sensor, unbinned pixels
    binning: int


class RunImages:
    """A run's camera images in one stream, shaped (points, frames per point, rows,
    columns): the frames a step scan took at each point, or a fly scan's frames, one a
    point."""

    def __init__(self, run: Any, stream: str, key: str):
        self.run = run
        self.stream = stream
        self.key = key
        self.array = run[stream][key]
        self._prefix = key[: -len("image")]  # "cam_": the device's keys start so

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def count(self) -> int:
        """Frames in the stream."""
        return self.shape[0] * self.shape[1]

    @property
    def fly(self) -> bool:
        """A fly scan's stream (it records frames lost before each frame)."""
        return f"{self._prefix}lost_before" in self.run[self.stream]

    def lost(self) -> int | None:
        """Frames the camera lost during the run, when the stream says (None: not)."""
        node = self.run[self.stream]
        if f"{self._prefix}lost_before" in node:
            return int(np.sum(node[f"{self._prefix}lost_before"].read()))
        if f"{self._prefix}dropped_frames" in node:
            dropped = node[f"{self._prefix}dropped_frames"].read()
            return int(dropped[-1]) if len(dropped) else 0
        return None

    def frame(self, index: int) -> RecordedFrame:
        """The frame at ``index`` (0 .. count - 1, in the order they were taken)."""
        if not 0 <= index < self.count:
            raise IndexError(f"frame {index} is outside 0..{self.count - 1}")
        per_point = self.shape[1]
        point, within = divmod(index, per_point)
        image = np.asarray(self.array[point, within])
        roi, binning = self._geometry(image.shape)
        return RecordedFrame(image, point, self._number(point, within, per_point), roi, binning)

    def _number(self, point: int, within: int, per_point: int) -> int | None:
        """The camera's number of a frame: per row in a fly scan; in a step scan the
        point's frame number is its last frame's, and the file's records give the others."""
        from ophyd_pvcam.storage import read_record

        from . import frame_files

        key = f"{self._prefix}frame_number"
        if key not in self.run[self.stream]:
            return None
        numbers = self.run[self.stream][key].read()
        if per_point == 1:
            return int(numbers[point])
        files = frame_files(self.run).get(f"{self.stream}/{self.key}", [])
        if len(files) != 1:
            return None
        try:
            records = read_record(files[0], "frame_number")
            last = (point + 1) * per_point - 1  # the row whose number the event has
            if len(records) == len(numbers) * per_point and records[last] == int(numbers[point]):
                return int(records[point * per_point + within])
        except (OSError, KeyError, ValueError):
            pass
        return None

    def _geometry(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...] | None, int]:
        """(roi, binning) the frames were taken with, from the stream's configuration;
        (None, 1) when it does not say, or says something that does not fit the frame."""
        device = self._prefix[:-1]
        try:
            data = self.run[self.stream].metadata["configuration"][device]["data"]
            roi = tuple(int(v) for v in data[f"{self._prefix}roi"])
            binning = int(data[f"{self._prefix}binning"])
            if (roi[3] // binning, roi[2] // binning) == tuple(shape):
                return roi, binning
        except (KeyError, TypeError, ValueError):
            pass
        return None, 1


def run_images(run: Any) -> RunImages | None:
    """The run's first stream holding camera images, or None when it holds none."""
    for stream in run:
        for key in run[stream]:
            if key.endswith(IMAGE_SUFFIX):
                return RunImages(run, stream, key)
    return None
