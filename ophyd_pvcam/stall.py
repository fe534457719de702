"""Frame-stall detection, and failing the running plan when frames stop.

Two pieces:

- :class:`StallMonitor`, a watchdog thread per acquisition that fires once
  when no frame has arrived within the stall timeout.  The device then stops
  the camera, closes the file and fails its pending status with
  :class:`FrameStallError`.
- :class:`StallGuard`, a RunEngine preprocessor (``RE.preprocessors.append``)
  that makes the *plan* fail even when it is not waiting on the camera: it
  races every ``sleep`` and ``wait`` of the plan against the stall, and
  throws the :class:`FrameStallError` into the plan the moment a camera the
  plan uses stalls.  The run then ends with exit status ``fail`` and the
  diagnosis as its reason.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Generator
from typing import Any

from bluesky.utils import FailedStatus, Msg

log = logging.getLogger(__name__)


class FrameStallError(RuntimeError):
    """Frames stopped arriving from the camera; the message is a diagnosis."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.details = details or {}


class CameraAcquisitionError(RuntimeError):
    """The camera reported a failure (readout failure, disconnect, ...)."""


class StallMonitor:
    """Calls ``on_stall(seconds_since_last_frame)`` once if frames stop.

    The acquisition thread calls :meth:`feed` for every frame; the watchdog
    sleeps until the current deadline, so it costs nothing per frame.
    """

    def __init__(self, timeout: float, on_stall: Callable[[float], None], name: str = "camera"):
        self._timeout = float(timeout)
        self._on_stall = on_stall
        self._last = time.monotonic()
        self._condition = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._watch, name=f"{name}-stall-monitor", daemon=True
        )

    @property
    def timeout(self) -> float:
        return self._timeout

    def start(self) -> None:
        self._last = time.monotonic()
        self._thread.start()

    def feed(self) -> None:
        self._last = time.monotonic()

    def set_timeout(self, timeout: float) -> None:
        with self._condition:
            self._timeout = float(timeout)
            self._condition.notify_all()

    def stop(self) -> None:
        """Stand down (never blocks: the watchdog may be busy reporting a stall)."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()

    def _watch(self) -> None:
        with self._condition:
            while not self._stopped:
                age = time.monotonic() - self._last
                if age >= self._timeout:
                    break
                self._condition.wait(self._timeout - age)
            else:
                return
        log.warning("No frame for %.2f s (stall timeout %.2f s)", age, self._timeout)
        try:
            self._on_stall(age)
        except Exception:
            log.exception("Stall handler failed")


# ---- failing the plan ---------------------------------------------------------

_listeners: weakref.WeakSet = weakref.WeakSet()


def announce_stall(device: Any, error: FrameStallError) -> None:
    """Called by a device when it stalls: every guard watching it reacts."""
    for listener in list(_listeners):
        listener.stalled(device, error)


class StallGuard:
    """A RunEngine preprocessor that fails a plan as soon as a camera it uses stalls.

    Install once: ``RE.preprocessors.append(StallGuard())``.  While a camera
    of the plan is acquiring, the plan's ``sleep`` and ``wait`` messages are
    raced against a stall, so a plan that kicked off a fly scan and then
    sleeps or moves other devices fails within the stall timeout, not when
    it next looks at the camera.
    """

    def __init__(self) -> None:
        self._runs: list[_GuardedRun] = []
        self._lock = threading.Lock()
        _listeners.add(self)

    def __call__(self, plan):
        return _GuardedRun(self).run(plan)

    def stalled(self, device: Any, error: FrameStallError) -> None:
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.stalled(device, error)

    def _register(self, run: _GuardedRun) -> None:
        with self._lock:
            self._runs.append(run)

    def _unregister(self, run: _GuardedRun) -> None:
        with self._lock:
            if run in self._runs:
                self._runs.remove(run)


def _is_camera(obj: Any) -> bool:
    return hasattr(obj, "stall_error") and hasattr(obj, "acquiring")


class _GuardedRun:
    """The state of one guarded plan: the cameras it used, and the stall if any."""

    def __init__(self, guard: StallGuard):
        self._guard = guard
        self._cameras: weakref.WeakSet = weakref.WeakSet()
        self._pending: FrameStallError | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._lock = threading.Lock()
        self._statuses: dict[Any, list] = defaultdict(list)

    # called from the device's thread
    def stalled(self, device: Any, error: FrameStallError) -> None:
        if device not in self._cameras:
            return
        with self._lock:
            self._pending = error  # the newest stall, until it is thrown into the plan
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    def _armed(self) -> bool:
        return any(camera.acquiring for camera in list(self._cameras))

    def _race(self, awaitable_factory: Callable[[], Any]) -> Callable[[], Any]:
        """An awaitable factory for ``wait_for``: the plan's own wait, or the stall."""

        async def race() -> None:
            loop = asyncio.get_running_loop()
            stall = loop.create_future()
            with self._lock:
                if self._pending is not None:
                    return  # fail now
                self._waiters.append((loop, stall))
            work = asyncio.ensure_future(awaitable_factory())
            try:
                await asyncio.wait({work, stall}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                work.cancel()
                with self._lock:
                    self._waiters = [(lp, f) for lp, f in self._waiters if f is not stall]

        return race

    def _group_done(self, group: Any) -> Callable[[], Any]:
        statuses = list(self._statuses.get(group, ()))

        async def done() -> None:
            loop = asyncio.get_running_loop()
            futures = []
            for status in statuses:
                future = loop.create_future()
                status.add_callback(lambda _s, f=future: loop.call_soon_threadsafe(_resolve, f))
                futures.append(future)
            if futures:
                await asyncio.wait(futures)

        return done

    def _undelivered_stall(self) -> FrameStallError | None:
        """A stall not yet thrown into the plan (each stall is thrown once)."""
        with self._lock:
            error, self._pending = self._pending, None
            return error

    def run(self, plan) -> Generator[Msg, Any, Any]:
        self._guard._register(self)
        plan = iter(plan)
        response: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    msg = plan.throw(error) if error is not None else plan.send(response)
                except StopIteration as stop:
                    return stop.value
                error, response = None, None
                if msg.obj is not None and _is_camera(msg.obj):
                    self._cameras.add(msg.obj)
                try:
                    if self._guards(msg):
                        response = yield from self._guarded(msg)
                    else:
                        response = yield msg
                    if msg.command in _STATUS_COMMANDS and hasattr(response, "add_callback"):
                        group = msg.kwargs.get("group")
                        pending = [s for s in self._statuses[group] if not s.done]
                        self._statuses[group] = [*pending, response]
                except FailedStatus as failed:
                    error = self._undelivered_stall() or self._camera_cause(failed)
                    continue
                except Exception as exc:
                    error = exc
                    continue
                error = self._undelivered_stall()
        finally:
            self._guard._unregister(self)
            plan.close()

    def _camera_cause(self, failed: FailedStatus) -> BaseException:
        """A status one of our cameras failed carries its own error: raise that, not
        FailedStatus, so the plan (and the run's stop document) names what happened."""
        status = failed.args[0] if failed.args else None
        cause = failed.__cause__
        if cause is not None and getattr(status, "device", None) in self._cameras:
            return cause
        return failed

    def _guards(self, msg: Msg) -> bool:
        if msg.command == "sleep":
            return self._armed()
        if msg.command == "wait":
            # a wait with its own timeout keeps the RunEngine's semantics
            return not (msg.kwargs.get("timeout") or msg.kwargs.get("move_on")) and self._armed()
        return False

    def _guarded(self, msg: Msg) -> Generator[Msg, Any, Any]:
        if msg.command == "sleep":
            (seconds,) = msg.args
            yield Msg("wait_for", None, [self._race(lambda: asyncio.sleep(seconds))])
            stall = self._undelivered_stall()
            if stall is not None:
                raise stall
            return None
        group = msg.kwargs.get("group")
        yield Msg("wait_for", None, [self._race(self._group_done(group))])
        stall = self._undelivered_stall()
        if stall is not None:
            raise stall
        self._statuses.pop(group, None)
        return (yield msg)  # all done now: the RunEngine's own bookkeeping


_STATUS_COMMANDS = frozenset({"set", "trigger", "kickoff", "complete"})


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
