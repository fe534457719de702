"""The acquisition core without ophyd: :class:`CameraController` driving step and fly
sessions on the pure-Python fake camera, reporting through plain completions.

Each test takes the core through one transition -- a point, a fly scan, a pause, a
stop, a stall, a camera failure, a full disk, a run that ends -- and checks what it
left behind: the rows in the file (read back closed), the frames lost and why, the
camera stopped, and every completion ended exactly once.  (The same transitions
through the ophyd device: ``test_sessions.py``; on the C simulator: ``tests/sim``.)
"""

from __future__ import annotations

import dataclasses
import errno
import json
import threading
import time

import h5py
import pytest
from core_harness import Core, Done, FakeRun, settings

from ophyd_pvcam.acquisition import (
    GAP,
    INTERRUPTED,
    TORN,
    WRITE,
    Pending,
    Settings,
)
from ophyd_pvcam.acquisition import _controller as controller_module  # a name swapped below
from ophyd_pvcam.errors import (
    AcquisitionInterrupted,
    CameraAcquisitionError,
    CameraLostError,
    DiskError,
    FrameStallError,
)
from ophyd_pvcam.storage import DATA_PATH, UNREFERENCED_PATH, FrameFile
from ophyd_pvcam.testing import FAKE_CAPABILITIES, FakeBackend, fake_frame_number

DEADLINE = 10.0
SOFTWARE_MODES = {"Software Trigger Edge", "Software Trigger First"}


@pytest.fixture
def fake():
    return FakeBackend(period_s=0.001)


@pytest.fixture
def core(fake, tmp_path):
    harness = Core(fake, tmp_path)
    yield harness
    harness.controller.close()


def file_numbers(path, dataset: str = DATA_PATH) -> list[int]:
    """The camera's numbers of the frames in a closed file (a plain, non-SWMR open)."""
    with h5py.File(path, "r") as f:
        if dataset not in f:
            return []
        return [fake_frame_number(frame) for frame in f[dataset][()]]


def lost_reasons(path) -> dict[str, int]:
    with h5py.File(path, "r") as f:
        return json.loads(f["entry"].attrs.get("lost_frames", "{}"))


