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
    :meth:`start` is called again.

    A :meth:`start` while it beats only keeps it going: it does not wake the thread
    (a step scan starts it at every point, and a beat per point -- every status
    signal and its subscribers, competing for the GIL with the point itself -- cost
    the point time it waits for)."""

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
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set by close(), and by a start() while asleep
        self._asleep = True
        self._started = False  # a start() since the last beat
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-pulse", daemon=True)
        self._thread.start()

    def start(self) -> None:
        """Frames are due from now: beat until they are not."""
        with self._lock:
            self._started = True
            if self._asleep:
                self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            self._wake.wait()  # asleep between acquisitions
            with self._lock:
                self._wake.clear()
                self._asleep = False
            while not self._closed:
                self._wake.wait(self.interval_s)  # only close() sets it now
                with self._lock:
                    started, self._started = self._started, False
                # a start() since the last beat keeps it going even if running() lags
                if self._closed or not (started or self._running()):
                    break
                try:
                    self._beat()
                except Exception:  # a subscriber's failure must not stop the heartbeat
                    log.exception("reporting the camera's progress failed")
            if self._closed:
                return
            with self._lock:
                if self._started:  # started as it stopped: go on beating
                    self._wake.set()
                self._asleep = True
