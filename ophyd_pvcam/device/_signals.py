"""The few kinds of ophyd signal the camera device needs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from ophyd import Signal, SignalRO
from ophyd.status import DeviceStatus, Status


class SettingChecker(Protocol):
    """Checks a setting's new value (raising ``ValueError`` that names the setting, the
    value and what is allowed) and is told once it is stored."""

    def check(self, attr: str, value: Any) -> Any: ...
    def changed(self, attr: str) -> None: ...


class SettingSignal(Signal):
    """A camera setting in engineering units, checked when set, before anything starts.

    The device injects its checker (``signal.checker = ...``); ``set`` checks in the
    caller's thread and stores at once (a setting is not a motion: there is nothing
    to wait for), returning a finished status.
    """

    checker: SettingChecker | None = None

    def put(self, value, *, force: bool = False, **kwargs):
        if force or self.checker is None:  # the device itself, storing a value it computed
            super().put(value, force=True, **kwargs)
            return
        value = self.checker.check(self.attr_name, value)
        super().put(value, force=True, **kwargs)
        self.checker.changed(self.attr_name)

    def set(self, value, **kwargs):
        self.put(value)
        status = Status(self)
        status.set_finished()
        return status


class ReadOnlySignal(SignalRO):
    """A value the device reports (frames acquired, stalled, identity...)."""

    def update(self, value: Any, timestamp: float | None = None) -> None:
        Signal.put(self, value, force=True, timestamp=timestamp)

    def describe(self):
        description = super().describe()
        if isinstance(self._readback, bool):  # ophyd would call it an integer
            description[self.name].update(dtype="boolean", dtype_numpy=np.dtype(bool).str)
        return description


class LiveSignal(ReadOnlySignal):
    """A read-only value fetched on every read (temperature: the device decides whether
    that means asking the camera or the last value it read, with its time)."""

    def __init__(
        self, *args, reader: Callable[[], tuple[Any, float | None]] | None = None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.reader = reader

    def get(self, **kwargs):
        if self.reader is not None:
            value, timestamp = self.reader()
            self.update(value, timestamp)
        return super().get(**kwargs)


class ImageSignal(ReadOnlySignal):
    """Holds the datum id of the frames of the last point; describes the image."""

    describer: Callable[[], dict[str, Any]] | None = None

    def describe(self):
        description = super().describe()
        if self.describer is not None:
            description[self.name].update(self.describer())
        return description


class CameraStatus(DeviceStatus):
    """A status of the camera's own making: when it fails, the camera has already
    stopped itself (ophyd's default would call ``device.stop()`` from the thread
    reporting the failure)."""

    def _handle_failure(self) -> None:
        pass

    def _settled(self) -> None:
        """ophyd would tell watchers "0 % done" as the status ends; nothing to add."""

    def __str__(self) -> str:
        """A failed status reads as its failure.  bluesky raises ``FailedStatus(status)``
        into the plan and writes ``str()`` of that as the run's reason: without this, a
        plain RunEngine's stop document says ``ProgressStatus(device=cam, done=True,
        success=False)`` and the stall's diagnosis exists only in a chained traceback."""
        if self.done and not self.success:
            error = self.exception(timeout=0)
            if error is not None:
                return str(error)
        return super().__str__()


class ProgressStatus(CameraStatus):
    """A status that reports frames done to its watchers (bluesky progress bars)."""

    def __init__(self, device, target: int | None, name: str, **kwargs):
        super().__init__(device, **kwargs)
        self._target = target
        self._progress_name = name
        self._started_at = time.time()
        self._watch_lock = threading.Lock()
        self.current = 0

    def watch(self, func):
        with self._watch_lock:
            self._watchers.append(func)
        self._notify(func)

    def _settled(self) -> None:
        for func in list(self._watchers):  # the bar's last state: where it really ended
            self._notify(func)

    def update(self, current: int) -> None:
        self.current = current
        with self._watch_lock:
            watchers = list(self._watchers)
        for func in watchers:
            self._notify(func)

    def _notify(self, func) -> None:
        target, elapsed = self._target, time.time() - self._started_at
        fraction = remaining = None
        if target:
            fraction = max(0.0, 1.0 - self.current / target)
            if self.current:
                remaining = elapsed / self.current * (target - self.current)
        func(
            name=self._progress_name,
            current=self.current,
            initial=0,
            target=target,
            unit="frames",
            precision=0,
            fraction=fraction,
            time_elapsed=elapsed,
            time_remaining=remaining,
        )
