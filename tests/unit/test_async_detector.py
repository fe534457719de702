"""The ophyd-async face on the fake camera: plans, documents and the failures.

PvcamDetector drives the same acquisition core as PrimeBSI; these tests run real
bluesky plans on a RunEngine, check every document against event-model's schemas and
the file against the documents, and make the failures happen with the fake camera's
script (a stalled, failed, lost or dropped frame), never with timers.
"""

from __future__ import annotations

import asyncio
import errno
import json
import threading

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import h5py
import pytest
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop
from bluesky.utils import FailedStatus, RunEngineInterrupted
from event_model import DocumentNames, schema_validators
from ophyd_async.core import (
    DetectorTrigger,
    StaticFilenameProvider,
    StaticPathProvider,
    TriggerInfo,
    init_devices,
)

from ophyd_pvcam.asyncio import PvcamDetector, find_run
from ophyd_pvcam.errors import (
    CameraAcquisitionError,
    CameraLostError,
    DiskError,
    FrameStallError,
)
from ophyd_pvcam.storage import DATA_PATH, FrameFile, record_path
from ophyd_pvcam.testing import FakeBackend

DEADLINE = 20.0


@pytest.fixture
def fake():
    return FakeBackend(period_s=0.002)


@pytest.fixture
def RE():
    engine = RunEngine({})
    engine.docs = []
    engine.subscribe(lambda name, doc: engine.docs.append((name, doc)))
    yield engine
    if engine.state != "idle":
        engine.abort()


@pytest.fixture
def cam(fake, tmp_path, RE):
    with init_devices():
        cam = PvcamDetector(
            backend=lambda: fake,
            path_provider=StaticPathProvider(StaticFilenameProvider("scan"), tmp_path),
        )
    RE(bps.mv(cam.roi, [0, 0, 16, 8], cam.exposure_time, 0.002))
    yield cam
    cam.close()


def valid(docs) -> list[str]:
    """Every document passes event-model's schema; their names, in order."""
    for name, doc in docs:
        schema_validators[DocumentNames(name)].validate(doc)
    return [name for name, _ in docs]


def stream_stop(docs, key: str) -> int:
    """Rows (or events) the run's StreamDatums of ``key`` reference."""
    resources = {d["uid"] for n, d in docs if n == "stream_resource" and d["data_key"] == key}
    stops = [d["indices"]["stop"] for n, d in docs
             if n == "stream_datum" and d["stream_resource"] in resources]  # fmt: skip
    return max(stops, default=0)


def rows(path) -> tuple[int, list[int]]:
    with h5py.File(path, "r") as f:
        return f[DATA_PATH].shape[0], list(f[record_path("frame_number")][()])


def fly(det, events: int, trigger=DetectorTrigger.INTERNAL, **info):
    yield from bps.stage(det, wait=True)
    yield from bps.open_run()
    yield from bps.prepare(det, TriggerInfo(number_of_events=events, trigger=trigger, **info),
                           wait=True)  # fmt: skip
    yield from bps.declare_stream(det, name="primary")
    yield from bps.kickoff(det, wait=True)
    yield from bps.collect_while_completing([det], [det], flush_period=0.05)
    yield from bps.close_run()
    yield from bps.unstage(det, wait=True)


def test_count_references_each_fresh_frame_once(cam, RE):
    RE(bp.count([cam], num=3))
    names = valid(RE.docs)
    assert names.count("event") == 3
    n, numbers = rows(cam.last_file)
    assert n == 3 == stream_stop(RE.docs, "cam_image")
    assert numbers == sorted(set(numbers))  # one software-triggered frame a point


def test_a_scan_with_several_exposures_per_collection_keeps_every_frame(cam, RE):
    def scan():
        yield from bps.stage(cam, wait=True)
        yield from bps.open_run()
        info = TriggerInfo(exposures_per_collection=3, collections_per_event=2)
        yield from bps.prepare(cam, info, wait=True)
        for _ in range(4):
            yield from bps.trigger_and_read([cam])
        yield from bps.close_run()
        yield from bps.unstage(cam, wait=True)

    RE(scan())
    valid(RE.docs)
    (descriptor,) = [d for n, d in RE.docs if n == "descriptor"]
    assert descriptor["data_keys"]["cam_image"]["shape"] == [6, 8, 16]
    assert descriptor["data_keys"]["cam_frame_number"]["shape"] == [6]
    assert stream_stop(RE.docs, "cam_image") == 4  # events
    assert rows(cam.last_file)[0] == 24  # frames, 6 an event


