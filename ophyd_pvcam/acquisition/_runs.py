"""Which run the camera's frames belong to: a :class:`RunLink` over a RunEngine, for
both faces.

bluesky gives a device no signal that the run it serves has ended: the RunEngine
calls ``stop()`` on exit only on objects it ``set``, and collects a flyer only if
nothing collected it since its kickoff.  A camera left running by an aborted plan
fills the disk.  So when a session starts, the face finds the RunEngine driving it
(:func:`engine_run`) and the session subscribes, once per RunEngine, to its documents
(:class:`_Hub`); the sessions are then ended at the stop document, before the
RunEngine returns, whatever the plan did.  The same subscription counts what the run
really references: the Datums (ophyd face) and the StreamDatum indices (ophyd-async
face) the RunEngine emitted -- it takes them when it reads the device and emits them
only when it saves the event, so a pause or an abort between the two drops them
(docs/decisions/0006, 0009, 0011).

Nothing here imports bluesky: the faces hand in the RunEngine's class.  Two details of
bluesky 1.15 (pinned) are leaned on, here only: a RunEngine runs its plan as an
asyncio task whose coroutine is a method of the RunEngine (``RunEngine._run``), and
``RunEngine._run_start_uids`` holds the open run's uid.  ``tests/unit/test_runs.py``
and ``tests/unit/test_async_detector.py`` fail if either changes.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)


class EngineRun:
    """A :class:`~ophyd_pvcam.acquisition.RunLink` over a RunEngine: ``engine`` and
    the uid of its open run (None if unknown).

    ``image_resource``: the StreamResource a face references a step session's frames
    through (the ophyd-async face; it never emits the session's own Resource), so the
    session's question about its Resource is answered from that StreamResource."""

    def __init__(self, engine: Any, uid: str | None):
        self.engine = engine
        self.uid = uid
        self.image_resource: str | None = None

    @property
    def ending(self) -> bool:
        """The RunEngine is tearing the plan down (abort, stop, halt)."""
        return getattr(self.engine, "state", "running") in ("aborting", "stopping", "halting")

    def when_ends(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when this run's stop document is emitted (in the
        RunEngine's thread, before the RunEngine returns)."""
        _hub(self.engine).add(self.uid, callback)

    def datums_emitted(self, resource: str) -> int | None:
        """Datums of ``resource`` (or indices of the ``image_resource`` StreamResource)
        the RunEngine has emitted; None: not even the (Stream)Resource.  Counted from
        when a session of this RunEngine first asked for its run's end."""
        return _hub(self.engine).emitted(self.image_resource or resource)


def engine_run(engine_type: type, tasks: Iterable[Any]) -> EngineRun | None:
    """The run of the RunEngine (an ``engine_type``) whose plan is one of ``tasks``
    (asyncio tasks); None if none is (a script, a test)."""
    for task in tasks:
        frame = getattr(task.get_coro(), "cr_frame", None)
        engine = frame.f_locals.get("self") if frame is not None else None
        if isinstance(engine, engine_type):
            uids = getattr(engine, "_run_start_uids", None) or [None]
            return EngineRun(engine, uids[-1])
    return None


class _Hub:
    """One per RunEngine, subscribed to its documents: tells waiting sessions when their
    run stops, and counts what the RunEngine really emitted -- Datums per Resource,
    StreamDatum indices per StreamResource -- for the runs still open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str | None, list[Callable[[], None]]] = {}
        self._emitted: dict[str, int] = {}  # (stream) resource uid -> datums / indices
        self._resources_of: dict[str | None, list[str]] = {}  # run uid -> its resources

    def add(self, uid: str | None, callback: Callable[[], None]) -> None:
        with self._lock:
            self._waiting.setdefault(uid, []).append(callback)

    def emitted(self, resource: str) -> int | None:
        with self._lock:
            return self._emitted.get(resource)

    def __call__(self, name: str, doc: dict) -> None:
        if name in ("resource", "stream_resource"):
            with self._lock:
                self._emitted.setdefault(doc["uid"], 0)
                self._resources_of.setdefault(doc.get("run_start"), []).append(doc["uid"])
        elif name in ("datum", "datum_page"):
            with self._lock:
                if doc["resource"] in self._emitted:
                    many = doc["datum_id"]
                    self._emitted[doc["resource"]] += len(many) if name == "datum_page" else 1
        elif name == "stream_datum":
            with self._lock:
                resource = doc["stream_resource"]
                if resource in self._emitted:
                    stop = doc["indices"]["stop"]
                    self._emitted[resource] = max(self._emitted[resource], stop)
        elif name == "stop":
            self._stopped(doc.get("run_start"))

    def _stopped(self, run: str | None) -> None:
        with self._lock:
            callbacks = self._waiting.pop(run, [])
            callbacks += self._waiting.pop(None, [])  # sessions that never learned their run
        for callback in callbacks:
            try:
                callback()
            except Exception:  # never break the RunEngine's document stream
                log.exception("ending a camera session at the end of its run failed")
        with self._lock:  # the sessions have closed: their counts are no longer asked for
            for resource in self._resources_of.pop(run, []):
                self._emitted.pop(resource, None)


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def _hub(engine: Any) -> _Hub:
    with _hubs_lock:
        hub = _hubs.get(engine)
        if hub is None:
            hub = _hubs[engine] = _Hub()
            engine.subscribe(hub, "all")
        return hub
