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


class StallMonitor:
    """A camera's watchdog: calls ``on_stall(token, seconds_since_last_frame)`` once if no
    frame arrives within the timeout while it is armed (``token`` names the arming, so
    a caller can tell a stale call -- an arming it has since withdrawn -- from a live one).

    One thread per camera, armed only while frames are due (a fly scan, a step point
    waiting for its frames) and asleep otherwise.  The owner thread calls :meth:`feed`
    for every frame; that is one attribute write, so it costs nothing per frame.
    """

    def __init__(self, name: str = "camera"):
        self._condition = threading.Condition()
        self._armed: tuple[int, float, Callable[[int, float], None]] | None = None
        self._token = 0
        self._last = time.monotonic()
        self._closed = False
        self._thread = threading.Thread(target=self._watch, name=f"{name}-stall", daemon=True)
        self._thread.start()

    def arm(self, timeout: float, on_stall: Callable[[int, float], None]) -> int:
        """Start watching (the clock starts now); returns a token for :meth:`disarm`."""
        with self._condition:
            self._token += 1
            self._armed = (self._token, float(timeout), on_stall)
            self._last = time.monotonic()
            self._condition.notify_all()
            return self._token

    def feed(self) -> None:
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
                self._armed = None
                self._condition.notify_all()

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
                        self._condition.wait()
                        continue
                    token, timeout, on_stall = self._armed
                    age = time.monotonic() - self._last
                    if age >= timeout:
                        self._armed = None  # fires once per arming
                        break
                    self._condition.wait(min(timeout - age, 3600.0))
            # the session decides whether this is a stall (a late frame may have just come)
            # and reports it: here only a trace for a verbose log
            log.info("No frame for %.2f s (stall timeout %.2f s)", age, timeout)
            try:
                on_stall(token, age)
            except Exception:
                log.exception("Stall handler failed")


# ---- failing the plan ---------------------------------------------------------

_listeners: weakref.WeakSet = weakref.WeakSet()


def announce_failure(device: Any, error: BaseException) -> None:
    """Called by a device whose failure (a stall, a camera or disk error) no status of
    its carries (nothing of the plan's waits on the camera): every guard watching it
    throws it into its plan."""
    for listener in list(_listeners):
        listener.failed(device, error)


class StallGuard:
    """A RunEngine preprocessor that fails a plan as soon as a camera it uses stalls.

    Install once: ``RE.preprocessors.append(StallGuard())``.  A stall reaches the
    plan exactly once, by one of two ways:

    - the plan waits on the camera (a trigger, a complete): its status fails with
      :class:`FrameStallError`, and the guard re-raises that error in place of
      bluesky's generic ``FailedStatus``.  These waits are left to the RunEngine,
      so its progress bars are drawn;
    - the plan sleeps, or waits on other devices, while a camera acquires: the guard
      races that wait against a stall (and against any of the plan's camera statuses
      failing) and throws the stall into the plan the moment it happens.
    """

    def __init__(self) -> None:
        self._runs: list[_GuardedRun] = []
        self._lock = threading.Lock()
        _listeners.add(self)

    def __call__(self, plan):
        return _GuardedRun(self).run(plan)

    def failed(self, device: Any, error: BaseException) -> None:
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.failed(device, error)

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
    """The state of one guarded plan: its cameras, their statuses, the stall if any."""

    def __init__(self, guard: StallGuard):
        self._guard = guard
        self._cameras: weakref.WeakSet = weakref.WeakSet()
        self._pending: BaseException | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._lock = threading.Lock()
        self._groups: dict[Any, list] = defaultdict(list)  # every status, by group
        self._camera_statuses: list = []  # statuses of our cameras, not yet done
        self._declared: set = set()  # devices with a declared stream in the open run

    # called from the device's thread
    def failed(self, device: Any, error: BaseException) -> None:
        if device not in self._cameras:
            return
        with self._lock:
            self._pending = error  # until it is thrown into the plan
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    def _armed(self) -> bool:
        return any(camera.acquiring for camera in list(self._cameras)) or any(
            not status.done for status in self._camera_statuses
        )

    def _race(self, awaitable_factory: Callable[[], Any]) -> Callable[[], Any]:
        """An awaitable factory for ``wait_for``: the plan's own wait, or a stall, or one
        of the plan's camera statuses failing (the RunEngine then raises it)."""

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

    def _watch(self, status: Any) -> None:
        """A camera status of the plan: a failure ends any race at once."""
        self._camera_statuses = [s for s in self._camera_statuses if not s.done]
        self._camera_statuses.append(status)
        status.add_callback(lambda s: None if s.success else self._wake())

    def _group_done(self, group: Any) -> Callable[[], Any]:
        statuses = list(self._groups.get(group, ()))

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

    def _undelivered_stall(self) -> BaseException | None:
        """A camera failure not yet thrown into the plan (each is thrown once)."""
        with self._lock:
            error, self._pending = self._pending, None
        if error is not None:
            error.delivered = True  # the camera need not fail a later complete() with it
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
                camera = msg.obj is not None and _is_camera(msg.obj)
                if camera:
                    self._cameras.add(msg.obj)
                if msg.command == "close_run":
                    msg = self._with_losses(msg)
                if msg.command == "open_run":
                    self._declared.clear()
                if msg.command == "declare_stream":
                    self._declared.update(msg.args)
                if msg.command == "kickoff" and camera and msg.obj not in self._declared:
                    # bluesky takes a fly scan's frames in bulk only from a declared stream
                    self._declared.add(msg.obj)
                    yield Msg("declare_stream", None, msg.obj, collect=True, name=msg.obj.name)
                try:
                    if self._guards(msg):
                        response = yield from self._guarded(msg)
                    else:
                        response = yield msg
                    if msg.command in _STATUS_COMMANDS and hasattr(response, "add_callback"):
                        group = msg.kwargs.get("group")
                        pending = [s for s in self._groups[group] if not s.done]
                        self._groups[group] = [*pending, response]
                        if camera:
                            self._watch(response)
                    if msg.command == "wait":
                        self._groups.pop(msg.kwargs.get("group"), None)
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

    def _with_losses(self, msg: Msg) -> Msg:
        """A run that ends well but lost frames says so in its stop document's reason."""
        if msg.kwargs.get("reason") or msg.kwargs.get("exit_status") not in (None, "success"):
            return msg
        lines = [
            line
            for camera in list(self._cameras)
            if hasattr(camera, "loss_summary") and (line := camera.loss_summary())
        ]
        if not lines:
            return msg
        return msg._replace(kwargs={**msg.kwargs, "reason": " | ".join(lines)})

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
            if msg.kwargs.get("timeout") or msg.kwargs.get("move_on"):
                return False  # a wait with its own timeout keeps the RunEngine's semantics
            group = msg.kwargs.get("group")
            ours = any(s in self._camera_statuses for s in self._groups.get(group, ()))
            # a wait on the camera is the RunEngine's (progress bars; the status fails
            # with the stall); a wait on anything else is raced against a stall
            return not ours and self._armed()
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
        return (yield msg)  # all done now: the RunEngine's own bookkeeping


_STATUS_COMMANDS = frozenset({"set", "trigger", "kickoff", "complete"})


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
