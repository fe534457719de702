"""A camera backend in pure Python, for tests that run in milliseconds.

:class:`FakeBackend` is a :class:`~ophyd_pvcam.hardware.CameraBackend` with no C, no
pyvcam and no real sensor: frames are produced when they are polled for (one per
``period_s``), numbered from 1, with the number stamped in the first pixel.  What
happens to frame *n* is scripted (``fake.script[n] = "drop" | "torn" | "stall" |
"fail" | "lost"``), or to the next frames made whatever their numbers
(``fake.upcoming.append(...)``), so the ledger, the sessions and the writer can be
driven through every failure deterministically.  It also checks the one-owner rule:
every call must come from the same thread, and nothing but streaming calls while
frames stream; a breach raises in the caller and is kept in ``violations``.

The C simulator (``ophyd_pvcam.sim``) stays the integration test: it runs the vendor's
pyvcam exactly as a beamline does.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from ophyd_pvcam.hardware import (
    CameraError,
    CameraSetup,
    Capabilities,
    FrameInfo,
    Gain,
    Mode,
    Port,
    Readings,
    Speed,
    StreamSpec,
)

FAKE_CAPABILITIES = Capabilities(
    name="fake_0",
    model="Fake BSI",
    serial_number="FAKE-1",
    firmware_version="1.0",
    chip_name="fake",
    sensor_width=64,
    sensor_height=64,
    pixel_size_um=6.5,
    ports=(Port("Sensitivity", 0, (Speed(0, "100 MHz", 10, (Gain(1, "HDR", 16),)),)),),
    binnings=(1, 2),
    trigger_modes={
        "Internal Trigger": 1792,
        "Edge Trigger": 2304,
        "Software Trigger Edge": 3072,
        "Software Trigger First": 2816,
    },
    expose_out_modes={"First Row": 0},
    clear_modes={"Pre-Sequence": 1},
    fan_speeds={"High": 0},
    exposure_resolutions={"One Microsecond": 1},
    max_exposure_s=3600.0,
    temperature_setpoint_range=(-25.0, 25.0),
    simulated=True,
)


class OwnerRuleBroken(AssertionError):
    """A call came from a second thread, or a parameter call came while streaming."""


class FakeBackend:
    """A scripted camera (see the module docstring)."""

    def __init__(self, period_s: float = 0.001, capabilities: Capabilities = FAKE_CAPABILITIES):
        self.capabilities = capabilities
        self.period_s = period_s
        self.script: dict[int, str] = {}
        self.upcoming: deque[str] = deque()  # the fates of the next frames made
        self.violations: list[str] = []
        self.setup: CameraSetup | None = None
        self.spec: StreamSpec | None = None
        self.streaming = False
        self.starts = 0
        self.frames_made = 0  # over the backend's life
        self.delivered = 0  # of those, handed over by poll()
        self.dropped = 0  # of those, lost on the way ("drop": a gap in the numbers)
        self.stop_calls = 0
        self.refuse_start = False
        self._thread: threading.Thread | None = None
        self._number = 0
        self._triggers = 0
        self._next_at = 0.0
        self._stalled = False
        self.resume = threading.Event()  # set it to end a scripted "stall"

    # ---- the one-owner rule ------------------------------------------------------

    def _owner(self, streaming_call: bool = False) -> None:
        current = threading.current_thread()
        if self._thread is None:
            self._thread = current
        breach = None
        if current is not self._thread:
            breach = f"{current.name} called the camera; {self._thread.name} owns it"
        elif self.streaming and not streaming_call:
            breach = "a parameter call while frames stream"
        if breach is not None:
            self.violations.append(breach)
            raise OwnerRuleBroken(breach)

    # ---- idle ----------------------------------------------------------------------

    def apply(self, setup: CameraSetup) -> None:
        self._owner()
        self.setup = setup

    def read(self) -> Readings:
        self._owner()
        return Readings(-20.0, 0.0005, time.time())

    def ensure_open(self) -> None:
        self._owner()

    def close(self) -> None:
        self._owner()

    # ---- streaming -------------------------------------------------------------

    def start(self, spec: StreamSpec) -> None:
        self._owner()
        if self.refuse_start:
            raise CameraError("the camera refused to start: configuration invalid (185)")
        self.spec, self.streaming = spec, True
        self.starts += 1
        self._number = self._triggers = 0
        self._stalled = False
        self._next_at = time.monotonic()

    def trigger(self) -> bool:
        self._owner(streaming_call=True)
        self._triggers += 1
        return True

    def status(self) -> str:
        self._owner(streaming_call=True)
        return "READOUT_COMPLETE" if self._sequence_done() else "FRAME_AVAILABLE"

    def stop(self) -> None:
        self._owner(streaming_call=True)
        self.streaming = False
        self.stop_calls += 1

    def poll(self, timeout_s: float, out: np.ndarray) -> FrameInfo | None:
        self._owner(streaming_call=True)
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            if self._stalled:
                if not self.resume.wait(remaining):
                    return None
                self._stalled = False
            if not self._frame_possible():
                threading.Event().wait(remaining)  # nothing can come: the poll times out
                return None
            due = self._next_at - time.monotonic()
            if due > remaining:
                threading.Event().wait(remaining)
                return None
            if due > 0:
                threading.Event().wait(due)  # the sensor's pace
            self._number += 1
            self._next_at = max(self._next_at + self.period_s, time.monotonic())
            fate = self.script.get(self._number)
            if fate is None and self.upcoming:
                fate = self.upcoming.popleft()
            if fate == "stall":  # frames stop before this one is made
                self._stalled = True
                self._number -= 1
                self.script.pop(self._number + 1, None)
                continue
            self.frames_made += 1
            if fate == "drop":
                self.dropped += 1
                continue  # lost on the way: a gap in the numbers
            if fate == "fail":
                raise CameraError("the camera reported a readout failure", readout_failed=True)
            if fate == "lost":
                raise CameraError("the camera disconnected", lost=True)
            out[...] = 0
            out.flat[0] = self._number
            self.delivered += 1
            stamp = self._number * self.period_s
            return FrameInfo(self._number, stamp, stamp + self.period_s / 2, torn=fate == "torn")

    def _frame_possible(self) -> bool:
        spec = self.spec
        if spec is None or self._sequence_done():
            return False
        edge = self.setup is not None and self.setup.trigger_mode == "Edge Trigger"
        if spec.mode is Mode.SOFTWARE or edge:
            return self._triggers > self._number
        return True

    def _frame_due(self) -> bool:
        return self._frame_possible() and time.monotonic() >= self._next_at

    def _sequence_done(self) -> bool:
        spec = self.spec
        return spec is not None and spec.mode is Mode.SEQUENCE and self._number >= spec.frames

    def fire_edge(self) -> None:
        """An edge on the trigger input (Edge Trigger mode); any thread (it is the wire)."""
        self._triggers += 1


def fake_frame_number(frame: np.ndarray) -> int:
    """The number :class:`FakeBackend` stamped into a frame."""
    return int(frame.flat[0])