def wait_until(condition, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        pause.wait(0.005)


def collect(controller) -> list[int]:
    """A collect (outside a declared stream: a Datum per frame, then a page of events):
    the camera's numbers of the frames handed over."""
    list(controller.collect_asset_docs())
    return [n for page in controller.collect_pages() for n in page["data"]["cam_frame_number"]]


def step_points(controller, s: Settings, points: int) -> list[Done]:
    statuses = []
    for _ in range(points):
        status = Done()
        controller.trigger(s, status)
        assert status.outcome() is None
        statuses.append(status)
    return statuses


def pending_point(controller, fake, s: Settings, stall_at: int) -> Done:
    """A trigger whose frames stop coming at frame ``stall_at`` (it stays pending)."""
    fake.script[stall_at] = "stall"
    status = Done()
    controller.trigger(s, status)
    wait_until(lambda: controller.last.ledger.last_number >= stall_at - 1, "frames before it")
    assert not status.done
    return status


# ---- step scans ------------------------------------------------------------------------------


def test_each_point_finishes_once_when_its_frames_are_on_disk(core, fake):
    c = core.controller
    s = settings(frames_per_point=3)
    c.stage(s)
    assert not fake.streaming  # the camera starts at the first trigger
    for point in range(4):
        status = Done()
        c.trigger(s, status)
        assert status.outcome() is None
        assert status.progress[-1] == 3
        result = c.read_point()
        numbers = [3 * point + n for n in (1, 2, 3)]
        assert result["frame_number"] == numbers[-1] and result["max"] == numbers[-1]
        assert result["mean"] == pytest.approx(sum(numbers) / 3 / (16 * 8))  # one lit pixel
    step = c.step
    docs = list(step.docs.take())
    assert [name for name, _ in docs] == ["resource"] + ["datum"] * 4
    c.unstage()
    assert step.closed and step.points_done == 4 and not fake.streaming
    assert file_numbers(step.path) == list(range(1, 13))
    assert step.ledger.lost.total == 0 and "none lost" in step.summary_line()
    assert core.announced == []


def test_a_plain_pending_completion_is_enough(core):
    """The core asks only for the Completion protocol: the plain ``Pending`` will do."""
    c = core.controller
    s = settings()
    c.stage(s)
    status = Pending()
    c.trigger(s, status)
    assert status.wait(DEADLINE) and status.success and status.current == 1
    c.unstage()
    assert file_numbers(c.last.path) == [1]


def test_a_trigger_needs_a_stage_and_the_frame_layout_stays_while_staged(core, fake):
    c = core.controller
    with pytest.raises(RuntimeError, match="must be staged"):
        c.trigger(settings(), Done())
    c.stage(settings())
    status = Done()
    c.trigger(settings(roi=(0, 0, 8, 8)), status)
    assert "cannot change while staged" in str(status.outcome())
    assert fake.starts == 0  # refused before the camera started
    status = Done()
    c.trigger(settings(), status)
    assert status.outcome() is None
    c.unstage()


def test_settings_changed_between_points_restart_the_camera_in_the_same_file(core, fake):
    c = core.controller
    c.stage(settings())
    step_points(c, settings(), 2)
    step_points(c, settings(exposure_time=0.002), 2)
    assert fake.starts == 2 and fake.setup.exposure_us == 2000
    step = c.step
    c.unstage()
    assert file_numbers(step.path) == [1, 2, 1, 2]  # a new acquisition numbers from 1
    assert step.points_done == 4


def test_frames_lost_inside_a_point_are_replaced_and_counted_with_their_reason(core, fake):
    fake.script.update({2: "drop", 4: "torn"})
    c = core.controller
    s = settings(frames_per_point=3)
    c.stage(s)
    step_points(c, s, 1)
    step = c.step
    c.unstage()
    assert file_numbers(step.path) == [1, 3, 5]  # fresh frames, never padding
    assert dict(step.ledger.lost.by_reason) == {GAP: 1, TORN: 1}
    assert lost_reasons(step.path) == {GAP: 1, TORN: 1}
    assert "2 lost: frame numbers 2, 4" in step.summary_line()


def test_without_software_triggers_each_point_is_a_sequence(tmp_path):
    modes = {k: v for k, v in FAKE_CAPABILITIES.trigger_modes.items() if k not in SOFTWARE_MODES}
    fake = FakeBackend(capabilities=dataclasses.replace(FAKE_CAPABILITIES, trigger_modes=modes))
    core = Core(fake, tmp_path)
    c = core.controller
    try:
        s = settings(frames_per_point=2)
        c.stage(s)
        step_points(c, s, 3)
        step = c.step
        c.unstage()
        assert fake.starts == 3 and not fake.streaming
        assert file_numbers(step.path) == [1, 2] * 3
    finally:
        c.close()


def test_a_sequence_that_ends_short_fails_its_point_saying_so(tmp_path):
    modes = {k: v for k, v in FAKE_CAPABILITIES.trigger_modes.items() if k not in SOFTWARE_MODES}
    fake = FakeBackend(capabilities=dataclasses.replace(FAKE_CAPABILITIES, trigger_modes=modes))
    core = Core(fake, tmp_path)
    c = core.controller
    try:
        s = settings(frames_per_point=2)
        c.stage(s)
        step_points(c, s, 1)
        fake.script[2] = "drop"  # of the next sequence: it ends with one frame
        status = Done()
        c.trigger(s, status)
        failure = status.outcome()
        assert isinstance(failure, CameraAcquisitionError)
        assert "ended its sequence with 1 of 2 frames" in str(failure)
        step = c.step
        wait_until(lambda: step.closed, "the session closed")
        assert file_numbers(step.path) == [1, 2, 1] and not fake.streaming  # every row kept
    finally:
        c.close()


class HoldsItsFirstStop(FakeBackend):
    """A camera without software triggers whose first stop takes until ``go_on`` is set:
    the RunEngine's next trigger() comes while the sequence before is still ending."""

    def __init__(self):
        modes = {
            k: v for k, v in FAKE_CAPABILITIES.trigger_modes.items() if k not in SOFTWARE_MODES
        }
        super().__init__(capabilities=dataclasses.replace(FAKE_CAPABILITIES, trigger_modes=modes))
        self.go_on = threading.Event()
        self.held = False

    def stop(self) -> None:
        if not self.held:
            self.held = True
            self.go_on.wait(DEADLINE)
        super().stop()


def test_a_point_triggered_while_the_last_sequence_ends_is_not_failed_by_its_end(tmp_path):
    """A point is done once its frames are on disk, which can be before its sequence has
    stopped: the next point's sequence is queued meanwhile, and the end of the one
    before must not be taken for the end of the new one."""
    fake = HoldsItsFirstStop()
    core = Core(fake, tmp_path)
    c = core.controller
    try:
        s = settings(frames_per_point=2)
        c.stage(s)
        first = Done()
        c.trigger(s, first)
        assert first.outcome() is None  # on disk; its sequence is still stopping
        second = Done()
        c.trigger(s, second)
        fake.go_on.set()
        assert second.outcome() is None
        step = c.step
        c.unstage()
        assert file_numbers(step.path) == [1, 2, 1, 2] and fake.starts == 2
    finally:
        fake.go_on.set()
        c.close()


def test_hardware_edges_answer_the_point_that_waits_for_them(core, fake):
    c = core.controller
    s = settings(trigger_mode="Edge Trigger", frames_per_point=2)
    c.stage(s)
    wire = threading.Event()

    def pulses():  # a pulse generator on the trigger input, until the scan is over
        while not wire.wait(0.003):
            fake.fire_edge()

    source = threading.Thread(target=pulses, daemon=True)
    source.start()
    try:
        step_points(c, s, 3)
    finally:
        wire.set()
        source.join(DEADLINE)
    step = c.step
    c.unstage()
    numbers = file_numbers(step.path)
    assert len(numbers) == 6 and numbers == sorted(set(numbers))
    assert fake.starts == 1  # one free-running acquisition for every point


def test_a_stall_fails_the_waiting_point_once_and_keeps_the_complete_ones(core, fake):
    c = core.controller
    s = settings(frames_per_point=2, stall_timeout=0.3)
    c.stage(s)
    step_points(c, s, 2)
    fake.script[5] = "stall"
    status = Done()
    c.trigger(s, status)
    error = status.outcome()
    assert isinstance(error, FrameStallError) and "no frame for" in str(error)
    assert c.stall_error is error
    assert core.announced == []  # the waiting point carried it to the plan
    assert not fake.streaming
    step = c.step
    assert step.closed  # the stall ended the session: the file is closed
    assert file_numbers(step.path) == [1, 2, 3, 4]  # outside a run every row is kept
    again = Done()
    c.trigger(s, again)
    assert again.outcome() is error  # the session has failed: it says why, at once
    c.unstage()
    c.stage(s)
    step_points(c, s, 1)  # a new session works
    c.unstage()


def test_a_stale_watchdog_call_cannot_kill_a_healthy_point(core, monkeypatch):
    """The watchdog fires for an arming the session has since withdrawn (its frames came
    just in time): the late call changes nothing."""
    c = core.controller
    armed = []
    arm = c.monitor.arm

    def recording_arm(timeout, on_stall):
        token = arm(timeout, on_stall)
        armed.append((token, on_stall))
        return token

    monkeypatch.setattr(c.monitor, "arm", recording_arm)
    s = settings()
    c.stage(s)
    step_points(c, s, 1)
    ((token, on_stall),) = armed
    on_stall(token, 5.0)  # the arming this point withdrew when its frame came
    on_stall(-1, 5.0)  # an arming that never was
    assert c.stall_error is None and c.step.error is None and core.announced == []
    step_points(c, s, 1)
    c.unstage()
    assert file_numbers(c.last.path) == [1, 2]


def test_a_pause_abandons_the_waiting_point_which_ends_when_it_is_taken_again(core, fake):
    c = core.controller
    s = settings(frames_per_point=2, stall_timeout=60)
    c.stage(s)
    step_points(c, s, 1)
    interrupted = pending_point(c, fake, s, stall_at=4)  # frame 3 came, frame 4 never
    c.pause()
    assert not fake.streaming
    step = c.step
    assert step.ledger.lost.by_reason[INTERRUPTED] == 1  # frame 3, discarded
    assert not interrupted.done  # failing it would make the RunEngine's resume raise
    (redone,) = step_points(c, s, 1)  # the RunEngine triggers the point again
    assert fake.starts == 2
    # the RunEngine may still wait on the interrupted status: it ends with its point
    assert interrupted.outcome() is None
    assert redone.outcome() is None
    c.unstage()
    assert file_numbers(step.path) == [1, 2, 1, 2]


def test_stop_fails_the_waiting_point_once_and_stops_the_camera(core, fake):
    c = core.controller
    s = settings(frames_per_point=2, stall_timeout=60)
    c.stage(s)
    step_points(c, s, 1)
    waiting = pending_point(c, fake, s, stall_at=4)
    c.stop()
    error = waiting.outcome()
    assert isinstance(error, AcquisitionInterrupted) and "was stopped" in str(error)
    assert not fake.streaming and not c.acquiring
    step = c.step
    wait_until(lambda: step.closed, "the session closed")
    assert file_numbers(step.path) == [1, 2, 3]  # outside a run every row is kept
    c.unstage()


@pytest.mark.parametrize(
    ("fate", "error", "words"),
    [
        ("fail", CameraAcquisitionError, "readout failure after frame 2"),
        ("lost", CameraLostError, "disconnected after frame 2"),
    ],
)
def test_a_camera_failure_fails_the_point_with_its_own_error(core, fake, fate, error, words):
    fake.script[3] = fate
    c = core.controller
    s = settings()
    c.stage(s)
    step_points(c, s, 2)
    status = Done()
    c.trigger(s, status)
    failure = status.outcome()
    assert isinstance(failure, error) and words in str(failure)
    step = c.step
    wait_until(lambda: step.closed, "the session closed")
    assert file_numbers(step.path) == [1, 2]
    c.unstage()
    c.stage(s)
    step_points(c, s, 1)  # the camera is used again, afresh
    c.unstage()


def test_a_full_disk_fails_the_point_and_counts_the_frames_not_written(core, monkeypatch):
    write = FrameFile.write

    def write_until_full(self, row, pixels, chunk):
        if row.row >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, row, pixels, chunk)

    monkeypatch.setattr(FrameFile, "write", write_until_full)
    c = core.controller
    s = settings()
    c.stage(s)
    step_points(c, s, 2)
    status = Done()
    c.trigger(s, status)
    failure = status.outcome()
    assert isinstance(failure, DiskError) and "the disk is full" in str(failure)
    step = c.step
    wait_until(lambda: step.closed, "the session closed")
    assert file_numbers(step.path) == [1, 2]
    assert step.ledger.lost.by_reason[WRITE] >= 1
    assert lost_reasons(step.path)[WRITE] >= 1
    c.unstage()


