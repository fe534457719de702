"""Pause, resume and suspenders on a step scan, as a beamline does them (issue 19).

bluesky's contract: a pause stops what it can, and on resume the RunEngine redoes the
messages since the last checkpoint, so a point may be triggered again.  Whatever the
window the pause lands in, the run must then go on, end with success, reference
exactly the rows of its file (each point once, in order), keep frame times true,
and count every frame it did not keep, with the reason.  On the fake camera: the
windows are made deterministic with its script, not with timers.
"""

from __future__ import annotations

import json
import threading
import time

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.suspenders import SuspendFloor
from bluesky.utils import RunEngineInterrupted
from ophyd.sim import SynSignal

from ophyd_pvcam import PrimeBSI
from ophyd_pvcam.acquisition import INTERRUPTED, RETAKEN
from ophyd_pvcam.storage import DATA_PATH, record_path
from ophyd_pvcam.testing import FakeBackend

DEADLINE = 10.0
POINTS = 4
FRAMES_PER_POINT = 2


@pytest.fixture
def fake():
    return FakeBackend(period_s=0.002)


@pytest.fixture
def cam(fake, tmp_path):
    device = PrimeBSI("cam", backend=lambda: fake, write_path=tmp_path)
    device.roi.put((0, 0, 16, 8))
    device.exposure_time.put(0.002)
    device.frames_per_point.put(FRAMES_PER_POINT)
    device.stall_timeout.put(60)  # a held frame is a pause's window here, not a stall
    yield device
    device.close()


@pytest.fixture
def RE():
    engine = RunEngine({})
    engine.docs = []
    engine.subscribe(lambda name, doc: engine.docs.append((name, doc)))
    return engine


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    done = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE} s: {what}")
        done.wait(0.005)


def hold_frame(fake, number: int) -> None:
    """The camera makes no frame ``number`` (of any acquisition) until it is stopped:
    the point that wants it waits, mid-exposure."""
    fake.script[number] = "stall"


def when_held(fake, number: int, action) -> threading.Thread:
    """Do ``action()`` (in another thread, as a person or a suspender does) once frame
    ``number`` is being held."""

    def act():
        wait_until(lambda: number not in fake.script, f"frame {number} held")
        action()

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def check_run(RE, cam, points: int = POINTS) -> dict:
    """The run ended well and its file holds exactly what its events reference."""
    docs = RE.docs
    (stop,) = [doc for name, doc in docs if name == "stop"]
    assert stop["exit_status"] == "success", stop
    events = [doc for name, doc in docs if name == "event"]
    datums = {doc["datum_id"]: doc for name, doc in docs if name == "datum"}
    assert len(events) == points
    referenced = [datums[event["data"]["cam_image"]]["datum_kwargs"]["point_number"]
                  for event in events]  # fmt: skip
    assert referenced == list(range(points))  # each point once, in order
    with h5py.File(cam.last_file, "r") as f:
        assert f[DATA_PATH].shape[0] == points * FRAMES_PER_POINT
        times = f[record_path("frame_time")][()]
        lost = f[record_path("lost_frame_numbers")][()]
        reasons = f["entry"].attrs.get("lost_frames", "{}")
    assert np.all(np.diff(times) >= 0), times  # frame times never run backwards
    assert times[-1] <= time.time()
    assert not cam.acquiring
    return {"lost": list(lost), "reasons": reasons}


def test_a_pause_during_an_exposure_resumes_and_retakes_the_point(RE, cam, fake):
    hold_frame(fake, 3)  # point 1's first frame
    when_held(fake, 3, lambda: RE.request_pause(defer=False))
    with pytest.raises(RunEngineInterrupted):
        RE(bp.count([cam], num=POINTS))
    assert not cam.acquiring  # the camera stopped before control returned
    RE.resume()  # raised "cam: the run ended" before
    result = check_run(RE, cam)
    assert result["lost"] == []  # the held frame was never made: nothing acquired was lost
    # the next plan works in the same process
    RE.docs.clear()
    RE(bp.count([cam], num=POINTS))
    check_run(RE, cam)


def test_a_pause_after_a_frame_of_the_point_counts_that_frame(RE, cam, fake):
    hold_frame(fake, 4)  # point 1's second frame: its first (3) came
    when_held(fake, 4, lambda: RE.request_pause(defer=False))
    with pytest.raises(RunEngineInterrupted):
        RE(bp.count([cam], num=POINTS))
    RE.resume()
    result = check_run(RE, cam)
    assert result["lost"] == [3] and INTERRUPTED in result["reasons"]


def test_a_pause_between_reading_and_saving_a_point_retakes_it_in_its_rows(RE, cam):
    paused = []

    def plan():
        yield from bps.stage(cam)
        yield from bps.open_run()
        for point in range(POINTS):
            yield from bps.checkpoint()
            yield from bps.trigger(cam, group="t")
            yield from bps.wait("t")
            yield from bps.create("primary")
            yield from bps.read(cam)
            if point == 2 and not paused:
                paused.append(point)
                yield from bps.pause()  # the Datum was taken; the event is never saved
            yield from bps.save()
        yield from bps.close_run()
        yield from bps.unstage(cam)

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    RE.resume()
    result = check_run(RE, cam)  # read back, it had one more row than events (422)
    assert len(result["lost"]) == FRAMES_PER_POINT and RETAKEN in result["reasons"]


def test_a_pause_between_points_loses_nothing(RE, cam):
    def plan():
        yield from bps.stage(cam)
        yield from bps.open_run()
        for point in range(POINTS):
            yield from bps.checkpoint()
            if point == 2:
                yield from bps.pause()
            yield from bps.trigger_and_read([cam])
        yield from bps.close_run()
        yield from bps.unstage(cam)

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    RE.resume()
    assert check_run(RE, cam)["lost"] == []


