"""Which Bluesky run is calling the device: the ophyd face's lookup.

ophyd calls the device from the RunEngine's own task, so the run is found from the
current task (``acquisition.engine_run``, where the run link, the subscription that
hears the run's end and the count of what it references live, for both faces).
"""

from __future__ import annotations

import asyncio

from ophyd_pvcam.acquisition import EngineRun, engine_run


def current_run() -> EngineRun | None:
    """The RunEngine whose plan is calling us right now, with its open run; None
    outside one (a script, a test)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        return None
    if task is None:
        return None
    from bluesky import RunEngine

    return engine_run(RunEngine, [task])