def test_a_fly_scan_collects_every_frame_while_completing(cam, RE):
    RE(fly(cam, 50))
    names = valid(RE.docs)
    assert "event" not in names  # a declared stream: everything read from the file
    n, numbers = rows(cam.last_file)
    assert n == 50 == stream_stop(RE.docs, "cam_image") == stream_stop(RE.docs, "cam_frame_time")
    assert numbers == list(range(1, 51))


def test_a_fly_scan_of_several_frames_an_event_is_refused_in_one_line(cam, RE):
    with pytest.raises(FailedStatus) as raised:
        RE(fly(cam, 5, exposures_per_collection=2))
    assert isinstance(raised.value.__cause__, ValueError)
    assert "one frame per event" in str(raised.value.__cause__)
    assert "\n" not in str(raised.value.__cause__)
    assert cam.last_file is None  # nothing started, no file


def test_bad_settings_are_refused_at_prepare_before_any_file(cam, RE, tmp_path):
    RE(bps.mv(cam.binning, 3))
    with pytest.raises(FailedStatus) as raised:
        RE(fly(cam, 5))
    assert str(raised.value.__cause__).startswith("binning=3 is not offered by this camera")
    assert "choose one of [1, 2]" in str(raised.value.__cause__)
    assert not list(tmp_path.rglob("*.h5"))


def test_a_stall_fails_complete_with_the_diagnosis_and_the_next_plan_works(cam, RE, fake):
    fake.script[10] = "stall"
    RE(bps.mv(cam.stall_timeout, 0.5))
    with pytest.raises(FailedStatus) as raised:
        RE(fly(cam, 40))
    error = raised.value.__cause__
    assert isinstance(error, FrameStallError)
    assert "no frame" in str(error).lower() or "stall" in str(error).lower()
    assert not cam.controller.acquiring  # the camera stopped before control returned
    n, numbers = rows(cam.last_file)  # closed and readable: what the run references
    assert n == stream_stop(RE.docs, "cam_image") and numbers == list(range(1, n + 1))
    fake.resume.set()
    RE.docs.clear()
    RE(bp.count([cam], num=2))
    assert [n for n, _ in RE.docs].count("event") == 2


@pytest.mark.parametrize(
    ("fate", "error", "words"),
    [("fail", CameraAcquisitionError, "readout failure"),
     ("lost", CameraLostError, "disconnected")],
)  # fmt: skip
def test_a_camera_failure_fails_the_point_with_what_happened(cam, RE, fake, fate, error, words):
    fake.script[3] = fate
    with pytest.raises(FailedStatus) as raised:
        RE(bp.count([cam], num=5))
    assert isinstance(raised.value.__cause__, error)
    assert words in str(raised.value.__cause__)
    assert not cam.controller.acquiring
    n, _ = rows(cam.last_file)
    assert n == stream_stop(RE.docs, "cam_image") == 2  # the points before, in the run
    fake.script.clear()
    RE(bp.count([cam], num=1))  # the next plan works


def test_dropped_frames_are_counted_shown_and_flagged_in_the_run(cam, RE, fake):
    fake.script[5] = "drop"
    RE(fly(cam, 20))
    valid(RE.docs)
    with h5py.File(cam.last_file, "r") as f:
        lost_before = list(f[record_path("lost_before")][()])
        numbers = list(f[record_path("frame_number")][()])
    assert 5 not in numbers and sum(lost_before) == 1
    assert lost_before[numbers.index(6)] == 1
    summary = cam.loss_summary()
    assert summary is not None and "1 lost" in summary


