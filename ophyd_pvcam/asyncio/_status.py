"""The core's completions, awaited on the RunEngine's event loop.

The acquisition core finishes a step point or a fly scan's complete on its own
threads (owner, writer, watchdog) through a :class:`~ophyd_pvcam.acquisition.Progress`;
ophyd-async awaits coroutines on one event loop.  :class:`LoopProgress` is the one
bridge: the core calls it from any thread, each call is handed to the loop with
``call_soon_threadsafe``, and the face iterates :meth:`LoopProgress.updates` until the
core's verdict -- finished, or the core's own error (a stall's diagnosis, a readout
failure, a full disk), raised as it is.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator

log = logging.getLogger(__name__)


class LoopProgress:
    """A :class:`~ophyd_pvcam.acquisition.Progress` the core settles once, from any
    thread, and a coroutine awaits on ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._lock = threading.Lock()
        self._settled = False
        self._result: asyncio.Future[None] = loop.create_future()
        self._changed = asyncio.Event()
        self.current = 0

    # ---- the core's side (any thread) -------------------------------------------------

    @property
    def done(self) -> bool:
        return self._settled

    def update(self, current: int) -> None:
        self.current = current
        self._call(self._changed.set)

    def set_finished(self) -> None:
        self._settle(None)

    def set_exception(self, exc: BaseException) -> None:
        self._settle(exc)

    def _settle(self, error: BaseException | None) -> None:
        with self._lock:
            if self._settled:
                raise RuntimeError("a completion was settled twice")
            self._settled = True
        self._call(self._resolve, error)

    def _resolve(self, error: BaseException | None) -> None:
        if self._result.done():  # the waiting coroutine was cancelled meanwhile
            return
        if error is None:
            self._result.set_result(None)
        else:
            self._result.set_exception(error)
        self._changed.set()

    def _call(self, callback, *args) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody waits any more
            log.debug("a completion settled after its event loop closed")

    # ---- the face's side (the event loop) ----------------------------------------------

    async def updates(self, silence_s: float) -> AsyncIterator[int]:
        """Frames done, each time the core reports progress, until it settles; then
        its error is raised, if it failed.  ``silence_s``: the longest wait for any
        report -- the core reports ten times a second while it works, even when no
        frame comes (its stall watchdog judges those), so a silence this long means
        its threads hung."""
        while not self._result.done():
            self._changed.clear()
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({changed, self._result}, timeout=silence_s,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            finally:
                changed.cancel()
            if not self._changed.is_set() and not self._result.done():
                raise _Silent(silence_s)
            yield self.current
        self._result.result()

    async def wait(self, timeout_s: float) -> None:
        """Until the core settles (its error raised), at most ``timeout_s``."""
        try:
            await asyncio.wait_for(asyncio.shield(self._result), timeout_s)
        except TimeoutError:
            raise _Silent(timeout_s) from None


class _Silent(TimeoutError):
    """The core reported nothing for longer than it ever should: the face stops the
    camera and says so (see ``PvcamDetector``); not expected while its threads run."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds
