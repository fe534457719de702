"""What a person watches moves while frames stream (issue 19: a 1000-frame fly showed
0 frames acquired until its end).  The counts follow the ledger several times a
second, from the pulse's thread, with no call to the camera."""

from __future__ import annotations

import threading

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import pytest
from bluesky import RunEngine

from ophyd_pvcam import PrimeBSI
from ophyd_pvcam.testing import FakeBackend

DEADLINE = 30.0


@pytest.fixture
def fake():
    return FakeBackend(period_s=0.002)  # 500 frames a second: a 1000-frame fly takes 2 s


@pytest.fixture
def cam(fake, tmp_path):
    device = PrimeBSI("cam", backend=lambda: fake, write_path=tmp_path)
    device.roi.put((0, 0, 16, 8))
    device.exposure_time.put(0.002)
    yield device
    device.close()


def test_counts_follow_a_fly_while_it_streams(cam, fake):
    seen: list[tuple[int, str]] = []  # (frames acquired, the thread that reported them)
    cam.frames_acquired.subscribe(
        lambda value, **_: seen.append((value, threading.current_thread().name)), run=False
    )
    fake.script.update({n: "drop" for n in range(100, 1000, 100)})
    cam.num_frames.put(1000)
    cam.kickoff().wait(DEADLINE)
    cam.complete().wait(DEADLINE)
    values = [value for value, _ in seen]
    during = [value for value in values if 0 < value < 991]
    assert len(set(during)) >= 5, values  # 2 s of streaming at 10 reports a second
    assert values == sorted(values)  # never backwards
    assert values[-1] == 991  # 1000 numbered, 9 dropped on the way
    assert {thread for _, thread in seen if 0 < _ < 991} == {"cam-pulse"}
    assert cam.dropped_frames.get() == 9
    list(cam.collect_pages())


def test_monitoring_the_count_during_a_fly_records_it_rising(cam):
    RE = RunEngine({})
    events = []
    RE.subscribe(lambda name, doc: events.append(doc) if name == "event" else None)
    cam.num_frames.put(1000)

    def plan():
        yield from bps.kickoff(cam, wait=True)
        yield from bps.complete(cam, wait=True)
        yield from bps.collect(cam)

    RE(bpp.monitor_during_wrapper(bpp.run_wrapper(plan()), [cam.frames_acquired]))
    counts = [doc["data"]["cam_frames_acquired"] for doc in events
              if "cam_frames_acquired" in doc["data"]]  # fmt: skip
    assert len([c for c in counts if 0 < c < 1000]) >= 5, counts
    assert counts == sorted(counts)
