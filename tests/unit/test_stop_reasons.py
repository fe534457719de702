"""A plain RunEngine (no stall guard) records why a camera failed a run.

bluesky writes ``str(FailedStatus(status))`` as a failed run's reason; the camera's
statuses read as their failure, so the stop document carries the diagnosis itself
(issue 19: it said ``ProgressStatus(device=cam, done=True, success=False)``).
"""

from __future__ import annotations

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import pytest
from bluesky import RunEngine
from bluesky.utils import FailedStatus

from ophyd_pvcam import PrimeBSI
from ophyd_pvcam.testing import FakeBackend


@pytest.fixture
def fake():
    return FakeBackend(period_s=0.001)


@pytest.fixture
def cam(fake, tmp_path):
    device = PrimeBSI("cam", backend=lambda: fake, write_path=tmp_path)
    device.roi.put((0, 0, 16, 8))
    device.exposure_time.put(0.001)
    device.stall_timeout.put(0.3)
    yield device
    device.close()


def fly_plan(cam):
    yield from bps.open_run()
    yield from bps.kickoff(cam, wait=True)
    yield from bps.complete(cam, wait=True)
    yield from bps.collect(cam)
    yield from bps.close_run()


@pytest.mark.parametrize(
    ("fate", "reason"),
    [
        ("stall", "cam: frames stopped during a"),
        ("fail", "cam: the camera reported a readout failure after frame"),
        ("lost", "cam: the camera disconnected after frame"),
    ],
)
@pytest.mark.parametrize("plan", ["count", "fly"])
def test_a_plain_run_engine_records_the_cameras_own_reason(cam, fake, fate, reason, plan):
    RE = RunEngine({})
    stops = []
    RE.subscribe(lambda name, doc: stops.append(doc), "stop")
    fake.script[4] = fate
    if plan == "count":
        run = bp.count([cam], num=10)
    else:
        cam.num_frames.put(20)
        run = fly_plan(cam)
    with pytest.raises(FailedStatus) as raised:
        RE(run)
    assert [stop["exit_status"] for stop in stops] == ["fail"]
    assert stops[0]["reason"].startswith(reason), stops[0]["reason"]
    assert "Status(" not in stops[0]["reason"]
    assert str(raised.value).startswith(reason)
    assert not fake.streaming  # the camera stopped before control returned
