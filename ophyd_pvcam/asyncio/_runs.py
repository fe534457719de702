"""Which run the camera's frames belong to, on this face: a RunLink over the RunEngine.

The acquisition core names a file by its run, ends a session when the run ends, and
keeps in the file exactly the rows the run references (docs/decisions/0006, 0009).
On this face the run references rows through StreamDatums, which the RunEngine takes
when it reads the camera and emits only when it saves the event (a pause or an abort
between the two drops them).  So :class:`EngineRun` counts what the RunEngine really
emitted, from a subscription made once per RunEngine, and answers the core from that.

ophyd-async runs each device method as a task of its own, so the RunEngine is not the
caller's coroutine (as it is for the ophyd face); it is found among the event loop's
tasks, as the one whose coroutine is ``RunEngine._run`` (bluesky 1.15, pinned).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class EngineRun:
    """A :class:`~ophyd_pvcam.acquisition.RunLink` for one session of this face.

    A step session asks how many of its points the run emitted, naming its own
    Resource (which this face never emits); the answer is the points covered by the
    StreamDatums of the image StreamResource this face made for that session's file
    (``image_resource``, set when it is composed)."""

    def __init__(self, engine: Any, uid: str | None):
        self.engine = engine
        self.uid = uid
        self.image_resource: str | None = None

    @property
    def ending(self) -> bool:
        return getattr(self.engine, "state", "running") in ("aborting", "stopping", "halting")

    def when_ends(self, callback: Callable[[], None]) -> None:
        _hub(self.engine).add(self.uid, callback)

    def datums_emitted(self, resource: str) -> int | None:
        if self.image_resource is None:
            return None
        return _hub(self.engine).indices_emitted(self.image_resource)


def find_run() -> EngineRun | None:
    """The RunEngine whose plan runs on this event loop, with its open run (None: no
    RunEngine, as in a script awaiting the detector itself)."""
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no running loop in this thread
        return None
    from bluesky import RunEngine

    for task in tasks:
        frame = getattr(task.get_coro(), "cr_frame", None)
        engine = frame.f_locals.get("self") if frame is not None else None
        if isinstance(engine, RunEngine):
            uids = getattr(engine, "_run_start_uids", None) or [None]
            return EngineRun(engine, uids[-1])
    return None


class _Hub:
    """One per RunEngine: the StreamDatum indices it emitted per StreamResource, and
    the sessions waiting for their run's stop document."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str | None, list[Callable[[], None]]] = {}
        self._emitted: dict[str, int] = {}  # stream resource uid -> indices emitted

    def add(self, uid: str | None, callback: Callable[[], None]) -> None:
        with self._lock:
            self._waiting.setdefault(uid, []).append(callback)

    def indices_emitted(self, resource: str) -> int | None:
        with self._lock:
            return self._emitted.get(resource)

    def __call__(self, name: str, doc: dict) -> None:
        if name == "stream_resource":
            with self._lock:
                self._emitted.setdefault(doc["uid"], 0)
        elif name == "stream_datum":
            with self._lock:
                resource = doc["stream_resource"]
                self._emitted[resource] = max(
                    self._emitted.get(resource, 0), doc["indices"]["stop"]
                )
        elif name == "stop":
            run = doc.get("run_start")
            with self._lock:
                callbacks = self._waiting.pop(run, []) + self._waiting.pop(None, [])
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # never break the RunEngine's document stream
                    log.exception("ending a camera session at the end of its run failed")


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def _hub(engine: Any) -> _Hub:
    with _hubs_lock:
        hub = _hubs.get(engine)
        if hub is None:
            hub = _hubs[engine] = _Hub()
            engine.subscribe(hub, "all")
        return hub
