"""A heartbeat for what a person watches: frame counts that move while frames stream.

The ledger knows at every frame how many were acquired and lost, but the device's
signals used to follow it only when a point ended or a session closed: a 1000-frame
fly scan showed 0 acquired until its end, and a GUI watching the count saw a dead
camera.  Reporting from the owner thread at every frame would run the signals'
subscribers (plots, monitors, user callbacks) on the thread that must never wait, so
the reports come from a thread of their own, a few times a second, only while frames
are due.  Nothing here calls the camera.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Pulse:
    """Calls ``beat()`` every ``interval_s`` seconds from its own thread while
    ``running()`` says frames are due; sleeps (no wake-ups) from then until
    :meth:`start` is called again."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        beat: Callable[[], None],
        running: Callable[[], bool],
    ):
        self.interval_s = interval_s
        self._beat = beat
        self._running = running
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-pulse", daemon=True)
        self._thread.start()

    def start(self) -> None:
        """Frames are due from now: beat until they are not."""
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            self._wake.wait()  # asleep between acquisitions
            self._wake.clear()
            while not self._closed:
                # a start() during the beat keeps it going even if running() lags behind
                if self._wake.wait(self.interval_s):
                    self._wake.clear()
                if self._closed or not self._running():
                    break
                try:
                    self._beat()
                except Exception:  # a subscriber's failure must not stop the heartbeat
                    log.exception("reporting the camera's progress failed")
            if self._closed:
                return
