"""Frames on their way from the camera to the disk, in memory allocated up front.

The owner thread copies each frame out of the camera's buffer into a slot of a
:class:`FrameQueue` and moves on; the writer thread drains the queue.  A slow or
hiccuping disk then costs memory, not frames: a frame is lost only when every
slot is full, and it is counted with that reason.

Slots are reused last-freed-first, so while the disk keeps up a handful of warm
slots do all the work.  Memory is touched (the kernel maps pages on first write,
at well under 1 GB/s) by a helper thread that keeps a margin of touched slots ahead
of the deepest slot used, so the owner thread does not pay for page faults and an
idle pool costs no more than its margin.  Only when the backlog grows faster than the
helper can map (fresh memory in a VM maps at ~0.5 GB/s; full frames arrive at 0.8 GB/s)
does the owner take an unmapped slot from the far end: page faults beat a lost frame.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np

TOUCH_AHEAD_BYTES = 256 << 20  # ~0.3 s of full 16-bit frames at the fastest readout
TOUCH_FIRST_BYTES = 64 << 20  # touched before the first frame, the rest in the background


class FrameQueue:
    """``capacity`` frame slots of ``shape`` and ``dtype``, and a FIFO of filled ones."""

    def __init__(self, shape: tuple[int, ...], dtype: Any, capacity: int):
        if capacity < 2:
            raise ValueError(f"a frame queue needs at least 2 slots, not {capacity}")
        self.shape = tuple(shape)
        self.capacity = capacity
        self._store = np.empty((capacity, *self.shape), dtype)
        frame_bytes = self._store[0].nbytes
        self._ahead = max(2, min(capacity, TOUCH_AHEAD_BYTES // max(frame_bytes, 1)))
        self._free: list[int] = []
        self._fresh = 0  # slots below this have been handed out at least once
        self._touched = 0  # slots below this have had their pages mapped
        self._touching = 0  # the toucher is mapping the slots below this
        self._top = capacity  # slots from here up were handed out unmapped (see slot())
        self._filled: deque = deque()
        self._lock = threading.Condition()
        self._closed = False
        self._touch(min(capacity, max(2, TOUCH_FIRST_BYTES // max(frame_bytes, 1))))
        self._toucher = threading.Thread(target=self._touch_ahead, name="frame-queue", daemon=True)
        self._toucher.start()

    @property
    def frame_bytes(self) -> int:
        return self._store[0].nbytes

    def slot(self) -> int | None:
        """A free slot, or None if all are full (the caller counts the frame lost)."""
        deadline = None  # set only if it has to wait (this runs for every frame)
        with self._lock:
            while True:
                if self._free:
                    return self._free.pop()
                if self._fresh < self._touched:
                    self._fresh += 1
                    self._lock.notify_all()  # the toucher keeps its margin
                    return self._fresh - 1
                if self._top > max(self._touching, self._fresh):
                    # the disk fell behind faster than pages could be mapped: an unmapped
                    # slot from the far end (this thread pays its page faults) beats a
                    # lost frame
                    self._top -= 1
                    return self._top
                if deadline is None:
                    deadline = time.monotonic() + 1.0
                remaining = deadline - time.monotonic()
                if self._touching <= self._touched or self._closed or remaining <= 0:
                    return None
                self._lock.wait(remaining)  # the last free slots are being mapped: a moment

    def buffer(self, slot: int) -> np.ndarray:
        return self._store[slot]

    def put(self, slot: int, item: Any) -> None:
        """Hand a filled slot (and what to do with it) to the writer."""
        with self._lock:
            self._filled.append((slot, item))
            self._lock.notify_all()

    def get(self, timeout: float) -> tuple[int, Any] | None:
        """The oldest filled slot, waiting up to ``timeout``; None if none came."""
        with self._lock:
            if not self._filled:
                self._lock.wait(timeout)
            return self._filled.popleft() if self._filled else None

    def wake(self) -> None:
        """Wake a :meth:`get` that waits (its caller has something else to see to)."""
        with self._lock:
            self._lock.notify_all()

    def release(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)

    @property
    def depth(self) -> int:
        """Filled slots waiting for the writer."""
        return len(self._filled)

    def close(self) -> None:
        """Stop the toucher (the memory goes when the queue does)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _touch(self, upto: int) -> None:
        self._store[self._touched : upto].fill(0)
        self._touched = upto

    def _touch_ahead(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (
                    self._touched >= self._top or self._touched - self._fresh >= self._ahead
                ):
                    self._lock.wait(1.0)
                if self._closed:
                    return
                start = self._touched
                end = min(self._top, start + max(1, self._ahead // 8))
                self._touching = end  # slot() hands out none of these unmapped
            self._store[start:end].fill(0)  # outside the lock: the owner keeps going
            with self._lock:
                self._touched = end
                self._lock.notify_all()
