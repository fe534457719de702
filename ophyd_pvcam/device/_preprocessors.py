"""RunEngine preprocessors of the ophyd face, in one place.

- :class:`StallGuard` makes the *plan* fail when a camera it uses stalls, even
  when the plan is not waiting on the camera: it races every ``sleep`` and
  ``wait`` of the plan against the stall and throws the
  :class:`~ophyd_pvcam.errors.FrameStallError` into the plan the moment it
  happens.  The run then ends with exit status ``fail`` and the diagnosis as its
  reason.
- :class:`FramesFolderCheck` refuses, before anything acquires, a camera that
  writes where the catalog cannot read.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import defaultdict
from collections.abc import Callable, Generator
from typing import Any, Protocol, TypeGuard

from bluesky.preprocessors import msg_mutator
from bluesky.utils import FailedStatus, Msg

from ophyd_pvcam.catalog import check_frames_folder
from ophyd_pvcam.errors import mark_delivered

log = logging.getLogger(__name__)


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
      :class:`~ophyd_pvcam.errors.FrameStallError`, and the guard re-raises that error in place of
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


class _Camera(Protocol):
    """What the guard asks of a camera of ours (known by these attributes)."""

    @property
    def name(self) -> str: ...
    @property
    def acquiring(self) -> bool: ...
    @property
    def stall_error(self) -> BaseException | None: ...


def _is_camera(obj: Any) -> TypeGuard[_Camera]:
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
            mark_delivered(error)  # the camera need not fail a later complete() with it
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
                obj = msg.obj
                camera = _is_camera(obj)
                if camera:
                    self._cameras.add(obj)
                if msg.command == "close_run":
                    msg = self._with_losses(msg)
                if msg.command == "open_run":
                    self._declared.clear()
                if msg.command == "declare_stream":
                    self._declared.update(msg.args)
                if msg.command == "kickoff" and camera and obj not in self._declared:
                    # bluesky takes a fly scan's frames in bulk only from a declared stream
                    self._declared.add(obj)
                    yield Msg("declare_stream", None, obj, collect=True, name=obj.name)
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


class FramesFolderCheck:
    """RunEngine preprocessor: before a device with a ``write_path`` is staged, kicked
    off or triggered, check that the catalog can read what it will write
    (``RE.preprocessors.append(FramesFolderCheck(catalog))``).  A camera writing
    where a catalog server cannot read fails before acquiring, with one line."""

    COMMANDS = ("stage", "kickoff", "trigger")

    def __init__(self, catalog: Any):
        self.catalog = catalog
        self._checked: set[tuple[int, str]] = set()

    def __call__(self, plan):
        def check(msg):
            folder = getattr(msg.obj, "write_path", None)
            if msg.command in self.COMMANDS and folder is not None:
                key = (id(msg.obj), str(folder))
                if key not in self._checked:
                    check_frames_folder(self.catalog, folder, device=getattr(msg.obj, "name", ""))
                    self._checked.add(key)
            return msg

        return (yield from msg_mutator(plan, check))