def test_an_abort_mid_fly_stops_the_camera_and_the_file_matches_the_run(cam, RE, fake):
    fake.script[30] = "stall"  # holds the scan in its complete() until we abort
    RE(bps.mv(cam.stall_timeout, 60))
    held = threading.Event()
    original = fake.poll

    def poll(timeout_s, out):
        if fake._stalled:
            held.set()
        return original(timeout_s, out)

    fake.poll = poll
    threading.Thread(target=lambda: held.wait(DEADLINE) and RE.request_pause(), daemon=True).start()
    with pytest.raises(Exception):  # noqa: B017 - RunEngineInterrupted, then aborted
        RE(fly(cam, 100))
    assert held.is_set()
    RE.abort()
    assert not cam.controller.acquiring
    n, numbers = rows(cam.last_file)
    assert n == stream_stop(RE.docs, "cam_image")
    assert numbers == list(range(1, n + 1))
    fake.resume.set()


def test_trigger_after_a_multi_event_prepare_says_what_to_do(cam, RE):
    def plan():
        yield from bps.stage(cam, wait=True)
        yield from bps.prepare(cam, TriggerInfo(number_of_events=3), wait=True)
        yield from bps.trigger(cam, wait=True)

    with pytest.raises(FailedStatus) as raised:
        RE(plan())
    assert "number_of_events=3" in str(raised.value.__cause__)


def test_level_triggers_need_bulb_mode(cam, RE):
    with pytest.raises(FailedStatus) as raised:
        RE(fly(cam, 3, trigger=DetectorTrigger.EXTERNAL_LEVEL))
    assert "'Bulb Mode'" in str(raised.value.__cause__)
    assert "'Edge Trigger'" in str(raised.value.__cause__)  # what is offered instead


def test_a_paused_fly_scan_goes_on_after_resume_with_every_frame(cam, RE, fake):
    fake.script[15] = "stall"  # the pause's window: the scan waits in complete()
    RE(bps.mv(cam.stall_timeout, 60))
    held = threading.Event()
    original = fake.poll

    def poll(timeout_s, out):
        if fake._stalled:
            held.set()
        return original(timeout_s, out)

    fake.poll = poll
    threading.Thread(target=lambda: held.wait(DEADLINE) and RE.request_pause(), daemon=True).start()
    with pytest.raises(Exception):  # noqa: B017 - RunEngineInterrupted: paused
        RE(fly(cam, 40))
    assert held.is_set() and RE.state == "paused"
    assert not cam.controller.acquiring  # a pause stops the camera
    RE.resume()
    valid(RE.docs)
    n, _ = rows(cam.last_file)
    assert n == 40 == stream_stop(RE.docs, "cam_image")
    with h5py.File(cam.last_file, "r") as f:
        assert len(json.loads(f["entry"].attrs["pauses"])) == 1  # [paused at, resumed at]


def test_a_missed_hardware_trigger_fails_with_the_trigger_diagnosis(cam, RE):
    """Edge triggers and no pulse ever arrives: the plan fails with the watchdog's
    trigger-aware diagnosis, not a timeout on a counter."""
    with pytest.raises(FailedStatus) as raised:
        RE(fly(cam, 5, trigger=DetectorTrigger.EXTERNAL_EDGE, exposure_timeout=0.5))
    error = raised.value.__cause__
    assert isinstance(error, FrameStallError) and not isinstance(error, TimeoutError)
    assert "no trigger arrived in" in str(error) and "Edge Trigger" in str(error)
    assert "check the trigger source" in str(error)
    assert not cam.controller.acquiring
    n, _ = rows(cam.last_file)  # closed and readable: nothing came, nothing referenced
    assert n == stream_stop(RE.docs, "cam_image") == 0
    RE(bp.count([cam], num=2))  # the next plan works, on internal triggers again
    assert rows(cam.last_file)[0] == 2


