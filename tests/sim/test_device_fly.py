"""The Prime BSI as a flyer: every frame becomes an event, and nothing is lost silently."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import h5py
import helpers
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted
from helpers import file_frames, frame_files, read_run_in_new_process

import ophyd_pvcam.sim as sim
from ophyd_pvcam import CameraAcquisitionError


def fast_small(cam, frames, width=256, height=128):
    cam.roi.set((0, 0, width, height)).wait(5)
    cam.exposure_time.set(0.002).wait(5)
    cam.num_frames.set(frames).wait(5)


@pytest.mark.realtime
def test_fly_500_frames_replays_in_a_new_process(cam, RE, catalog, data_dir, tmp_path):
    fast_small(cam, 500)
    (uid,) = RE(bp.fly([cam]))
    # the profile's RunEngine declares the camera's stream: two documents per key, not
    # two per frame, and every key read from the file
    names = [name for name, _ in RE.recorder.docs]
    assert names.count("stream_datum") == 4 and "event" not in names and "datum" not in names
    stream = catalog[uid]["cam"]
    assert list(stream["cam_frame_number"].read()) == list(range(1, 501))
    assert not stream["cam_lost_before"].read().any()
    # the camera's clock mapped to wall time: one frame period apart (2 ms exposure,
    # 128 rows of readout)
    assert np.diff(stream["cam_frame_time"].read()) == pytest.approx(0.002, abs=1e-4)
    images, info = read_run_in_new_process(data_dir / "catalog", uid, "cam", "cam_image", tmp_path)
    assert images.shape == (500, 1, 128, 256)
    assert [sim.frame_number(frame) for frame in images[:, 0]] == list(range(1, 501))
    (path,) = frame_files(cam.write_path)
    on_disk, records = file_frames(path)
    assert np.array_equal(images[:, 0], on_disk)  # compressed (bitshuffle/LZ4) by default:
    with h5py.File(path, "r") as f:  # the new process decoded them all the same
        plist = f["/entry/data/data"].id.get_create_plist()
        assert 32008 in [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    assert list(records["frame_number"]) == list(range(1, 501))
    assert len(records["lost_frame_numbers"]) == 0
    assert info["stop"]["exit_status"] == "success"
    assert cam.frames_acquired.get() == 500


def test_complete_reports_progress_to_watchers(cam, RE):
    fast_small(cam, 200)
    updates = []

    def plan():
        yield from bps.open_run()
        yield from bps.kickoff(cam, wait=True)
        status = yield from bps.complete(cam, wait=False)
        status.watch(lambda **kw: updates.append(kw))
        yield from bps.wait()
        yield from bps.collect(cam)
        yield from bps.close_run()

    RE(plan())
    currents = [u["current"] for u in updates if "current" in u]
    assert currents == sorted(currents)
    assert currents[-1] == 200
    assert {u["target"] for u in updates if "target" in u} == {200}
    assert updates[-1]["fraction"] == 0.0
    assert len(currents) >= 3  # a bar moves, not just jumps to the end


def test_trigger_with_many_frames_reports_progress(cam, RE):
    cam.roi.set((0, 0, 256, 128)).wait(5)
    cam.exposure_time.set(0.005).wait(5)
    cam.frames_per_point.set(60).wait(5)
    updates = []

    def plan():
        yield from bps.open_run()
        yield from bps.stage(cam)
        status = yield from bps.trigger(cam, group="point")
        status.watch(lambda **kw: updates.append(kw))
        yield from bps.wait(group="point")
        yield from bps.create()
        yield from bps.read(cam)
        yield from bps.save()
        yield from bps.unstage(cam)
        yield from bps.close_run()

    RE(plan())
    currents = [u["current"] for u in updates if "current" in u]
    assert currents[-1] == 60 and len(set(currents)) >= 3


def test_an_unbounded_fly_runs_until_complete(cam, RE, catalog):
    fast_small(cam, 0)

    def plan():
        yield from bps.open_run()
        yield from bps.kickoff(cam, wait=True)
        yield from bps.sleep(0.5)
        yield from bps.complete(cam, wait=True)
        yield from bps.collect(cam)
        yield from bps.close_run()

    (uid,) = RE(plan())
    numbers = catalog[uid]["cam"]["cam_frame_number"].read()
    assert len(numbers) > 20
    assert list(numbers) == list(range(1, len(numbers) + 1))


def test_dropped_frames_are_counted_and_recorded(cam, RE, catalog):
    fast_small(cam, 60)
    sim.inject_fault("drop", every=10)
    (uid,) = RE(bp.fly([cam]))
    stream = catalog[uid]["cam"]
    numbers = list(stream["cam_frame_number"].read())
    assert numbers == [n for n in range(1, 61) if n % 10]
    lost_before = dict(zip(numbers, stream["cam_lost_before"].read(), strict=True))
    assert [n for n, lost in lost_before.items() if lost] == [11, 21, 31, 41, 51]
    assert cam.dropped_frames.get() == 6  # frame 60 too: the camera's last was lost ...
    (path,) = frame_files(cam.write_path)
    _, records = file_frames(path)
    assert list(records["lost_frame_numbers"]) == [10, 20, 30, 40, 50, 60]
    stop = catalog[uid].metadata["stop"]  # ... and the run says so
    assert "6 lost: frame numbers 10, 20, 30, 40, 50, 60" in stop["reason"]


def test_on_a_bare_run_engine_each_frame_is_an_event(cam):
    """Without the stall guard nobody declares the camera's stream; bluesky then takes
    the frames as events, each image by a Datum (slower, the same data)."""
    engine = RunEngine({})
    docs = []
    engine.subscribe(lambda name, doc: docs.append((name, doc)))
    fast_small(cam, 60)
    sim.inject_fault("drop", every=10)
    engine(bp.fly([cam]))
    (page,) = [doc for name, doc in docs if name == "event_page"]
    assert page["data"]["cam_frame_number"] == [n for n in range(1, 61) if n % 10]
    assert page["data"]["cam_lost_after"] == [0] * 53 + [1]  # frame 60, after the last
    assert [name for name, _ in docs].count("datum") == 54
    assert not cam.acquiring


def test_a_frame_lost_inside_a_step_point_is_replaced_by_a_fresh_one(cam, RE, catalog):
    cam.roi.set((0, 0, 128, 64)).wait(5)
    cam.exposure_time.set(0.002).wait(5)
    cam.frames_per_point.set(4).wait(5)
    sim.inject_fault("drop", every=6)
    (uid,) = RE(bp.count([cam], num=3))
    images = catalog[uid]["primary"]["cam_image"].read()
    assert images.shape == (3, 4, 64, 128)
    stamped = [[sim.frame_number(f) for f in point] for point in images]
    # frames 6 and 12 never came: each point triggered another, exposed after its trigger
    assert stamped == [[1, 2, 3, 4], [5, 7, 8, 9], [10, 11, 13, 14]]
    events = RE.recorder.of("event")
    assert [e["data"]["cam_dropped_frames"] for e in events] == [0, 1, 2]


def test_readout_failure_mid_fly_fails_with_its_own_error(cam, RE, catalog):
    fast_small(cam, 300)
    sim.inject_fault("readout_failure", after_frames=40, times=1)
    with pytest.raises(CameraAcquisitionError, match="readout failure after frame") as failure:
        RE(bp.fly([cam]))
    # frames pyvcam had queued when the readout failed cannot be read (pvc checks the
    # camera before handing out a queued frame): how many of the 40 depends on load
    last = int(re.search(r"after frame (\d+) \((\d+) frames received", str(failure.value))[1])
    assert 1 <= last <= 40
    stop = RE.recorder.of("stop")[-1]
    assert stop["exit_status"] == "fail" and "readout failure" in stop["reason"]
    assert cam.stalled.get() is False
    (path,) = frame_files(cam.write_path)
    on_disk, _ = file_frames(path)
    assert [sim.frame_number(f) for f in on_disk] == list(range(1, last + 1))
    uid = RE.recorder.of("start")[-1]["uid"]
    assert list(catalog[uid]["cam"]["cam_frame_number"].read()) == list(range(1, last + 1))
    fast_small(cam, 20)
    (uid,) = RE(bp.fly([cam]))
    assert len(catalog[uid]["cam"]["cam_frame_number"].read()) == 20


def test_disconnect_mid_fly_fails_clearly_and_the_camera_comes_back(cam, RE, catalog):
    fast_small(cam, 300)
    sim.inject_fault("disconnect", after_frames=25, times=1)
    with pytest.raises(CameraAcquisitionError, match="disconnected after frame") as failure:
        RE(bp.fly([cam]))
    # frames still in pyvcam's queue when the camera vanished cannot be read (pvc checks
    # the camera before handing out a queued frame): how many depends on load
    last = int(re.search(r"after frame (\d+) \((\d+) frames received", str(failure.value))[1])
    assert 1 <= last <= 25
    stop = RE.recorder.of("stop")[-1]
    assert "disconnected" in stop["reason"]
    (path,) = frame_files(cam.write_path)
    assert [sim.frame_number(f) for f in file_frames(path)[0]] == list(range(1, last + 1))
    replayed = catalog[stop["run_start"]]["cam"]["cam_frame_number"].read()
    assert list(replayed) == list(range(1, last + 1))
    fast_small(cam, 10)
    (uid,) = RE(bp.fly([cam]))  # reopened behind the scenes
    assert list(catalog[uid]["cam"]["cam_frame_number"].read()) == list(range(1, 11))


def test_abort_mid_fly_leaves_a_readable_file_and_a_stopped_camera(cam, RE, catalog):
    fast_small(cam, 0)

    def plan():
        yield from bps.open_run()
        yield from bps.kickoff(cam, wait=True)
        yield from bps.sleep(0.3)
        yield from bps.checkpoint()
        yield from bps.pause()
        yield from bps.complete(cam, wait=True)
        yield from bps.collect(cam)
        yield from bps.close_run()

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    RE.abort("changed my mind")
    assert not cam.acquiring
    assert RE.recorder.of("stop")[-1]["exit_status"] == "abort"
    (path,) = frame_files(cam.write_path)
    on_disk, records = file_frames(path)
    assert on_disk.shape[0] == len(records["frame_number"]) > 0
    # everything written is in the run too (the RunEngine collected it on the way out)
    uid = RE.recorder.of("stop")[-1]["run_start"]
    assert len(catalog[uid]["cam"]["cam_frame_number"].read()) == on_disk.shape[0]
    fast_small(cam, 5)
    RE(bp.fly([cam]))


def test_ctrl_c_mid_fly_then_abort_is_clean(cam, RE):
    fast_small(cam, 0)

    def plan():
        yield from bps.open_run()
        yield from bps.kickoff(cam, wait=True)
        yield from bps.checkpoint()
        yield from bps.sleep(20)
        yield from bps.complete(cam, wait=True)
        yield from bps.collect(cam)
        yield from bps.close_run()

    # Ctrl-C twice: the RunEngine pauses at once (it must run in the main thread)
    timers = [threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)) for delay in (0.5, 0.8)]
    for timer in timers:
        timer.start()
    try:
        with pytest.raises(RunEngineInterrupted):
            RE(plan())
    finally:
        for timer in timers:
            timer.cancel()
    assert RE.state == "paused"
    RE.abort()
    assert not cam.acquiring
    (path,) = frame_files(cam.write_path)
    assert file_frames(path)[0].shape[0] > 0
    fast_small(cam, 5)
    RE(bp.fly([cam]))


def test_kickoff_while_staged_or_flying_is_refused(cam):
    fast_small(cam, 0)
    cam.kickoff().wait(10)
    try:
        with pytest.raises(RuntimeError, match="busy"):
            cam.kickoff()
        with pytest.raises(RuntimeError, match="cannot change while the camera is acquiring"):
            cam.exposure_time.set(0.1)
    finally:
        cam.complete().wait(10)
        list(cam.collect_asset_docs())
        list(cam.collect_pages())


@pytest.mark.realtime
def test_a_long_fly_at_the_fast_full_sensor_setting_keeps_memory_flat(cam, RE, catalog):
    """1000 frames read out over the full sensor at the 11-bit speed (~94 fps),
    4x4 binned to keep the test's disk use small; resident memory must not
    grow with the number of frames (a frame is 0.5 MiB: every frame kept would be
    500 MiB, one in ten 50 MiB)."""
    cam.readout_port.set("Speed").wait(5)
    cam.binning.set(4).wait(5)
    cam.exposure_time.set(0.001).wait(5)
    cam.num_frames.set(200).wait(5)
    RE(bp.fly([cam]))  # warm up: buffers allocated, caches filled
    before = _settled_resident_mib()  # the memory queue's pages mapped in the background
    cam.num_frames.set(1000).wait(5)
    RE(bp.fly([cam]))
    after = _resident_mib()
    uid = RE.recorder.of("stop")[-1]["run_start"]
    assert list(catalog[uid]["cam"]["cam_frame_number"].read()) == list(range(1, 1001))
    assert after - before < 40, f"resident memory grew {after - before:.0f} MiB"


def _settled_resident_mib(deadline_s: float = 30.0) -> float:
    """Resident memory once it stops changing (within a deadline)."""
    end = time.monotonic() + deadline_s
    previous = _resident_mib()
    while time.monotonic() < end:
        threading.Event().wait(0.25)
        now = _resident_mib()
        if abs(now - previous) < 1:
            return now
        previous = now
    return previous


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.realtime
def test_reading_temperature_and_configuration_while_flying_never_touches_the_camera(
    cam, RE, catalog
):
    """A parameter read while frames stream has stopped real cameras (param_poll is
    armed: one such read would stop this one).  Another thread reads the temperature
    and the whole configuration every 50 ms through a 500-frame fly."""
    fast_small(cam, 500)
    assert sim.active_fault_count() >= 1  # param_poll, armed by conftest
    calls_before = sim.param_calls_mid_stream()
    done = threading.Event()
    reads = []

    def poll_like_a_gui():
        while not done.wait(0.05):
            reads.append((cam.temperature.get(), cam.read_configuration()))

    reader = threading.Thread(target=poll_like_a_gui, daemon=True)
    reader.start()
    try:
        RE(bp.fly([cam]))
    finally:
        done.set()
        reader.join(5)
    uid = RE.recorder.of("stop")[-1]["run_start"]
    assert list(catalog[uid]["cam"]["cam_frame_number"].read()) == list(range(1, 501))
    assert len(reads) >= 3
    assert sim.param_calls_mid_stream() == calls_before
    temperatures = {t for t, _ in reads}
    assert all(-30 < t < 40 for t in temperatures)  # the last idle reading, not a NaN


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB file system of its own (a tmpfs), to fill up."""
    with helpers.small_disk(tmp_path / "disk", "48m") as folder:
        yield folder


