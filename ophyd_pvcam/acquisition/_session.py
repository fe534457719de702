"""What step and fly sessions share: one file, one ledger, one lock, one way to end.

A session is one run's worth of frames from one camera: it opens a frame file,
starts acquisitions on the owner thread (it is their ``FrameSink``:
each frame goes through the :class:`~ophyd_pvcam.acquisition.FrameLedger` to a row of the
file, via the :class:`~ophyd_pvcam.storage.FrameWriter`), and ends exactly once:
:meth:`Session.close` stops the camera, writes what is queued, counts what could not
be kept, and closes the file with exactly the rows the run references.

Threads: the owner thread calls the sink methods; the writer thread reports
progress; the watchdog reports stalls; the RunEngine thread triggers, kicks off,
collects and closes; the device's ``report`` callback reads the session from
whichever of them reports.

Which calls act in which phase is one table per kind (``_states.py``); a call looks
up its rule with :meth:`Session.move`, under the lock, before it acts.

Under ``self._lock``: every change of the session's phase, its error and stall, the
watchdog's token, a step scan's stream, the pending step point and the fly scan's
statuses, and what a fly scan has handed to the run (its datums, events and stream
documents; a step scan's documents guard themselves with their own lock).  A status
is finished by whichever method takes it from the session under the lock, so it
finishes exactly once, and after the lock is let go (its callbacks may call back
in); a trigger refused at once fails where it is refused.

Not under the lock, on purpose:

- The :class:`~ophyd_pvcam.acquisition.FrameLedger`.  While a stream runs only the
  owner thread changes it, frame by frame (taking the lock per frame would make the
  camera wait on the RunEngine); other threads only read it.  A count or a row is
  read whole (one attribute or one ``array`` slice, atomic under the GIL), at worst a
  frame old, and rows already handed to the run are never changed while the camera
  runs.  What is unsafe is iterating a container while the owner adds to it: lists
  and arrays are read by slicing (one call), and ``lost.by_reason``, which gains a key
  at a reason's first loss, is copied in one call by :meth:`Session.summary_line`
  before it iterates.  Other threads change the ledger (``abandon`` at a pause,
  ``go_on`` at a fly scan's resume, ``unwritten`` at close) only after
  :meth:`Session.stop_camera` has waited for the stream to end -- unless it gave up
  after ``STOP_TIMEOUT_S``, which it logs as an error.  The exception is ``retake``
  (a step trigger after a rewind), made while the camera waits for that trigger:
  only a hardware-triggered camera can deliver a frame then, counted unrequested.
  The writer asks :meth:`~ophyd_pvcam.acquisition.FrameLedger.stale` whether a queued
  row was dropped meanwhile; drops are only appended.
- The writer's counters: ``submitted`` is written by the owner thread, ``processed``
  and ``flushed`` by the writer thread, each an int with one writer; a reader gets a
  whole value, possibly a frame old.  A step point completes on the writer thread,
  from the count it has just flushed; a fly scan's complete waits for the writer
  through :meth:`~ophyd_pvcam.storage.FrameWriter.drain`, which reads ``flushed``
  under the writer's own condition.
- ``StepSession._pending`` is set and cleared under the lock, but the owner and writer
  threads read it without: there a point is only annotated (its last frame's
  sequence, its statistics), and :meth:`StepSession._finish_point` checks again under
  the lock that it is still the pending point, so a point a pause abandoned meanwhile
  is never finished.  The writer thread likewise reads a fly scan's complete status
  without the lock, only to report progress on it while it is not done.
- The phase is read without the lock where a stale answer only delays a decision
  that :meth:`Session.move` takes again under it (``closed``, a fly scan's
  ``drained`` and ``paused``, a step scan's ``waiting``, the controller's checks).
- Plain values written by one thread and read by others (``readings``,
  ``unreferenced``; a fly scan's ``stream``, set by its kickoff before the stream
  starts): a reader sees the old value or the new one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ophyd_pvcam.errors import (
    RAISED,
    AcquisitionInterrupted,
    CameraAcquisitionError,
    CameraLostError,
    FrameStallError,
)
from ophyd_pvcam.hardware import CameraError, CameraSetup, FrameInfo, Readings
from ophyd_pvcam.paths import frame_file_path
from ophyd_pvcam.storage import (
    AssetDocs,
    FrameFile,
    FrameQueue,
    FrameWriter,
    Row,
    check_free_space,
    frames_per_chunk,
)

from ._ledger import MEMORY, TORN, FrameLedger, Placement
from ._owner import CameraOwner, Stream
from ._readout import ReadoutModel
from ._seams import RunLink
from ._states import Call, Phase, Rule, Verdict
from ._watchdog import StallMonitor

log = logging.getLogger(__name__)
summary = logging.getLogger("ophyd_pvcam.summary")  # one line per acquisition

STOP_TIMEOUT_S = 30.0  # a camera stop and the writer's flush, however slow the disk
PROGRESS_INTERVAL_S = 0.1


@dataclass
class SessionContext:
    """What a session needs from its device (built by the device for each session)."""

    name: str
    owner: CameraOwner
    monitor: StallMonitor
    frames: FrameQueue
    root: Path
    run: RunLink | None
    setup: CameraSetup
    frames_per_point: int
    buffer_frames: int
    attributes: dict[str, Any]
    compression: str  # of the frames in the file: "none" or "bslz4"
    stall_timeout: Callable[[], float]  # the timeout in force now
    period_s: float  # from one frame to the next when the camera times itself
    readout: ReadoutModel  # learns the row time from the readout read after each stop
    diagnose: Callable[[Session, float], str]  # a stall's diagnosis
    report: Callable[[Session], None]  # the device's status signals follow the session
    announce_failure: Callable[[BaseException], None]
    file_stem: str | None = None  # the file's name before _<kind>.h5 (None: ``name``)


class Session:
    """Base of ``StepSession`` and ``FlySession``."""

    kind = "frames"
    # small frames share HDF5 chunks (ADR 0012): a fly scan's; a step point flushes at
    # every point, and would store its growing chunk again each time
    batches_frames = False
    row_statistics = False  # does _row_written look at each frame (then it gets them)
    rules: dict[tuple[Phase, Call], Rule]  # the kind's table (_states.py)

    def __init__(self, ctx: SessionContext, ledger: FrameLedger):
        self.ctx = ctx
        self.name = ctx.name
        self.ledger = ledger
        self._lock = threading.RLock()
        self.error: BaseException | None = None  # why the session failed, if it did
        self.stall: FrameStallError | None = None
        self.phase = Phase.READY
        self.history: deque[tuple[Phase, Call, Verdict]] = deque(maxlen=64)  # for the log
        self.stream: Stream | None = None
        self.readings: Readings | None = None
        self.unreferenced = 0  # rows moved out of the run's dataset at close
        self.pauses: list[list[float]] = []  # [paused at, resumed at (nan: never)] wall clock
        self._monitor_token: int | None = None
        self._last_progress = 0.0
        self._loss_times: dict[str, tuple[float, float]] = {}  # reason -> first, last
        run_uid = ctx.run.uid if ctx.run is not None else None
        self.resource_path = frame_file_path(
            ctx.root, ctx.file_stem or ctx.name, self.kind, run_uid
        )
        self.path = ctx.root / self.resource_path
        rows, columns = ctx.setup.image_shape
        check_free_space(self.path.parent, rows * columns * 2, self._frames_expected())
        attributes = {
            "device": ctx.name,
            "kind": self.kind,
            "run_uid": run_uid or "",
            "camera_settings": ctx.attributes,
        }
        self.file = FrameFile(
            self.path,
            ctx.setup.image_shape,
            attributes,
            ctx.compression,
            frames_per_chunk(ctx.setup.image_shape, self.batches_frames),
        )
        self.docs = self._documents()
        self.writer = FrameWriter(
            self.file,
            ctx.frames,
            self._written,
            self._row_written if self.row_statistics else None,
            name=ctx.name,
            stale=lambda row: self.ledger.stale(row.generation, row.row),
        )
        self.writer.start()
        if ctx.run is not None:
            ctx.run.when_ends(self.run_ended)
        log.info("%s: %s session writing to %s", self.name, self.kind, self.path)

    def _documents(self) -> Any:
        """What points the run at the file's rows (step: a Resource and a Datum per point)."""
        return AssetDocs(self.ctx.root, self.resource_path, self.ctx.frames_per_point)

    def _frames_expected(self) -> int:
        """Frames this session will write, if known (the disk must hold them)."""
        return 0

    # ---- the phase --------------------------------------------------------------------

    def move(self, call: Call) -> Rule:
        """The rule for ``call`` in the current phase; the session enters its phase.
        Called under ``self._lock``: the phase and what the call does change together."""
        rule = self.rules[self.phase, call]
        self.history.append((self.phase, call, rule.verdict))
        if rule.then is not self.phase:
            log.debug("%s: %s: %s -> %s", self.name, call.value, self.phase.value,
                      rule.then.value)  # fmt: skip
        self.phase = rule.then
        return rule

    @property
    def closed(self) -> bool:
        """The session has begun to close: no call acts on it any more."""
        return self.phase is Phase.CLOSED

    # ---- the sink, on the owner thread -----------------------------------------------

    def started(self, readings: Readings) -> None:
        self.readings = readings

    def want(self, point: int, count: int) -> None:
        self.ledger.want(point, count)

    def outstanding(self) -> int:
        return self.ledger.outstanding

    def triggered(self) -> None:
        self.ledger.triggered()

    def satisfied(self) -> bool:
        return self.ledger.complete

    def frame(self, info: FrameInfo, slot: int | None, now: float) -> None:
        lost = TORN if info.torn else MEMORY if slot is None else None
        placed = self.ledger.arrive(info.number, info.bof, info.eof, now, lost)
        if isinstance(placed, Placement):
            assert slot is not None  # a frame without a slot came as lost: never placed
            ledger = self.ledger
            row = Row(
                placed.row,
                info.number,
                info.bof,
                info.eof,
                ledger.times[placed.row],
                ledger.lost_before[placed.row],
                ledger.generation,
            )
            flush = self._completes_a_point(placed)
            # the writer may be done with it at once: everything about it is known first
            self._placed(placed, self.writer.submitted + 1)
            self.writer.submit(slot, row, flush)
        elif slot is not None:
            self.ctx.frames.release(slot)
        if lost is not None:
            self._note_loss(lost, info.number, now)

    def _note_loss(self, reason: str, number: int, now: float) -> None:
        """The first loss of each kind goes to the log at once; the rest to the summary."""
        first, _ = self._loss_times.get(reason, (now, now))
        if reason not in self._loss_times:
            log.warning("%s: frame %d lost: %s (more are summed up at the end)",
                        self.name, number, reason)  # fmt: skip
        self._loss_times[reason] = (first, now)

    def ended(self, error: BaseException | None, readings: Readings | None) -> None:
        """The acquisition stopped (the camera is stopped): say why, then let the
        session react (:meth:`_stream_ended`)."""
        self.readings = readings or self.readings
        if readings is not None:  # read after the stop: the readout of this very setup
            self.ctx.readout.learn(self.ctx.setup, readings.readout_time_s)
        self._disarm()
        if error is not None:
            self.fail(self._describe(error))
        self._stream_ended(error)

    # ---- to be provided by step and fly sessions -----------------------------------

    def _completes_a_point(self, placement: Placement) -> bool:
        """This frame is the last a pending request needs (flush it at once)."""
        return False

    def _placed(self, placement: Placement, sequence: int) -> None:
        """A frame was queued for writing as the ``sequence``-th (owner thread)."""

    def _written(self, processed: int, flushed: int) -> None:
        """The writer's progress (writer thread)."""

    def _row_written(self, row: Row, pixels: Any) -> None:
        """One row is written (writer thread): statistics, if :attr:`row_statistics`."""

    def _stream_ended(self, error: BaseException | None) -> None:
        """An acquisition ended (owner thread)."""

    def _references(self) -> int:
        """Rows the run references: the file keeps these."""
        raise NotImplementedError

    def _status_waiting(self) -> bool:
        """A status of ours is pending: it will carry a failure to the plan."""
        return False

    def _finish_statuses(self, error: BaseException) -> None:
        """Fail whatever status is still pending (the session is closing)."""

    # ---- failing and closing ----------------------------------------------------------

    def fail(self, error: BaseException, call: Call = Call.FAULT) -> None:
        """Stop with ``error`` (the first one wins); statuses fail once the camera has
        stopped.  If no status of ours is pending to carry it to the plan (it sleeps, or
        waits on other devices), the stall guard is told, and throws it into the plan.
        ``call``: a fault (camera, disk, watchdog) or a stop."""
        with self._lock:
            first = self.error is None
            if first:
                self.error = error
            acts = self.move(call).verdict is Verdict.DO
            carried = self._status_waiting()
            stream = self.stream
        if acts:
            if stream is not None:
                stream.stop()
            self._failed()
        # a stop somebody asked for is no failure to throw into the plan
        if first and not carried and call is Call.FAULT:
            self.ctx.announce_failure(error)

    def _failed(self) -> None:
        """A failure was taken (the camera is told to stop): what the kind does then."""

    def interrupt(self, error: BaseException) -> None:
        """Stop the camera now, failing what waits on it with ``error``."""
        self.fail(error, Call.STOP)
        self.stop_camera()

    def _arm(self) -> None:
        with self._lock:  # a watchdog firing at once waits for the token to be known
            self._monitor_token = self.ctx.monitor.arm(self.ctx.stall_timeout(), self._stalled)

    def _disarm(self) -> None:
        with self._lock:
            token, self._monitor_token = self._monitor_token, None
        if token is not None:
            self.ctx.monitor.disarm(token)

    def _stalled(self, token: int, silent_for: float) -> None:
        """The watchdog fired (its thread): diagnose, then stop the camera -- unless the
        arming it fired for was withdrawn meanwhile (the frames came just in time)."""
        with self._lock:
            if token != self._monitor_token or self.closed or self.error is not None:
                return
            if self.stream is None:
                return
            if self.stream.done.is_set():
                return
            error = FrameStallError(self.ctx.diagnose(self, silent_for))
            self.stall = error
        # for the log file; the error itself reaches the caller (RAISED: a terminal that
        # shows both would print the diagnosis twice)
        log.error("%s", error, extra={RAISED: True})
        self.ctx.report(self)
        self.fail(error)

    def _describe(self, error: BaseException) -> BaseException:
        """A camera failure as the scientist should read it."""
        if not isinstance(error, CameraError):
            return error
        where = f"after frame {self.ledger.last_number} ({self.ledger.received} frames received)"
        if error.lost:
            return CameraLostError(
                f"{self.name}: the camera disconnected {where}; frames up to then are saved. "
                "Check its cable and power; it is reopened on the next acquisition."
            )
        if error.readout_failed:
            return CameraAcquisitionError(
                f"{self.name}: the camera reported a readout failure {where}; frames up to "
                "then are saved. Check the camera's connection and power, then retry."
            )
        return CameraAcquisitionError(f"{self.name}: acquisition failed {where}: {error}")

    def stop_camera(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the acquisition, if one runs, and wait until the camera has stopped."""
        with self._lock:
            stream = self.stream
        if stream is None:
            return
        stream.stop()
        if threading.current_thread() is not self.ctx.owner._thread and not stream.wait(timeout):
            log.error("%s: the camera did not stop within %g s", self.name, timeout)

    def close(self, reason: str | None = None) -> None:
        """End the session (idempotent): the camera stops, queued frames are written,
        the file keeps exactly the rows the run references, statuses still pending fail."""
        with self._lock:
            if self.move(Call.CLOSE).verdict is Verdict.IGNORE:
                return
        self.stop_camera()
        if not self.writer.stop(STOP_TIMEOUT_S):
            log.error("%s: the writer did not finish within %g s", self.name, STOP_TIMEOUT_S)
        with self._lock:
            if self.writer.error is not None and self.error is None:
                self.error = self.writer.error
            # rows from the first the disk refused on were not written (rows below
            # self.file.rows may hold a dropped point's frames, never the retake's)
            first = self.writer.first_unwritten
            on_disk = self.file.rows if first is None else min(first, self.file.rows)
            unwritten = self.ledger.unwritten(on_disk)
            # rows past the ledger's hold frames already counted (a point a pause
            # interrupted, or one the RunEngine took again, that nothing overwrote)
            counted = len(self.ledger.numbers)
            if unwritten:
                log.error("%s: %d frames could not be written", self.name, unwritten)
            # outside a run nothing references rows: the file keeps them all
            run = self.ctx.run is not None
            keep = min(self._references(), self.file.rows) if run else self.file.rows
        try:
            lost = self.ledger.lost
            self.file.record_lost(lost.expanded(), dict(lost.by_reason))
            if self.pauses:
                self.file.annotate("pauses", self.pauses)
            self.unreferenced = self.file.close(keep, end=counted)
        except (OSError, RuntimeError) as error:
            log.error("%s: closing %s failed: %s", self.name, self.path, error)
            with self._lock:
                self.error = self.error or error
        # statuses end only now: whoever waits on them finds the file closed
        self._finish_statuses(
            self.error or AcquisitionInterrupted(f"{self.name}: {reason or 'closed'}")
        )
        self.ctx.report(self)
        # one line a person at the terminal sees (session.make_run_engine shows this
        # logger): always for a fly scan, for a step scan when something was lost
        level = logging.WARNING if self.had_losses else logging.INFO
        if self.kind == "step" and not self.had_losses:
            level = logging.DEBUG
        summary.log(level, "%s", self.summary_line())

    def discard(self) -> None:
        """Close a session that never acquired and remove its file: a refused start
        leaves nothing behind.  (Call before failing whatever waited on the start.)"""
        self.close("the camera did not start")
        if self.file.rows == 0:
            self.path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the run's folder, if nothing else is in it
                self.path.parent.rmdir()

    def pause(self) -> None:
        """The RunEngine pauses: the camera stops (nothing streams while paused), the
        file stays open; the pause is noted (the file's ``pauses``), never counted as
        lost frames.  Whatever the phase, the camera has stopped when this returns (a
        failure may be stopping it already)."""
        with self._lock:
            if self.closed:
                return
            # noted even where the table ignores it (every frame in, or failed): a
            # kickoff the RunEngine replays after it is then known for a replay
            self.pauses.append([time.time(), math.nan])
            acts = self.move(Call.PAUSE).verdict is Verdict.DO
        self.stop_camera()
        if acts:
            self._paused()

    def _paused(self) -> None:
        """The camera stopped for a pause (RunEngine thread): what the kind does then."""

    def resume(self) -> None:
        """The RunEngine resumed after a pause (it replays the plan next)."""
        with self._lock:
            self._note_resume()
            acts = self.move(Call.RESUME).verdict is Verdict.DO
        if acts:
            self._resumed()

    def _note_resume(self) -> None:
        """The pause still open ends now (under the lock)."""
        if self.pauses and math.isnan(self.pauses[-1][1]):
            self.pauses[-1][1] = time.time()

    def _resumed(self) -> None:
        """After the RunEngine's resume (its thread): what the kind does then."""

    def run_ended(self) -> None:
        """The run's stop document was emitted: nothing more can join it."""
        self.close("the run ended")

    # ---- for the device's signals ---------------------------------------------------

    @property
    def rows_on_disk(self) -> int:
        return self.file.rows

    def _progress_due(self) -> bool:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL_S:
            return False
        self._last_progress = now
        return True

    def summary_line(self) -> str:
        """One line for the terminal and the run: written, lost (which, why), where."""
        ledger = self.ledger
        lost = ledger.lost
        line = f"{self.name}: {self.kind} scan, {self.file.rows} frames written to {self.path}"
        if lost.total:
            # one C-level copy: the owner thread may add a reason while this runs
            by_reason = list(lost.by_reason.items())
            reasons = "; ".join(f"{n} {why}" for why, n in by_reason)
            if MEMORY in self._loss_times:
                first, last = self._loss_times[MEMORY]
                reasons += (
                    f"; the memory buffer ({self.ctx.frames.capacity} frames) was full on and "
                    f"off for {last - first:.1f} s"
                )
            line += (
                f", {lost.total} lost: frame numbers {lost.numbers()} ({reasons}); "
                "listed in the file's lost_frame_numbers"
            )
        else:
            line += ", none lost"
        if self.unreferenced:
            line += (
                f"; {self.unreferenced} frames acquired after the run's last reference kept "
                "apart in /entry/data/unreferenced"
            )
        return line

    @property
    def had_losses(self) -> bool:
        return bool(self.ledger.lost.total or self.unreferenced)
