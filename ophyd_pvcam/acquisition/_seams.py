"""What the acquisition core asks of the face that drives it: how work is reported
done, and which run the work belongs to.

The core imports no ophyd, bluesky or tiled.  A face (the ophyd device, later an
ophyd-async one) hands in objects of these shapes: an ophyd status satisfies
:class:`Completion` as it is, and :class:`Progress` once it takes ``update``;
:class:`Pending` is the plain one (both), for tests and for faces that wrap it
themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol


class Completion(Protocol):
    """One piece of work the core finishes exactly once: finished or failed (a fly
    scan's kickoff).  The core never waits on it."""

    @property
    def done(self) -> bool: ...
    def set_finished(self) -> None: ...
    def set_exception(self, exc: BaseException) -> None: ...


class Progress(Completion, Protocol):
    """A :class:`Completion` told how far the work has got while it runs, in frames
    (a step point's trigger, a fly scan's complete)."""

    def update(self, current: int) -> None: ...


class RunLink(Protocol):
    """The run a session's frames belong to: its uid names the file; its end ends the
    session (the face learns that from whatever drives it)."""

    @property
    def uid(self) -> str | None: ...
    @property
    def ending(self) -> bool:
        """The run is being torn down (abort, stop, halt)."""
        ...

    def when_ends(self, callback: Callable[[], None]) -> None: ...
    def datums_emitted(self, resource: str) -> int | None:
        """How many Datums of ``resource`` the run has emitted (None: not even the
        Resource).  A Datum the RunEngine took but never emitted (a pause or an abort
        between reading the camera and saving the event) is not referenced."""
        ...


class Pending:
    """A plain :class:`Completion`: a thread-safe result with progress and callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._callbacks: list[Callable[[Pending], None]] = []
        self.current = 0
        self.exception: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._event.is_set()

    @property
    def success(self) -> bool:
        return self.done and self.exception is None

    def update(self, current: int) -> None:
        self.current = current

    def set_finished(self) -> None:
        self._settle(None)

    def set_exception(self, exc: BaseException) -> None:
        self._settle(exc)

    def add_callback(self, callback: Callable[[Pending], None]) -> None:
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def wait(self, timeout: float) -> bool:
        """Whether it ended within ``timeout`` seconds."""
        return self._event.wait(timeout)

    def _settle(self, exc: BaseException | None) -> None:
        with self._lock:
            if self._event.is_set():
                raise RuntimeError("a completion was settled twice")
            self.exception = exc
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)
