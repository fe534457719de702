"""Sequences nobody listed: a model of the RunEngine drives the acquisition core through
random interleavings of its calls, pauses, resumes and faults (Hypothesis stateful
testing), and checks after every step what must hold whatever the sequence.

The model is a RunEngine as bluesky 1.15 behaves (docs/decisions/0009): it stages,
opens a run, triggers a point and waits for it, reads it (takes its Datum) and saves
it (emits the Datum); a pause stops the devices, and its resume replays the plan
since the last checkpoint -- the point whose Datum was taken but not saved is
triggered again, a fly scan's kickoff and complete are sent again.  The camera is
the fake one (frames every millisecond), whose next frames can be held (a frame
that does not come: an exposure in progress, or a stall once the watchdog's
timeout is short), dropped, torn, or fail the readout or the connection; the disk
can stall or fill.

Checked after every step: no SDK call from a second thread or while frames stream;
no status ends twice; the camera is stopped once a pause, a stop or a session's end
has returned.  Checked on every closed file: it is readable, its rows are exactly
the rows the run references, frame times never run backwards, and every frame the
camera made is written or counted lost with its reason.  Every status ends exactly
once by the end of the sequence.

A failing sequence Hypothesis finds is kept below as an ``@example``-style test
(``test_found_...``), written out as the calls it made.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
from core_harness import DEADLINE, Core, Done, FakeRun, settings
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from ophyd_pvcam.acquisition import GAP, as_markdown, missing_cells
from ophyd_pvcam.errors import DiskError, FrameStallError
from ophyd_pvcam.storage import DATA_PATH, UNREFERENCED_PATH, FrameFile, record_path
from ophyd_pvcam.testing import FakeBackend

FPP = 2  # frames per point: a pause can land between a point's frames
HOLD_S = 30.0  # the stall timeout while a held frame is an exposure, not a stall
STEP = settings(frames_per_point=FPP, stall_timeout=HOLD_S, memory_buffer=16)
FAULTS = ["drop", "torn", "fail", "lost"]


def fly_settings(frames: int):
    return settings(num_frames=frames, stall_timeout=HOLD_S, memory_buffer=16)


SLOW_WRITE_S = 0.02  # a write on a slow disk


class Disk:
    """The disk under the frame files: it can be slow (each write waits) or full."""

    def __init__(self) -> None:
        self.flowing = threading.Event()
        self.flowing.set()
        self.full = False

    def write(self, original):
        disk = self

        def write(file, row, pixels, chunk):
            disk.flowing.wait(SLOW_WRITE_S)  # slow, not dead: the write goes on
            if disk.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            return original(file, row, pixels, chunk)

        return write


class RunEngineModel(RuleBasedStateMachine):
    """A RunEngine, a camera and a disk, as the core sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="model-"))
        self.fake = FakeBackend(period_s=0.001)
        self.core = Core(self.fake, self.folder)
        self.c = self.core.controller
        self.statuses: list[Done] = []
        self.run: FakeRun | None = None
        self.staged = False
        self.paused = False
        self.point: Done | None = None  # a trigger the plan waits on
        self.taken: list | None = None  # a point read (its Datum taken), not yet saved
        self.kicked = False  # a fly scan kicked off and not yet completed and collected
        self.completing: Done | None = None
        # statuses of waits a pause interrupted: bluesky waits on them again after the
        # resume, beside the replayed ones, so they must end with those
        self.interrupted: list[Done] = []
        self.completed = False
        self.held = False  # the camera holds back its next frame
        self.filled = False  # the disk has been full (a write may have failed since)
        self.fly_frames = 0
        self.sessions: dict[Path, tuple[FakeRun, object]] = {}  # file -> its run, session

    # ---- plumbing ---------------------------------------------------------------------

    def status(self) -> Done:
        done = Done()
        self.statuses.append(done)
        return done

    def note_session(self) -> None:
        session = self.c.last
        if session is not None and session.path not in self.sessions:
            assert self.run is not None
            self.sessions[session.path] = (self.run, session)

    def wait(self, done: Done) -> BaseException | None:
        assert done.ended.wait(DEADLINE), "a status the plan waits on never ended"
        return done.endings[0]

    @property
    def moving(self) -> bool:
        """Frames can reach the disk (the plan can wait on them without hanging)."""
        return not (self.held or self.paused)

    def hold_next(self) -> None:
        self.fake.resume.clear()
        self.fake.upcoming.append("stall")
        self.held = True

    # ---- the run ---------------------------------------------------------------------

    @precondition(lambda self: self.run is None and not self.paused)
    @rule()
    def open_run(self) -> None:
        self.run = FakeRun(str(uuid.uuid4()))
        self.core.run = self.run

    @precondition(
        lambda self: (
            self.run is not None
            and not self.paused
            and self.point is None
            and self.taken is None
            and not self.kicked
        )
    )
    @rule()
    def close_run(self) -> None:
        assert self.run is not None
        self.run.end()
        self.run = self.core.run = None
        self.after_end()

    @precondition(lambda self: self.run is not None)
    @rule()
    def abort(self) -> None:
        """RE.abort(), paused or not: stop the devices, end the run, unstage."""
        assert self.run is not None
        self.c.stop()
        assert not self.fake.streaming, "stop() returned with the camera running"
        self.run.ending = True
        self.run.end()
        self.run = self.core.run = None
        if self.staged:
            self.c.unstage()
            self.staged = False
        self.point = self.taken = self.completing = None
        self.kicked = self.completed = self.paused = False
        self.release_all()
        self.after_end()

    def wait_interrupted(self) -> None:
        for done in self.interrupted:
            assert done.ended.wait(DEADLINE), "an interrupted wait's status never ended"
        self.interrupted.clear()

    def after_end(self) -> None:
        for path, (_, session) in self.sessions.items():
            if session.closed:
                self.check_file(path, session)

    def release_all(self) -> None:
        self.fake.resume.set()
        self.fake.upcoming.clear()
        self.held = False

    # ---- step scans --------------------------------------------------------------------

    @precondition(lambda self: not self.staged and not self.kicked and not self.paused)
    @rule()
    def stage(self) -> None:
        self.c.stage(STEP)
        self.staged = True

    @precondition(
        lambda self: (
            self.staged
            and self.point is None
            and self.taken is None
            and not self.paused
            and self.run is None
        )
    )
    @rule()
    def unstage(self) -> None:
        self.c.unstage()
        self.staged = False

    @precondition(
        lambda self: (
            self.staged
            and self.run is not None
            and self.point is None
            and self.taken is None
            and not self.paused
        )
    )
    @rule(fate=st.sampled_from([None, None, "hold", *FAULTS]))
    def trigger(self, fate) -> None:
        self.fake.upcoming.clear()  # fates meant for a point that was refused
        if fate == "hold":
            self.hold_next()
        elif fate is not None:
            self.fake.upcoming.append(fate)
        self.point = self.status()
        self.c.trigger(STEP, self.point)
        self.note_session()
        if self.point.done:  # refused (a failed session refuses until it is unstaged)
            self.release_all()

    @precondition(lambda self: self.point is not None and self.moving)
    @rule()
    def wait_for_point(self) -> None:
        assert self.point is not None
        error = self.wait(self.point)
        self.point = None
        self.wait_interrupted()
        if error is None:
            step = self.c.step
            assert step is not None
            self.taken = list(step.docs.take())  # read: the Datum is taken

    @precondition(lambda self: self.taken is not None and not self.paused)
    @rule()
    def save(self) -> None:
        assert self.run is not None and self.taken is not None
        self.run.emit(self.taken)  # the event is saved: its Datum goes out
        self.taken = None

    # ---- fly scans ---------------------------------------------------------------------

    @precondition(
        lambda self: (
            self.run is not None and not self.staged and not self.kicked and not self.paused
        )
    )
    @rule(frames=st.integers(1, 12), fate=st.sampled_from([None, None, "hold", *FAULTS]))
    def kickoff(self, frames, fate) -> None:
        self.fake.upcoming.clear()
        if fate == "hold":
            self.fake.upcoming.extend([None] * (frames // 2))
            self.hold_next()
        elif fate is not None:
            self.fake.upcoming.extend([None] * (frames // 2) + [fate])
        done = self.status()
        self.fly_frames = frames
        self.c.kickoff(fly_settings(frames), done)
        self.note_session()
        self.wait(done)
        self.kicked = True
        self.completed = False

    @precondition(
        lambda self: (
            self.kicked and self.completing is None and not self.completed and not self.paused
        )
    )
    @rule()
    def complete(self) -> None:
        self.completing = self.status()
        self.c.complete(self.completing)

    @precondition(lambda self: self.completing is not None and self.moving)
    @rule()
    def wait_for_complete(self) -> None:
        assert self.completing is not None
        self.wait(self.completing)
        self.completing = None
        self.wait_interrupted()
        self.completed = True

    @precondition(lambda self: self.kicked and not self.paused)
    @rule()
    def collect(self) -> None:
        assert self.run is not None
        docs = list(self.c.collect_asset_docs())
        list(self.c.collect_pages())
        self.run.emit(docs)
        if self.completed:
            self.kicked = False  # bp.fly: complete, collect, then the run closes

    # ---- pauses --------------------------------------------------------------------------

    @precondition(lambda self: self.run is not None and not self.paused)
    @rule()
    def pause(self) -> None:
        self.c.pause()
        assert not self.fake.streaming, "pause() returned with the camera running"
        self.paused = True
        self.taken = None  # read but not saved: the RunEngine rewinds past it
        self.release_all()

    @precondition(lambda self: self.paused)
    @rule()
    def resume(self) -> None:
        self.c.resume()
        self.paused = False
        if self.point is not None:
            # the interrupted trigger: bluesky waits on it again, and triggers anew
            self.interrupted.append(self.point)
            self.point = None
        if self.kicked:
            # bp.fly has no checkpoint after open_run: kickoff and complete again
            again = self.status()
            self.c.kickoff(fly_settings(self.fly_frames), again)
            self.note_session()
            error = self.wait(again)
            assert error is None or self.c.fly is None or self.c.fly.error is not None, error
            if self.completing is not None or self.completed:
                if self.completing is not None:
                    self.interrupted.append(self.completing)
                self.completing = self.status()
                self.completed = False
                self.c.complete(self.completing)

    # ---- faults ------------------------------------------------------------------------

    @precondition(lambda self: self.held and not self.paused)
    @rule()
    def release(self) -> None:
        self.fake.resume.set()
        self.held = False

    @precondition(lambda self: self.held and not self.paused)
    @rule()
    def stall(self) -> None:
        """The held frame never comes: the watchdog, with a short timeout, fails the work."""
        waiting = self.point or self.completing
        self.c.set_stall_timeout(0.05)
        if waiting is not None:
            error = self.wait(waiting)
            assert isinstance(error, FrameStallError | DiskError if self.filled else
                              FrameStallError), error  # fmt: skip
            self.point = None if waiting is self.point else self.point
        else:
            session = self.c.last
            deadline = time.monotonic() + DEADLINE
            while (
                session is not None
                and session.error is None
                and session.stream
                and not session.stream.done.is_set()
            ):
                assert time.monotonic() < deadline, "the stall was never noticed"
                threading.Event().wait(0.005)
        self.c.set_stall_timeout(HOLD_S)
        self.release_all()

    @rule(state=st.sampled_from(["slow", "fast", "full", "has room"]))
    def disk(self, state) -> None:
        if state == "slow":
            DISK.flowing.clear()
        elif state == "fast":
            DISK.flowing.set()
        else:
            DISK.full = state == "full"
            self.filled = self.filled or DISK.full

    # ---- what must hold after every step ------------------------------------------------

    @invariant()
    def holds(self) -> None:
        assert self.fake.violations == []  # one owner; nothing but streaming calls while streaming
        for done in self.statuses:
            assert len(done.endings) <= 1, done.endings
        sessions = (self.c.step, self.c.fly)
        if all(s is None or s.closed for s in sessions):
            assert not self.fake.streaming, "no session acquires, yet the camera runs"

    def teardown(self) -> None:
        try:
            DISK.flowing.set()
            self.release_all()
            if self.run is not None:
                self.run.end()
            self.c.unstage()
            self.c.close()
            for path, (_, session) in self.sessions.items():
                self.check_file(path, session)
            for done in self.statuses:
                assert done.ended.wait(DEADLINE) and len(done.endings) == 1, done.endings
            assert not self.fake.streaming and self.fake.violations == []
            self.check_every_frame_counted()
        finally:
            DISK.full = False
            shutil.rmtree(self.folder, ignore_errors=True)

    # ---- the files ------------------------------------------------------------------------

    def check_file(self, path: Path, session) -> None:
        """Closed, readable, exactly the referenced rows, times forward."""
        if not path.exists():
            assert session.file.rows == 0  # a start refused: nothing was kept
            return
        run, _ = self.sessions[path]
        with h5py.File(path, "r") as f:
            rows = f[DATA_PATH].shape[0]
            times = f[record_path("frame_time")][()]
        per_datum = FPP if session.kind == "step" else 1
        emitted = run.datums.get(session.docs.resource_uid, 0)
        assert rows == emitted * per_datum, (path.name, rows, emitted)
        assert len(times) == rows
        assert np.all(np.diff(times) >= 0), times

    def check_every_frame_counted(self) -> None:
        """Every frame the camera handed over is in a file or counted with its reason;
        every frame it lost on the way that a later frame revealed is counted as a gap."""
        received = gaps = 0
        for path, (_, session) in self.sessions.items():
            ledger = session.ledger
            received += ledger.received
            kept = 0
            lost: dict[str, int] = {}
            if path.exists():
                with h5py.File(path, "r") as f:
                    kept = f[DATA_PATH].shape[0]
                    if UNREFERENCED_PATH in f:
                        kept += f[UNREFERENCED_PATH].shape[0]
                    lost = json.loads(f["entry"].attrs.get("lost_frames", "{}"))
            gap = lost.pop(GAP, 0)
            gaps += gap
            passed_over = ledger.unrequested + ledger.duplicates + ledger.extra
            assert ledger.received == kept + sum(lost.values()) + passed_over, (
                path.name, ledger.received, kept, lost, passed_over,
            )  # fmt: skip
        assert received == self.fake.delivered
        assert gaps <= self.fake.dropped


DISK = Disk()


@pytest.fixture(autouse=True)
def disk(monkeypatch):
    monkeypatch.setattr(FrameFile, "write", DISK.write(FrameFile.write))
    yield DISK
    DISK.flowing.set()
    DISK.full = False


def test_every_cell_of_both_tables_is_defined():
    assert missing_cells("step") == []
    assert missing_cells("fly") == []


def test_the_decision_record_shows_the_tables_the_code_has():
    record = (
        Path(__file__).parents[2]
        / "docs/decisions/0010-session-phases-every-call-in-every-phase.md"
    )
    text = record.read_text()
    assert as_markdown("step") in text and as_markdown("fly") in text


RunEngineModel.TestCase.settings = hsettings(
    max_examples=int(os.environ.get("MODEL_EXAMPLES", "1000")),
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([Phase.shrink] if os.environ.get("MODEL_SHRINK", "1") == "1" else []),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class TestSequences(RunEngineModel.TestCase):
    """Hypothesis searches sequences of the model's rules."""

    @pytest.fixture(autouse=True)
    def _disk(self, disk):
        yield


# ---- sequences the search found, kept (each failed once) ------------------------------------


def play(*steps: str) -> None:
    """Run the model through ``steps`` ("rule" or "rule:arg=value,..."), checking what
    must hold after each, then tear it down (which checks the files)."""
    model = RunEngineModel()
    try:
        for step in steps:
            name, _, args = step.partition(":")
            kwargs = {}
            for pair in filter(None, args.split(",")):
                key, value = pair.split("=")
                kwargs[key] = None if value == "None" else int(value) if value.isdigit() else value
            getattr(model, name)(**kwargs)
            model.holds()
            if os.environ.get("MODEL_TRACE"):
                for session in (model.c.step, model.c.fly):
                    if session is not None:
                        print(step, session.phase, session.file.rows, list(session.ledger.numbers))
    finally:
        model.teardown()


def test_found_a_retaken_point_then_a_pause_keeps_both_points(disk):
    play("open_run", "stage", "trigger:fate=None", "wait_for_point", "save",
         "trigger:fate=None", "pause", "resume", "trigger:fate=drop", "wait_for_point",
         "save", "disk:state=slow", "pause", "disk:state=full")  # fmt: skip


def test_found_frames_of_a_retaken_point_are_counted_once(disk):
    """The retake failed: the first take's rows, never overwritten, were kept apart in
    the file and counted lost as retaken too."""
    play("open_run", "stage", "trigger:fate=drop", "wait_for_point", "pause", "resume",
         "trigger:fate=fail", "wait_for_point")  # fmt: skip


def test_found_a_kickoff_replayed_after_the_last_frame_joins_the_scan(disk):
    """Paused once every frame was in: the replayed kickoff started a second scan,
    closing the first with its frames unreferenced."""
    play("open_run", "kickoff:frames=3,fate=None", "pause", "resume", "complete",
         "wait_for_complete", "collect", "close_run")  # fmt: skip


def test_found_a_pause_while_a_stall_stops_the_camera_waits_for_it(disk):
    play("open_run", "kickoff:frames=1,fate=hold", "stall", "pause", "resume")


def test_found_complete_after_a_failed_collected_fly_fails_with_its_error(disk):
    """It raised 'complete() without a kickoff()', leaving the status never ended."""
    play("open_run", "kickoff:frames=1,fate=lost", "collect", "complete", "wait_for_complete")


class HeldDisk:
    """Writes wait at a gate (a disk that stalls); ``refuse(row)``: the disk is full
    when that row comes."""

    def __init__(self, monkeypatch) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.refuse = lambda row: False
        original = FrameFile.write

        def write(file, row, pixels, chunk):
            assert self.gate.wait(DEADLINE), "the disk never came back"
            if self.refuse(row):
                raise OSError(errno.ENOSPC, "No space left on device")
            return original(file, row, pixels, chunk)

        monkeypatch.setattr(FrameFile, "write", write)


def interrupted_while_queued(monkeypatch, tmp_path, full: bool):
    """Point 1's frames wait for a stalled disk when a pause interrupts it; after the
    resume the RunEngine takes it again; then the disk comes back -- full, if ``full``,
    once the retake's frames come (numbered from 1 again: the pause stopped the camera)
    after whatever else was queued."""
    held = HeldDisk(monkeypatch)
    fake = FakeBackend(period_s=0.001)
    core = Core(fake, tmp_path)
    c = core.controller
    run = core.run = FakeRun(str(uuid.uuid4()))
    c.stage(STEP)
    first = Done()
    c.trigger(STEP, first)
    assert first.outcome() is None
    step = c.step
    assert step is not None
    run.emit(list(step.docs.take()))
    held.gate.clear()
    interrupted = Done()
    c.trigger(STEP, interrupted)
    deadline = time.monotonic() + DEADLINE
    while step.writer.submitted < 2 * FPP:  # point 1's frames are queued
        assert time.monotonic() < deadline, "point 1's frames never came"
        threading.Event().wait(0.002)
    c.pause()
    c.resume()
    retake = Done()
    c.trigger(STEP, retake)
    if full:
        held.refuse = lambda row: row.row >= FPP and row.number <= FPP
    held.gate.set()
    return core, step, interrupted, retake


def test_found_a_retaken_point_reports_its_own_frames_not_the_interrupted_ones(
    monkeypatch, tmp_path
):
    core, step, interrupted, retake = interrupted_while_queued(monkeypatch, tmp_path, False)
    try:
        assert retake.outcome() is None and interrupted.outcome() is None
        own = [int(n) for n in step.ledger.numbers[FPP:]]  # the stamp is the frame number
        rows, columns = STEP.image_shape
        assert step.last_point is not None
        assert step.last_point.mean == pytest.approx(sum(own) / (rows * columns * FPP))
        assert step.last_point.max == max(own)
    finally:
        core.controller.close()


def test_found_a_retake_the_disk_refused_is_counted_not_taken_for_written(monkeypatch, tmp_path):
    core, step, interrupted, retake = interrupted_while_queued(monkeypatch, tmp_path, True)
    try:
        assert isinstance(retake.outcome(), DiskError)
        assert isinstance(interrupted.outcome(), DiskError)  # it ends with its retake
        core.run.end()
        with h5py.File(step.path, "r") as f:
            rows = f[DATA_PATH].shape[0]
            unreferenced = f[UNREFERENCED_PATH].shape[0] if UNREFERENCED_PATH in f else 0
            lost = json.loads(f["entry"].attrs["lost_frames"])
        assert rows == FPP and unreferenced == 0  # point 0 only: the run's one Datum
        # the interrupted point's frames, and the retake's the disk refused: counted
        assert sum(lost.values()) == 2 * FPP
        assert step.ledger.received == rows + sum(lost.values())
    finally:
        core.controller.close()


# ---- the defects issue 19 reported, as sequences of the model ----------------------------


def test_issue_a_pause_during_an_exposure_resumes_and_the_run_ends_well(disk):
    """RE.resume() raised 'cam: the run ended'; frame times ran back after it."""
    play("open_run", "stage", "trigger:fate=None", "wait_for_point", "save",
         "trigger:fate=hold", "pause", "resume", "trigger:fate=None", "wait_for_point",
         "save", "close_run", "unstage")  # fmt: skip


def test_issue_a_pause_between_read_and_save_keeps_rows_and_events_equal(disk):
    """The file kept the point read but never saved: 422, cannot reshape (21, ...)."""
    play("open_run", "stage", "trigger:fate=None", "wait_for_point", "pause", "resume",
         "trigger:fate=None", "wait_for_point", "save", "close_run", "unstage")  # fmt: skip


def test_issue_an_abort_during_an_exposure_ends_every_status(disk):
    play("open_run", "stage", "trigger:fate=None", "wait_for_point", "save",
         "trigger:fate=hold", "abort")  # fmt: skip


def test_issue_a_paused_fly_scan_resumes_in_the_same_run(disk):
    """It could not be resumed ('stopped by a pause'), and miscounted its frames."""
    play("open_run", "kickoff:frames=12,fate=hold", "complete", "pause", "resume",
         "wait_for_complete", "collect", "close_run")  # fmt: skip


def test_issue_a_full_disk_fails_the_fly_and_the_file_replays(disk):
    play("open_run", "disk:state=full", "kickoff:frames=6,fate=None", "complete",
         "wait_for_complete", "collect", "close_run", "disk:state=has room",
         "open_run", "kickoff:frames=3,fate=None", "complete", "wait_for_complete",
         "collect", "close_run")  # fmt: skip