def test_a_full_disk_fails_the_fly_naming_the_folder_and_the_next_plan_works(
    cam, RE, monkeypatch, tmp_path
):
    """The disk fills at row 30 (faked, as in tests/unit/test_sessions.py): the core's
    one line, the file closed with the rows the run references, the next plan works."""
    write = FrameFile.write

    def write_until_full(self, row, pixels, chunk):
        if row.row >= 30:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, row, pixels, chunk)

    monkeypatch.setattr(FrameFile, "write", write_until_full)
    with pytest.raises(FailedStatus) as raised:
        RE(fly(cam, 200))
    error = raised.value.__cause__
    assert isinstance(error, DiskError)
    assert str(error).startswith(f"cannot write frames to {tmp_path}")
    assert "the disk is full" in str(error) and "\n" not in str(error)
    assert not cam.controller.acquiring
    n, numbers = rows(cam.last_file)
    # the rows written before the disk filled, all referenced by the run (a frame made
    # after the last collect is kept apart, outside the dataset)
    assert 20 <= n <= 30 and n == stream_stop(RE.docs, "cam_image")
    assert numbers == list(range(1, n + 1))
    monkeypatch.setattr(FrameFile, "write", write)
    RE.docs.clear()
    RE(fly(cam, 10))
    assert rows(cam.last_file)[0] == 10 == stream_stop(RE.docs, "cam_image")


def after_frames(fake, count: int) -> threading.Event:
    """Set once the fake camera has made ``count`` frames (its poll, the owner thread)."""
    made = threading.Event()
    original = fake.poll

    def poll(timeout_s, out):
        if fake.frames_made >= count:
            made.set()
        return original(timeout_s, out)

    fake.poll = poll
    return made


def test_a_run_engine_stop_mid_fly_ends_the_run_with_the_rows_on_disk(cam, RE, fake):
    """RE.stop() from another thread (a GUI, the queue server) while the scan runs: the
    camera is stopped when RE() returns, the run ends as a success with exactly the
    rows on disk, and the next plan works."""
    going = after_frames(fake, 20)
    threading.Thread(target=lambda: going.wait(DEADLINE) and RE.stop(), daemon=True).start()
    with pytest.raises(RunEngineInterrupted):
        RE(fly(cam, 5000))  # 10 s of frames: the stop lands well before the end
    assert going.is_set()
    assert not cam.controller.acquiring and not fake.streaming  # stopped, not stopping
    (stop,) = [d for n, d in RE.docs if n == "stop"]
    assert stop["exit_status"] == "success"
    n, numbers = rows(cam.last_file)  # a plain open: the file is closed
    assert n == stream_stop(RE.docs, "cam_image") and numbers == list(range(1, n + 1))
    RE.docs.clear()
    RE(bp.count([cam], num=2))
    assert [n for n, _ in RE.docs].count("event") == 2


def test_stop_returns_with_the_camera_stopped_and_the_frames_collectable(cam, RE, fake):
    """A plan calls stop() on the detector mid-fly: when it returns the camera has
    stopped; what was on disk is still handed over, the file closes readable with
    exactly those rows, and the next plan works."""
    going = after_frames(fake, 20)
    when_stopped: list[bool] = []

    def plan():
        yield from bps.stage(cam, wait=True)
        yield from bps.open_run()
        yield from bps.prepare(cam, TriggerInfo(number_of_events=5000), wait=True)
        yield from bps.declare_stream(cam, name="primary")
        yield from bps.kickoff(cam, wait=True)
        yield from bps.wait_for([lambda: asyncio.to_thread(going.wait, DEADLINE)])
        yield from bps.stop(cam)
        when_stopped.append(cam.controller.acquiring or fake.streaming)
        yield from bps.collect(cam)
        yield from bps.close_run()
        yield from bps.unstage(cam, wait=True)

    RE(plan())
    assert going.is_set() and when_stopped == [False]
    valid(RE.docs)
    n, numbers = rows(cam.last_file)
    assert n >= 20 and n == stream_stop(RE.docs, "cam_image") < 5000
    assert numbers == list(range(1, n + 1))
    RE.docs.clear()
    RE(bp.count([cam], num=2))
    assert [n for n, _ in RE.docs].count("event") == 2


