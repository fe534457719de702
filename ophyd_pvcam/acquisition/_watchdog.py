"""Frame-stall detection: a watchdog per camera that fires once when frames stop.

:class:`StallMonitor` is fed by the owner thread with every frame; when no frame
has arrived within the stall timeout it calls the session's handler once, which
stops the camera, closes the file and fails what is pending with a
:class:`~ophyd_pvcam.errors.FrameStallError`.  Failing the *plan* when nothing of
it waits on the camera is the face's business (``ophyd_pvcam.device.StallGuard``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class StallMonitor:
    """A camera's watchdog: calls ``on_stall(token, seconds_since_last_frame)`` once if no
    frame arrives within the timeout while it is armed (``token`` names the arming, so
    a caller can tell a stale call -- an arming it has since withdrawn -- from a live one).

    One thread per camera, armed only while frames are due (a fly scan, a step point
    waiting for its frames) and asleep otherwise.  The owner thread calls :meth:`feed`
    for every frame; that is one attribute write, so it costs nothing per frame.
    Arming and disarming wake the thread only when it must look sooner than it already
    will (a step scan arms and disarms at every point, well within one timeout): a
    disarmed watchdog notices it at the deadline it was sleeping to, and goes to sleep.
    """

    def __init__(self, name: str = "camera"):
        self._condition = threading.Condition()
        self._armed: tuple[int, float, Callable[[int, float], None]] | None = None
        self._token = 0
        self._last = time.monotonic()
        self._wakes_at = math.inf  # when the thread looks again by itself (monotonic)
        self._closed = False
        self._thread = threading.Thread(target=self._watch, name=f"{name}-stall", daemon=True)
        self._thread.start()

    def arm(self, timeout: float, on_stall: Callable[[int, float], None]) -> int:
        """Start watching (the clock starts now); returns a token for :meth:`disarm`."""
        with self._condition:
            self._token += 1
            self._armed = (self._token, float(timeout), on_stall)
            self._last = time.monotonic()
            if self._last + float(timeout) < self._wakes_at:
                self._condition.notify_all()
            return self._token

    def feed(self) -> None:
        """A frame arrived: the time without frames starts again from now."""
        self._last = time.monotonic()

    def set_timeout(self, timeout: float) -> None:
        with self._condition:
            if self._armed is not None:
                token, _, on_stall = self._armed
                self._armed = (token, float(timeout), on_stall)
                self._condition.notify_all()

    def disarm(self, token: int | None = None) -> None:
        """Stop watching (only if ``token`` is still the current arming, when given)."""
        with self._condition:
            if self._armed is not None and token in (None, self._armed[0]):
                self._armed = None  # the thread sees it when it next looks

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._armed = None
            self._condition.notify_all()

    def _watch(self) -> None:
        while True:
            with self._condition:
                while True:
                    if self._closed:
                        return
                    if self._armed is None:
                        self._wakes_at = math.inf
                        self._condition.wait()
                        continue
                    token, timeout, on_stall = self._armed
                    now = time.monotonic()
                    age = now - self._last
                    if age >= timeout:
                        self._armed = None  # fires once per arming
                        self._wakes_at = math.inf
                        break
                    wait = min(timeout - age, 3600.0)
                    self._wakes_at = now + wait
                    self._condition.wait(wait)
            # the session decides whether this is a stall (a late frame may have just come)
            # and reports it: here only a trace for a verbose log
            log.info("No frame for %.2f s (stall timeout %.2f s)", age, timeout)
            try:
                on_stall(token, age)
            except Exception:
                log.exception("Stall handler failed")