def test_the_end_of_the_run_keeps_exactly_the_points_it_references(core, fake):
    """A point done as the plan was aborted never reached the run: its rows move apart."""
    run = core.run = FakeRun()
    c = core.controller
    s = settings()
    c.stage(s)
    for _ in range(2):  # the RunEngine saves each point's event before the next trigger
        step_points(c, s, 1)
        run.emit(c.step.docs.take())
    step = c.step
    step_points(c, s, 1)  # read as the plan was aborted: its event never saved
    run.end()
    assert step.closed and not fake.streaming
    assert run.uid in str(step.path)  # the file is named by its run
    assert file_numbers(step.path) == [1, 2]
    assert file_numbers(step.path, UNREFERENCED_PATH) == [3]
    assert step.unreferenced == 1 and "1 frames acquired after" in step.summary_line()
    c.unstage()


def test_closing_a_staged_controller_closes_the_file_and_releases_the_camera(core, fake):
    c = core.controller
    s = settings(stall_timeout=60)
    c.stage(s)
    step_points(c, s, 1)
    waiting = pending_point(c, fake, s, stall_at=2)
    step = c.step
    c.close()
    assert isinstance(waiting.outcome(), AcquisitionInterrupted)
    assert step.closed and not fake.streaming
    assert file_numbers(step.path) == [1]