def test_status_signals_follow_the_frames_while_they_stream(cam, RE, fake):
    """frames_acquired and dropped_frames move while the camera runs (the core's 10 Hz
    pulse), not only at the end: the camera is held at frame 200 and the signals must
    show the 198 frames kept and the one dropped before it is let go."""
    fake.script[50] = "drop"
    fake.script[200] = "stall"  # held until fake.resume is set; the watchdog stays quiet
    RE(bps.mv(cam.stall_timeout, 60))
    seen: dict[str, list] = {"acquired": [], "dropped": [], "stalled": []}
    shown = threading.Event()

    def watch(kind):
        def record(reading):
            (value,) = [r["value"] for r in reading.values()]
            seen[kind].append(value)
            if 198 in seen["acquired"] and 1 in seen["dropped"]:
                shown.set()

        return record

    async def subscribe():  # on the RunEngine's loop, where the signals live
        cam.frames_acquired.subscribe_reading(watch("acquired"))
        cam.dropped_frames.subscribe_reading(watch("dropped"))
        cam.stalled.subscribe_reading(watch("stalled"))

    call_in_bluesky_event_loop(subscribe(), timeout=DEADLINE)

    running_when_shown: list[bool] = []

    def let_go():
        if shown.wait(DEADLINE):
            running_when_shown.append(cam.controller.acquiring)
        fake.resume.set()

    releaser = threading.Thread(target=let_go, daemon=True)
    releaser.start()
    RE(fly(cam, 400))
    releaser.join(DEADLINE)
    # the signals showed 198 and 1 while the camera was held, still acquiring
    assert shown.is_set() and running_when_shown == [True]
    assert seen["acquired"][-1] == 399 and seen["dropped"][-1] == 1
    assert True not in seen["stalled"]


def test_a_detector_left_open_is_closed_at_exit(cam, RE, fake):
    """A script that ends mid-fly without close(): the exit hook stops the camera and
    closes the file, readable by a plain open."""
    from ophyd_pvcam.asyncio import _detector

    going = after_frames(fake, 20)

    async def start():  # a fly scan left running, as a script awaiting the detector
        await cam.prepare(TriggerInfo(number_of_events=5000))
        await cam.kickoff()

    call_in_bluesky_event_loop(start(), timeout=DEADLINE)
    assert going.wait(DEADLINE)
    path = cam.last_file
    assert cam.controller.acquiring and cam in _detector._open_detectors
    _detector._close_all()  # what atexit runs
    assert not cam.controller.acquiring and not fake.streaming
    assert cam not in _detector._open_detectors
    n, numbers = rows(path)  # a plain open: the file is closed
    assert n >= 19 and numbers == list(range(1, n + 1))  # what came before the exit


def test_the_run_engine_and_its_open_run_are_found_from_a_task_of_their_own(RE):
    """What this face leans on in bluesky 1.15 (``acquisition/_runs.py``): ophyd-async
    runs each device method as a task of its own, and the RunEngine is found among the
    loop's tasks with its open run's uid.  Fails at once if either detail changes."""
    seen = []

    async def look():
        seen.append((find_run(), asyncio.current_task()))

    def plan():
        yield from bps.open_run()
        yield from bps.wait_for([look])
        yield from bps.close_run()

    RE(plan())
    ((run, task),) = seen
    (start,) = [d for n, d in RE.docs if n == "start"]
    assert run is not None and run.engine is RE and run.uid == start["uid"]
    assert task is not RE._task  # not the RunEngine's own task: found among the others

    async def outside():
        return find_run()

    assert call_in_bluesky_event_loop(outside(), timeout=DEADLINE) is None


