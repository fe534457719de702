"""The few kinds of ophyd signal the camera device needs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ophyd import Signal, SignalRO
from ophyd.status import DeviceStatus


class SettingSignal(Signal):
    """A camera setting in engineering units, checked by the device when set.

    The device's ``_check_setting(attr, value)`` returns the value to store or
    raises ``ValueError`` naming the value and what is allowed, so a bad value
    fails at ``set()``/``put()`` time, before anything starts.
    """

    def put(self, value, *, force: bool = False, **kwargs):
        if force:  # the device itself, storing a value it computed
            super().put(value, force=True, **kwargs)
            return
        value = self.parent._check_setting(self.attr_name, value)
        super().put(value, force=True, **kwargs)
        self.parent._setting_changed(self.attr_name)

    def set(self, value, **kwargs):
        value = self.parent._check_setting(self.attr_name, value)  # fail here, not in a thread
        return super().set(value, **kwargs)


class ReadOnlySignal(SignalRO):
    """A value the device reports (frames acquired, stalled, identity...)."""

    def update(self, value: Any) -> None:
        Signal.put(self, value, force=True)


class LiveSignal(SignalRO):
    """A read-only value fetched from the camera on every read (temperature)."""

    def __init__(self, *args, reader: Callable[[Any], Any], **kwargs):
        super().__init__(*args, **kwargs)
        self._reader = reader

    def get(self, **kwargs):
        value = self._reader(self.parent)
        Signal.put(self, value, force=True)
        return value


class ImageSignal(Signal):
    """Holds the datum id of the frames of the last point; describes the image."""

    def describe(self):
        description = super().describe()
        description[self.name].update(self.parent._image_description())
        return description


class CameraStatus(DeviceStatus):
    """A status of the camera's own making: when it fails, the camera has already
    stopped itself (ophyd's default would call ``device.stop()`` from the thread
    reporting the failure)."""

    def _handle_failure(self) -> None:
        pass


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