# ---- fly scans ------------------------------------------------------------------------------


def test_kickoff_complete_collect_each_once_and_the_file_closes_after_the_collect(core, fake):
    c = core.controller
    s = settings(num_frames=50)
    kickoff, complete = Done(), Done()
    c.kickoff(s, kickoff)
    assert kickoff.outcome() is None
    c.complete(complete)
    assert complete.outcome() is None and complete.progress[-1] == 50
    fly = c.fly
    assert not fake.streaming and fake.stop_calls == 1
    assert not fly.closed  # until the run has taken every frame
    assert collect(c) == list(range(1, 51))
    assert fly.closed and file_numbers(fly.path) == list(range(1, 51))
    assert core.reports > 0 and core.announced == []


def test_an_unbounded_fly_runs_until_complete_stops_it(core, fake):
    c = core.controller
    c.kickoff(settings(num_frames=0), Done())
    wait_until(lambda: fake.frames_made >= 30, "frames")
    complete = Done()
    c.complete(complete)
    assert complete.outcome() is None
    assert not fake.streaming
    numbers = collect(c)
    assert len(numbers) >= 30 and numbers == list(range(1, len(numbers) + 1))
    assert file_numbers(c.last.path) == numbers


def test_lost_fly_frames_are_counted_by_reason_and_reported_beside_the_next(core, fake):
    fake.script.update({5: "drop", 6: "drop", 9: "torn", 20: "drop"})
    c = core.controller
    c.kickoff(settings(num_frames=20), Done())
    complete = Done()
    c.complete(complete)
    assert complete.outcome() is None
    list(c.collect_asset_docs())
    (page,) = list(c.collect_pages())
    data = page["data"]
    kept = [n for n in range(1, 20) if n not in (5, 6, 9)]
    assert data["cam_frame_number"] == kept
    lost_before = dict(zip(data["cam_frame_number"], data["cam_lost_before"], strict=True))
    assert lost_before[7] == 2 and lost_before[10] == 1
    assert data["cam_lost_after"][-1] == 1  # frame 20: no later frame to report it
    fly = c.last
    assert dict(fly.ledger.lost.by_reason) == {GAP: 3, TORN: 1}
    assert lost_reasons(fly.path) == {GAP: 3, TORN: 1}
    assert file_numbers(fly.path) == kept


