"""Which Bluesky run is driving the camera, and a way to hear that it has ended.

bluesky gives a device no signal that the run it serves has ended: the RunEngine
calls ``stop()`` on exit only on objects it ``set``, and collects a flyer only if
nothing collected it since its kickoff.  A camera left running by an aborted plan
fills the disk.  So when a session starts, the device finds the RunEngine that is
calling it (its plan runs as an asyncio task whose coroutine is ``RunEngine._run``)
and subscribes, once per RunEngine, to its documents; the device's sessions are
then ended at the stop document, before the RunEngine returns, whatever the plan did.
The same subscription counts the Datums the run really emitted (what it references),
and the same lookup gives the open run's uid, which names the frame files.

Both lean on two details of bluesky 1.15 (pinned in pyproject): the task's
coroutine, and ``RunEngine._run_start_uids``.  ``tests/unit/test_runs.py`` fails if
either changes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """The RunEngine calling us, and the uid of its open run (None if unknown)."""

    engine: Any
    uid: str | None

    @property
    def ending(self) -> bool:
        """The RunEngine is tearing the plan down (abort, stop, halt)."""
        return getattr(self.engine, "state", "running") in ("aborting", "stopping", "halting")

    def when_ends(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when this run's stop document is emitted."""
        when_run_ends(self, callback)

    def datums_emitted(self, resource: str) -> int | None:
        """Datums of ``resource`` this RunEngine has emitted (None: nor the Resource).
        Counted from when a session of this RunEngine first asked for its run's end."""
        return _hub(self.engine).datums_emitted(resource)


def current_run() -> RunContext | None:
    """The RunEngine whose plan is calling us right now, or None (a script, a test)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        return None
    if task is None:
        return None
    frame = getattr(task.get_coro(), "cr_frame", None)
    engine = frame.f_locals.get("self") if frame is not None else None
    from bluesky import RunEngine

    if not isinstance(engine, RunEngine):
        return None
    uids = getattr(engine, "_run_start_uids", None) or [None]
    return RunContext(engine, uids[-1])


class _Hub:
    """One per RunEngine, subscribed to its documents: tells waiting sessions when their
    run stops, and counts the Resources and Datums the RunEngine really emitted.

    bluesky takes a device's Datum when it reads the device and emits it only when it
    saves the event: a pause or an abort between the two drops it.  What the run
    references is what was emitted, so that is what a session keeps (and where a step
    scan's next point goes after a pause rewound the plan)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str | None, list[Callable[[], None]]] = {}
        self._datums: dict[str, int] = {}  # resource uid -> datums emitted
        self._resources_of: dict[str | None, list[str]] = {}  # run uid -> its resources

    def add(self, uid: str | None, callback: Callable[[], None]) -> None:
        with self._lock:
            self._waiting.setdefault(uid, []).append(callback)

    def datums_emitted(self, resource: str) -> int | None:
        with self._lock:
            return self._datums.get(resource)

    def __call__(self, name: str, doc: dict) -> None:
        if name == "resource":
            with self._lock:
                self._datums.setdefault(doc["uid"], 0)
                self._resources_of.setdefault(doc.get("run_start"), []).append(doc["uid"])
        elif name == "datum":
            with self._lock:
                if doc["resource"] in self._datums:
                    self._datums[doc["resource"]] += 1
        elif name == "datum_page":
            with self._lock:
                if doc["resource"] in self._datums:
                    self._datums[doc["resource"]] += len(doc["datum_id"])
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
                self._datums.pop(resource, None)


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def when_run_ends(run: RunContext, callback: Callable[[], None]) -> None:
    """Call ``callback()`` when ``run``'s stop document is emitted (in the RunEngine's
    thread, before the RunEngine returns)."""
    _hub(run.engine).add(run.uid, callback)


def _hub(engine: Any) -> _Hub:
    with _hubs_lock:
        hub = _hubs.get(engine)
        if hub is None:
            hub = _hubs[engine] = _Hub()
            engine.subscribe(hub, "all")
        return hub
