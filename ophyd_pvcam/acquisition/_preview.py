"""Looking at the camera without recording: one frame now, or a live stream.

Neither writes anything.  A live stream keeps only the newest frame (a viewer
shows frames at its own pace; the rest are let go on purpose, not lost), and counts
the frames the camera numbered but that never arrived, so a viewer can show them.
Both run on the device's owner thread like every other acquisition.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from ophyd_pvcam.hardware import FrameInfo, Readings
from ophyd_pvcam.storage import FrameQueue

from ._ledger import FrameLedger
from ._owner import Stream


class LiveStream:
    """A running live view: the newest frame, how many came, how many were lost.

    ``on_frame(frame, info)`` (optional) is called on the camera's owner thread for
    every frame: it must be quick (copy or flag, never draw)."""

    def __init__(self, name: str, frames: FrameQueue, on_frame: Callable | None = None):
        self.name = name
        self._frames = frames
        self._on_frame = on_frame
        self._ledger = FrameLedger()
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._latest_info: FrameInfo | None = None
        self.received = 0
        self.started_at = time.monotonic()
        self.error: BaseException | None = None
        self.stream: Stream | None = None
        self.done = threading.Event()

    # ---- for the viewer -----------------------------------------------------------

    def latest(self) -> tuple[np.ndarray | None, FrameInfo | None]:
        """A copy of the newest frame (None before the first) and what is known of it."""
        with self._lock:
            frame = None if self._latest is None else self._latest.copy()
            return frame, self._latest_info

    @property
    def lost(self) -> int:
        return self._ledger.lost.total

    def stop(self, timeout: float = 10.0) -> None:
        if self.stream is not None:
            self.stream.stop()
        self.done.wait(timeout)

    # ---- the owner thread (a FrameSink) ------------------------------------------------

    def started(self, readings: Readings) -> None:
        self.started_at = time.monotonic()

    def want(self, point: int, count: int) -> None:
        pass

    def outstanding(self) -> int:
        return 0

    def triggered(self) -> None:
        pass

    def satisfied(self) -> bool:
        return False

    def frame(self, info: FrameInfo, slot: int | None, now: float) -> None:
        self._ledger.arrive(info.number, info.bof, info.eof, now)
        if slot is None:
            return  # no memory free: this one is skipped, the next will do
        pixels = self._frames.buffer(slot)
        with self._lock:
            if self._latest is None or self._latest.shape != pixels.shape:
                self._latest = np.empty_like(pixels)
            np.copyto(self._latest, pixels)
            self._latest_info = info
            self.received += 1
        self._frames.release(slot)
        if self._on_frame is not None:
            self._on_frame(self._latest, info)

    def ended(self, error: BaseException | None, readings: Readings | None) -> None:
        self.error = error
        self._frames.close()
        self.done.set()