def test_a_stall_while_no_completion_waits_is_announced_once_then_complete_fails(core, fake):
    c = core.controller
    fake.script[10] = "stall"
    c.kickoff(settings(num_frames=50, stall_timeout=0.3), Done())
    wait_until(lambda: core.announced, "the stall announced")
    (announced,) = core.announced
    assert isinstance(announced, FrameStallError) and c.stall_error is announced
    wait_until(lambda: not fake.streaming, "the camera stopped")
    complete = Done()
    c.complete(complete)
    assert complete.outcome() is announced  # not delivered to the plan yet: it is now
    assert collect(c) == list(range(1, 10))
    assert len(core.announced) == 1


def test_a_stall_while_complete_waits_fails_it_and_is_not_announced(core, fake):
    c = core.controller
    fake.script[10] = "stall"
    c.kickoff(settings(num_frames=50, stall_timeout=0.3), Done())
    complete = Done()
    c.complete(complete)
    assert isinstance(complete.outcome(), FrameStallError)
    assert core.announced == [] and not fake.streaming
    assert collect(c) == list(range(1, 10))


def test_a_refused_start_fails_the_kickoff_and_leaves_no_file(core, fake, tmp_path):
    fake.refuse_start = True
    c = core.controller
    kickoff = Done()
    c.kickoff(settings(num_frames=5), kickoff)
    failure = kickoff.outcome()
    assert isinstance(failure, CameraAcquisitionError) and "refused to start" in str(failure)
    assert list(tmp_path.rglob("*.h5")) == []
    fake.refuse_start = False
    c.kickoff(settings(num_frames=5), Done())
    complete = Done()
    c.complete(complete)
    assert complete.outcome() is None and collect(c) == [1, 2, 3, 4, 5]


def test_a_paused_fly_waits_and_goes_on_at_resume_completing_once(core, fake):
    c = core.controller
    c.kickoff(settings(num_frames=100), Done())
    complete = Done()
    c.complete(complete)
    wait_until(lambda: fake.frames_made >= 20, "frames")
    c.pause()
    assert not fake.streaming and not complete.ended.is_set()
    c.resume()
    assert complete.outcome() is None  # once, when the 100 frames are in
    fly = c.fly
    assert fake.starts == 2 and len(collect(c)) == 100
    assert fly.closed and fly.ledger.lost.total == 0 and len(fly.pauses) == 1


def test_stop_mid_fly_fails_complete_once_and_keeps_the_frames(core, fake):
    c = core.controller
    c.kickoff(settings(num_frames=100_000), Done())
    complete = Done()
    c.complete(complete)
    wait_until(lambda: fake.frames_made >= 20, "frames")
    c.stop()
    failure = complete.outcome()
    assert isinstance(failure, AcquisitionInterrupted) and "was stopped" in str(failure)
    assert not fake.streaming
    fly = c.fly
    numbers = collect(c)
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 20
    assert fly.closed and file_numbers(fly.path) == numbers