def test_a_beam_dump_suspends_the_scan_and_it_resumes_by_itself(RE, cam, fake):
    beam = SynSignal(name="beam", func=lambda: 1.0)
    beam.put(1.0)
    RE.install_suspender(SuspendFloor(beam, 0.5, resume_thresh=0.8))
    hold_frame(fake, 5)  # during point 2

    def dump_and_refill():
        beam.put(0.0)  # the beam is lost: the RunEngine suspends the plan
        wait_until(lambda: RE.state == "paused" or not cam.acquiring, "the suspension")
        beam.put(1.0)  # back: it resumes by itself

    when_held(fake, 5, dump_and_refill)
    RE(bp.count([cam], num=POINTS))  # under the suspender, this raised "the run ended"
    check_run(RE, cam)


def test_aborting_a_paused_scan_keeps_what_the_run_references(RE, cam, fake):
    hold_frame(fake, 5)
    when_held(fake, 5, lambda: RE.request_pause(defer=False))
    with pytest.raises(RunEngineInterrupted):
        RE(bp.count([cam], num=POINTS))
    RE.abort("enough")
    (stop,) = [doc for name, doc in RE.docs if name == "stop"]
    assert stop["exit_status"] == "abort"
    events = [doc for name, doc in RE.docs if name == "event"]
    with h5py.File(cam.last_file, "r") as f:
        assert f[DATA_PATH].shape[0] == len(events) * FRAMES_PER_POINT == 2 * FRAMES_PER_POINT
    RE.docs.clear()
    RE(bp.count([cam], num=2))  # the next plan works
    check_run(RE, cam, points=2)


# ---- fly scans ------------------------------------------------------------------------------

FLY_FRAMES = 300


def pause_after(RE, fake, frames: int) -> threading.Thread:
    """Pause the RunEngine (as Ctrl-C does) once the camera has made ``frames`` frames."""

    def act():
        wait_until(lambda: fake.frames_made >= frames, f"{frames} frames")
        RE.request_pause(defer=False)

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def check_fly(RE, cam, frames: int = FLY_FRAMES, paused: bool = True) -> None:
    """The fly ended well, in one run and one file, every frame once, times true, and
    a pause recorded as a pause: nothing counted lost."""
    docs = RE.docs
    (stop,) = [doc for name, doc in docs if name == "stop"]
    assert stop["exit_status"] == "success", stop
    numbers = [n for name, doc in docs if name in ("event", "event_page")
               for n in np.atleast_1d(doc["data"].get("cam_frame_number", []))]  # fmt: skip
    assert len(numbers) == frames
    with h5py.File(cam.last_file, "r") as f:
        assert f[DATA_PATH].shape[0] == frames
        times = f[record_path("frame_time")][()]
        assert len(f[record_path("lost_frame_numbers")][()]) == 0
        attrs = f["entry"].attrs
        pauses = json.loads(attrs["pauses"]) if "pauses" in attrs else []
    assert np.all(np.diff(times) >= 0), times
    if paused:  # [paused at, resumed at], in order
        assert len(pauses) == 1 and times[0] < pauses[0][0] < pauses[0][1] < times[-1]
    else:
        assert pauses == []
    assert cam.dropped_frames.get() == 0 and not cam.acquiring


@pytest.mark.parametrize("plan", ["fly", "fly_during_wrapper"])
def test_a_paused_fly_scan_goes_on_after_resume_in_the_same_run(RE, cam, fake, plan):
    from ophyd.sim import SynAxis

    cam.num_frames.put(FLY_FRAMES)
    if plan == "fly":
        run = bp.fly([cam])
    else:
        motor = SynAxis(name="motor", delay=0.02)
        run = bpp.fly_during_wrapper(bp.scan([], motor, 0, 1, 60), [cam])
    pause_after(RE, fake, 100)
    with pytest.raises(RunEngineInterrupted):
        RE(run)
    assert not cam.acquiring  # the camera stopped before control returned
    RE.resume()  # raised "stopped by a pause" before
    check_fly(RE, cam)
    RE.docs.clear()
    cam.num_frames.put(50)
    RE(bp.fly([cam]))  # the next plan works
    check_fly(RE, cam, 50, paused=False)


def test_a_beam_dump_during_a_fly_scan_suspends_and_resumes_it(RE, cam, fake):
    beam = SynSignal(name="beam", func=lambda: 1.0)
    beam.put(1.0)
    RE.install_suspender(SuspendFloor(beam, 0.5, resume_thresh=0.8))
    cam.num_frames.put(FLY_FRAMES)

    def dump_and_refill():
        wait_until(lambda: fake.frames_made >= 100, "100 frames")
        beam.put(0.0)
        wait_until(lambda: not cam.acquiring, "the camera stopped for the suspension")
        beam.put(1.0)

    threading.Thread(target=dump_and_refill, daemon=True).start()
    RE(bp.fly([cam]))
    check_fly(RE, cam)


def test_aborting_a_paused_fly_keeps_what_was_collected(RE, cam, fake):
    cam.num_frames.put(FLY_FRAMES)
    pause_after(RE, fake, 100)
    with pytest.raises(RunEngineInterrupted):
        RE(bp.fly([cam]))
    RE.abort("enough")
    (stop,) = [doc for name, doc in RE.docs if name == "stop"]
    assert stop["exit_status"] == "abort"
    numbers = [n for name, doc in RE.docs if name in ("event", "event_page")
               for n in np.atleast_1d(doc["data"].get("cam_frame_number", []))]  # fmt: skip
    with h5py.File(cam.last_file, "r") as f:
        assert f[DATA_PATH].shape[0] == len(numbers) >= 100  # what the run references
    assert not cam.acquiring