def test_a_full_disk_fails_the_plan_in_one_line_and_keeps_a_readable_file(
    small_disk, RE, catalog, data_dir
):
    from ophyd_pvcam import DiskError, PrimeBSI

    cam = PrimeBSI("cam", sim=True, write_path=small_disk / "frames")
    try:
        fast_small(cam, 2000)  # 125 MiB: more than the disk holds, refused before a file
        with pytest.raises(DiskError, match=r"48 MiB free, \d+ MiB needed for 2000 frames"):
            RE(bp.fly([cam]))
        assert frame_files(small_disk) == []
        cam.num_frames.set(0)

        def until_full():
            yield from bps.open_run()
            yield from bps.kickoff(cam, wait=True)
            yield from bps.sleep(60)  # the disk fills long before
            yield from bps.complete(cam, wait=True)
            yield from bps.collect(cam)
            yield from bps.close_run()

        with pytest.raises(DiskError, match=r"cannot write frames to .*frames.*nearly full"):
            RE(until_full())
        assert not cam.acquiring
        (path,) = frame_files(small_disk)
        on_disk, records = file_frames(path)  # closed cleanly: a plain open reads it
        numbers = [sim.frame_number(frame) for frame in on_disk]
        assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 100
        lost = list(records["lost_frame_numbers"])  # the frame(s) refused: counted, in order
        assert lost and lost == list(range(len(numbers) + 1, len(numbers) + 1 + len(lost)))
        stop = RE.recorder.of("stop")[-1]
        assert stop["exit_status"] == "fail" and "nearly full" in stop["reason"]
        replayed = catalog[stop["run_start"]]["cam"]["cam_frame_number"].read()
        assert list(replayed) == numbers  # the run holds exactly what is on disk
        with pytest.raises(DiskError, match="MiB needed"):  # still full: refused, no file
            RE(until_full())
        assert frame_files(small_disk) == [path]
        path.unlink()
        fast_small(cam, 20)
        RE(bp.fly([cam]))  # space again: the next plan works
    finally:
        cam.close()


def test_collecting_while_completing_hands_over_frames_as_they_come(cam, RE, catalog):
    """bluesky's collect_while_completing: collect every 0.1 s while the camera runs;
    each collect hands over what is on disk, the camera runs on."""
    fast_small(cam, 400)
    # about collecting, not keeping up: a camera buffer for the whole run, so a loaded
    # machine that starves the owner thread for 0.5 s cannot lose frames here
    cam.buffer_frames.set(512).wait(5)
    stream_datums = []
    RE.subscribe(lambda name, doc: stream_datums.append(doc), "stream_datum")

    def plan():
        yield from bps.open_run()
        yield from bps.kickoff(cam, wait=True)
        yield from bps.collect_while_completing([cam], [cam], flush_period=0.1)
        return (yield from bps.close_run())

    RE(plan())
    uid = RE.recorder.of("stop")[-1]["run_start"]
    assert list(catalog[uid]["cam"]["cam_frame_number"].read()) == list(range(1, 401))
    images = [d for d in stream_datums if d["indices"]["stop"] > d["indices"]["start"]]
    assert len(images) >= 2 * 4  # several collects (four keys each) while it ran
