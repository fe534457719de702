"""The two details of bluesky the ophyd face leans on to follow its run (see
``acquisition/_runs.py``; the ophyd-async face's are in ``test_async_detector.py``)."""

from __future__ import annotations

import bluesky.plan_stubs as bps
from bluesky import RunEngine

from ophyd_pvcam.device import current_run


class Probe:
    """A flyer-shaped object that records what it learns about the run calling it."""

    name = "probe"
    parent = None

    def __init__(self):
        self.seen = []
        self.ended = []

    def kickoff(self):
        run = current_run()
        self.seen.append(run)
        run.when_ends(lambda: self.ended.append(run.engine.state))
        return _done()

    def complete(self):
        return _done()


def _done():
    from ophyd.status import Status

    status = Status()
    status.set_finished()
    return status


def test_a_device_finds_the_run_engine_and_run_calling_it_and_hears_the_run_end():
    engine = RunEngine({})
    starts = []
    engine.subscribe(lambda name, doc: starts.append(doc["uid"]), "start")
    probe = Probe()

    def plan():
        yield from bps.open_run()
        yield from bps.kickoff(probe, wait=True)
        assert probe.ended == []  # not yet: the run is open
        yield from bps.close_run()

    engine(plan())
    (run,) = probe.seen
    assert run.engine is engine and run.uid == starts[0]
    assert probe.ended == ["running"]  # told at the stop document, before RE() returned


def test_outside_a_run_engine_there_is_no_run():
    assert current_run() is None