def test_closing_mid_fly_stops_the_camera_ends_complete_once_and_closes_the_file(core, fake):
    c = core.controller
    c.kickoff(settings(num_frames=100_000), Done())
    complete = Done()
    c.complete(complete)
    wait_until(lambda: fake.frames_made >= 20, "frames")
    fly = c.fly
    c.close()
    complete.outcome()  # ended, once (finished: the camera stopped with no error)
    assert not fake.streaming and fly.closed
    on_disk = file_numbers(fly.path)
    assert on_disk == list(range(1, len(on_disk) + 1)) and len(on_disk) >= 20


def test_the_end_of_the_run_keeps_the_collected_frames_and_sets_the_rest_apart(core, fake):
    """The plan collected once, then failed elsewhere: bluesky neither collects again nor
    stops the camera; the run's end does both."""
    run = core.run = FakeRun()
    c = core.controller
    c.kickoff(settings(num_frames=100_000), Done())
    wait_until(lambda: fake.frames_made >= 20, "frames")
    collected = collect(c)
    assert collected == list(range(1, len(collected) + 1))
    wait_until(lambda: fake.frames_made >= len(collected) + 20, "more frames")
    fly = c.fly
    run.end()
    assert fly.closed and not fake.streaming
    assert file_numbers(fly.path) == collected  # what the run's events reference
    apart = file_numbers(fly.path, UNREFERENCED_PATH)
    assert apart and apart[0] == len(collected) + 1 and fly.unreferenced == len(apart)


def test_a_collect_while_the_run_is_torn_down_stops_the_camera_and_takes_everything(core, fake):
    run = core.run = FakeRun()
    c = core.controller
    c.kickoff(settings(num_frames=100_000), Done())
    wait_until(lambda: fake.frames_made >= 20, "frames")
    fly = c.fly
    run.ending = True  # the RunEngine aborts: its final collect comes first
    numbers = collect(c)
    assert not fake.streaming and numbers == list(range(1, len(numbers) + 1))
    run.end()
    assert fly.closed
    assert file_numbers(fly.path) == numbers and fly.unreferenced == 0


def test_a_busy_camera_refuses_the_other_kind_of_scan(core, fake):
    c = core.controller
    with pytest.raises(RuntimeError, match="without a kickoff"):
        c.complete(Done())
    c.stage(settings())
    step_points(c, settings(), 1)
    with pytest.raises(RuntimeError, match="staged for a step scan"):
        c.kickoff(settings(), Done())
    c.unstage()
    c.kickoff(settings(num_frames=100_000), Done())
    with pytest.raises(RuntimeError, match="busy with a fly scan"):
        c.stage(settings())
    with pytest.raises(RuntimeError, match="busy with a fly scan"):
        c.kickoff(settings(), Done())
    with pytest.raises(RuntimeError, match="busy"):
        c.snap(settings())
    c.stop()
    assert not fake.streaming


def test_the_camera_is_read_only_while_idle(core, fake):
    """Temperature and readout time come from the last idle reading while frames stream
    (the fake raises on any parameter call mid-stream, failing the acquisition)."""
    c = core.controller
    before = c.readings()
    c.kickoff(settings(num_frames=300), Done())
    wait_until(lambda: c.acquiring, "streaming")
    during = [c.readings() for _ in range(20)]
    complete = Done()
    c.complete(complete)
    assert complete.outcome() is None
    assert all(r.temperature == -20.0 and r.read_at <= time.time() for r in during)
    assert before.temperature == -20.0
    assert len(collect(c)) == 300


def test_the_automatic_memory_buffer_is_sized_once_and_kept_between_runs(core, monkeypatch):
    """What is available changes with the page cache from run to run; remaking (and
    remapping) the queue each time would cost memory and time for nothing."""
    available = iter([64, 32, 16])
    monkeypatch.setattr(controller_module, "automatic_memory_buffer_mib", lambda: next(available))
    c = core.controller
    queues = []
    for _ in range(2):
        c.kickoff(settings(num_frames=5, memory_buffer=0), Done())
        complete = Done()
        c.complete(complete)
        assert complete.outcome() is None and collect(c) == [1, 2, 3, 4, 5]
        queues.append(c.last.ctx.frames)
    first, second = queues
    assert second is first and first.capacity == (64 << 20) // (16 * 8 * 2)
