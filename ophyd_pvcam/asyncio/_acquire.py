"""Acquire logic: start, wait and stop through the acquisition core, never around it.

Each start is one call of :class:`~ophyd_pvcam.acquisition.CameraController` (a step
point's ``trigger``, a fly scan's ``kickoff`` and ``complete``), handed a
:class:`LoopProgress` the core finishes exactly once; the owner thread makes every
camera call.  The controller's calls may block while the owner applies a setup, so
they run in a worker thread, with the run found first on the event loop (the core
asks for it when a session opens its file).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ophyd_async.core import DetectorAcquireLogic

from ophyd_pvcam.acquisition import CameraController, EngineRun, Settings, engine_run

from ._status import LoopProgress

log = logging.getLogger(__name__)


def find_run() -> EngineRun | None:
    """The RunEngine whose plan runs on this event loop, with its open run (None: no
    RunEngine, as in a script awaiting the detector itself).  ophyd-async runs each
    device method as a task of its own, so the RunEngine's is not the caller's task
    (as it is for the ophyd face): it is found among the loop's tasks."""
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no running loop in this thread
        return None
    from bluesky import RunEngine

    return engine_run(RunEngine, tasks)


class PvcamAcquireLogic(DetectorAcquireLogic):
    """Stage, trigger, kickoff, complete and unstage of the core, for one detector."""

    def __init__(self, controller: CameraController, set_run: Callable[[EngineRun | None], None]):
        self._controller = controller
        self._set_run = set_run
        self._staged = False  # the core is staged for step points

    async def ensure_ready(self) -> None:
        """stage(): whatever a previous plan left open ends (its file closes)."""
        await self.ensure_stopped()

    async def start_acquiring(self) -> None:
        """Not used to start anything: ``prepare`` calls it for external triggers, but
        the core arms the camera when a point is triggered or a fly scan kicked off (the
        session and its file open then, inside the run), so nothing happens here."""

    async def wait_for_idle(self) -> None:
        """The core's statuses finish only once their frames are on disk and, for the
        last, the camera has stopped: there is nothing more to wait for."""

    async def ensure_stopped(self) -> None:
        """unstage(): the camera stops and a step scan's file closes with exactly the
        points the run emitted.  A fly scan's file closes at its final collect or at
        the run's stop document (frames on disk then are still collected: closing it
        here would cut them off the run); outside a RunEngine, here."""
        controller = self._controller
        self._staged = False
        await asyncio.to_thread(controller.unstage)
        fly = controller.fly
        if fly is not None and not fly.closed:
            await asyncio.to_thread(fly.stop_camera)  # waits for the camera: off the loop
            if fly.ctx.run is None:
                await asyncio.to_thread(fly.close, "unstaged")

    async def start_point(self, settings: Settings) -> LoopProgress:
        """One step point: ``frames_per_point`` fresh frames, each exposed after this
        call; the progress finishes when they are on disk."""
        controller = self._controller
        self._set_run(find_run())
        progress = LoopProgress(asyncio.get_running_loop())

        def trigger() -> None:
            if not self._staged:
                controller.stage(settings)
                self._staged = True
            controller.trigger(settings, progress)

        await asyncio.to_thread(trigger)
        return progress

    async def kickoff(self, settings: Settings) -> LoopProgress:
        """A fly scan of ``settings.num_frames`` frames (0: until complete); the
        progress finishes once the camera runs."""
        controller = self._controller
        self._set_run(find_run())
        if self._staged:  # a step scan's session of this stage ends before a fly scan
            self._staged = False
            await asyncio.to_thread(controller.unstage)
        fly = controller.fly
        if fly is not None and not fly.closed and fly.drained:
            # the previous fly scan is over: its file closes with the rows handed over
            await asyncio.to_thread(fly.close, "a new fly scan started")
        # declared before the kickoff: the core hands the frames over as
        # StreamResource/StreamDatum documents, as this face describes them
        controller.describe_collect_mode()
        progress = LoopProgress(asyncio.get_running_loop())
        await asyncio.to_thread(controller.kickoff, settings, progress)
        return progress

    def complete(self) -> LoopProgress:
        """The running fly scan's end: finished once every frame is on disk."""
        progress = LoopProgress(asyncio.get_running_loop())
        self._controller.complete(progress)
        return progress