def test_two_detectors_flown_together_are_collected_aligned_on_the_slower(RE, tmp_path):
    """bluesky collects several detectors up to the lowest index they report; each
    hands over its rows below that index only, so every collect gives the detectors
    the same events, however far ahead the faster camera runs."""
    fast, slow = FakeBackend(period_s=0.002), FakeBackend(period_s=0.006)

    def paths(name):
        return StaticPathProvider(StaticFilenameProvider(name), tmp_path)

    with init_devices():
        fast_cam = PvcamDetector(backend=lambda: fast, path_provider=paths("fast"))
        slow_cam = PvcamDetector(backend=lambda: slow, path_provider=paths("slow"))
    both = [fast_cam, slow_cam]
    try:
        RE(bps.mv(*(x for cam in both for x in (cam.roi, [0, 0, 16, 8]))))

        def plan():
            for cam in both:
                yield from bps.stage(cam, wait=True)
            yield from bps.open_run()
            for cam in both:
                yield from bps.prepare(cam, TriggerInfo(number_of_events=60), wait=True)
            yield from bps.declare_stream(*both, name="primary")
            for cam in both:
                yield from bps.kickoff(cam, wait=True)
            yield from bps.collect_while_completing(both, both, flush_period=0.02)
            yield from bps.close_run()
            for cam in both:
                yield from bps.unstage(cam, wait=True)

        RE(plan())
        valid(RE.docs)
        spans = {}
        for cam in both:
            key = f"{cam.name}_image"
            (resource,) = [d["uid"] for n, d in RE.docs
                           if n == "stream_resource" and d["data_key"] == key]  # fmt: skip
            datums = [d["indices"] for n, d in RE.docs
                      if n == "stream_datum" and d["stream_resource"] == resource]  # fmt: skip
            spans[cam.name] = [(indices["start"], indices["stop"]) for indices in datums]
        assert spans["fast_cam"] == spans["slow_cam"]  # collect by collect, the same events
        assert len(spans["fast_cam"]) > 1 and spans["fast_cam"][-1][1] == 60
        for cam in both:
            assert rows(cam.last_file)[0] == 60  # every row referenced, none kept apart
    finally:
        for cam in both:
            cam.close()


def test_the_path_provider_names_the_folder_and_the_files(cam, RE, tmp_path):
    """``directory_path`` is the folder, ``filename`` the files' name, within the
    run's own folder (by date and run uid, where recovery looks for them)."""
    (start_uid,) = RE(bp.count([cam], num=1))
    path = cam.last_file
    assert path.name == "scan_step.h5" and path.parent.name == start_uid
    assert path.parent.parent.parent.parent.parent == tmp_path  # <tmp>/YYYY/MM/DD/<uid>


@pytest.mark.parametrize("filename", ["../elsewhere", "a/b", ""])
def test_a_path_provider_filename_with_folders_is_refused_at_prepare(fake, RE, tmp_path, filename):
    with init_devices():
        cam = PvcamDetector(
            backend=lambda: fake,
            path_provider=StaticPathProvider(StaticFilenameProvider(filename), tmp_path),
        )
    try:
        with pytest.raises(FailedStatus) as raised:
            RE(fly(cam, 5))
        error = raised.value.__cause__
        assert isinstance(error, ValueError) and "\n" not in str(error)
        assert f"filename={filename!r}" in str(error) and "without folders" in str(error)
        assert not list(tmp_path.rglob("*.h5"))
    finally:
        cam.close()


def test_a_silent_core_is_backed_up_the_camera_stopped_and_said_so(cam, RE, fake, monkeypatch):
    """Should the core fall silent -- no progress report (the writer's, ten a second
    even while nothing comes) and no word from its watchdog, as if its threads hung --
    the face's backstop, a margin beyond the stall timeout, stops the camera and fails
    complete() saying so; the file closes with what came, and the next plan works."""
    from ophyd_pvcam.acquisition import StallMonitor
    from ophyd_pvcam.acquisition._fly import FlySession
    from ophyd_pvcam.asyncio import _detector

    monkeypatch.setattr(StallMonitor, "arm", lambda self, timeout, on_stall: 0)
    monkeypatch.setattr(FlySession, "_written", lambda self, processed, flushed: None)
    monkeypatch.setattr(_detector, "SILENCE_MARGIN_S", 0.5)
    fake.script[10] = "stall"
    RE(bps.mv(cam.stall_timeout, 0.2))
    with pytest.raises(FailedStatus) as raised:
        RE(fly(cam, 40))
    error = raised.value.__cause__
    assert isinstance(error, CameraAcquisitionError)
    assert "no word from the camera's acquisition for 0.7 s" in str(error)
    assert "the camera was stopped" in str(error)
    assert not cam.controller.acquiring and not fake.streaming
    n, numbers = rows(cam.last_file)  # closed and readable
    assert n == stream_stop(RE.docs, "cam_image") and numbers == list(range(1, n + 1))
    monkeypatch.undo()
    fake.resume.set()
    RE.docs.clear()
    RE(bp.count([cam], num=2))
    assert [n for n, _ in RE.docs].count("event") == 2
