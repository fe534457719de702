"""A step scan's frames: each trigger() takes fresh frames, and is done when they are on disk.

The camera waits for software triggers (``Software Trigger Edge``; see
docs/decisions/0002): a trigger() asks the owner thread for ``frames_per_point``
frames, and it triggers them one by one, so every exposure starts after the call.
A frame lost on the way is counted and replaced by a fresh one, triggered again;
a frame that answers no pending trigger is counted and not kept.  Hardware-triggered
cameras (Edge Trigger, Trigger First) keep the frames that arrive while a trigger()
waits; cameras without software triggers take one sequence per point.

A point is done when its frames are flushed to the file; then its Datum is made,
its statistics are final, and only then does its status finish.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ophyd_pvcam.errors import AcquisitionInterrupted, CameraAcquisitionError
from ophyd_pvcam.hardware import Mode, StreamSpec

from ._ledger import FrameLedger, Placement
from ._owner import Stream
from ._seams import Progress
from ._session import STOP_TIMEOUT_S, Session, SessionContext
from ._states import STEP_RULES, Call, Phase, Verdict

log = logging.getLogger(__name__)


@dataclass
class _Point:
    number: int
    status: Progress
    base: int  # frames submitted to the writer before this point
    last_sequence: int | None = None  # the writer's sequence number of its last frame
    means: list[float] = field(default_factory=list)
    biggest: int = 0
    frame_number: int = 0


@dataclass(frozen=True)
class PointResult:
    """What read() reports for the last completed point."""

    datum_id: str
    mean: float
    max: int
    frame_number: int


class StepSession(Session):
    """One run of step-scan points (one file), over one or more acquisitions."""

    kind = "step"
    row_statistics = True  # a point reports its frames' mean and max
    rules = STEP_RULES

    def __init__(self, ctx: SessionContext, mode: Mode):
        self.mode = mode
        self.points_done = 0
        self.last_point: PointResult | None = None
        self._pending: _Point | None = None
        self._orphans: list[_Point] = []  # points a pause interrupted (the RunEngine redoes them)
        ledger = FrameLedger(
            batched=True, frames_per_point=ctx.frames_per_point, by_trigger=mode is Mode.SOFTWARE
        )
        super().__init__(ctx, ledger)  # starts the writer thread: everything above first

    # ---- the RunEngine's side ----------------------------------------------------------

    def trigger(self, status: Progress) -> None:
        """Ask for the next point's frames; ``status`` finishes when they are on disk."""
        with self._lock:
            was = self.phase
            rule = self.move(Call.TRIGGER)
            if rule.verdict is Verdict.REFUSE:
                if was is Phase.ACQUIRING:
                    error: BaseException = RuntimeError(f"{self.name}: {rule.why}")
                else:
                    error = self.error or AcquisitionInterrupted(f"{self.name}: {rule.why}")
                status.set_exception(error)
                return
            if was is Phase.PAUSED:  # the RunEngine replays without a resume()
                self._note_resume()
            point = _Point(self._next_point(), status, base=self.writer.submitted)
            self._pending = point
            stream = self.stream
            if stream is None or stream.stopping or self.mode is Mode.SEQUENCE:
                stream = self._start_stream()  # a sequence is one point
            self._arm()
            stream.request(point.number, self.ctx.frames_per_point)
        if self.mode is Mode.FREE and not stream.started.wait(STOP_TIMEOUT_S):
            # a hardware trigger may come as soon as trigger() returns: be ready for it
            log.error("%s: the camera did not start within %g s", self.name, STOP_TIMEOUT_S)

    def _next_point(self) -> int:
        """Where the next point goes: after the last point the run has really emitted.

        bluesky takes a point's Datum when it reads the camera and emits it when it
        saves the event; a pause between the two rewinds the plan and drops it, and the
        RunEngine then triggers that point again.  So the retaken point goes in the rows
        the dropped one had (their frames are counted, as RETAKEN), and the file's rows
        stay exactly the points the run references, in order.  (Called under the lock.)"""
        run = self.ctx.run
        if run is None or self.points_done == 0:
            return self.points_done
        emitted = run.datums_emitted(self.docs.resource_uid)
        taken = emitted or 0
        if taken < self.points_done:
            dropped = self.ledger.retake(taken)
            self.docs.rewind(taken, resource_emitted=emitted is not None)
            log.warning(
                "%s: the RunEngine takes point %d again (a pause rewound the plan past %d "
                "point(s) it had read but not saved); their %d frame(s) are counted as "
                "retaken",
                self.name,
                taken,
                self.points_done - taken,
                dropped,
            )
            self.points_done = taken
        return self.points_done

    @property
    def waiting(self) -> bool:
        """A trigger() waits for frames."""
        return self._pending is not None and self.phase is Phase.ACQUIRING

    def restart_camera(self) -> None:
        """Settings other than the frame layout changed between points: stop the camera;
        the next trigger starts it afresh with them (the caller applies them)."""
        self.stop_camera()

    def _paused(self) -> None:
        """A point in progress is abandoned: its frames are counted and discarded, and
        the RunEngine triggers it again after resuming."""
        with self._lock:
            point, self._pending = self._pending, None
            if point is not None:
                dropped = self.ledger.abandon(point.number)
                self._orphans.append(point)
                log.warning(
                    "%s: point %d interrupted by a pause; its %d frame(s) are discarded and "
                    "it will be taken again",
                    self.name,
                    point.number,
                    dropped,
                )

    # ---- the owner thread ------------------------------------------------------------------

    def started(self, readings) -> None:
        super().started(readings)
        self.ledger.restart()

    def _start_stream(self) -> Stream:
        ctx = self.ctx
        frames = ctx.frames_per_point if self.mode is Mode.SEQUENCE else 0
        spec = StreamSpec(self.mode, frames, ctx.buffer_frames)
        retrigger = max(0.5, 3 * ctx.period_s)
        self.stream = ctx.owner.stream(Stream(spec, self, ctx.frames, retrigger))
        return self.stream

    def satisfied(self) -> bool:
        # a sequence ends once its point has every frame; live acquisitions wait for more
        request = self.ledger.request
        return self.mode is Mode.SEQUENCE and request is not None and request.fulfilled

    def _completes_a_point(self, placement: Placement) -> bool:
        request = self.ledger.request
        return request is not None and request.fulfilled and request.point == placement.point

    def _placed(self, placement: Placement, sequence: int) -> None:
        point = self._pending
        if point is not None and point.number == placement.point:
            point.frame_number = int(self.ledger.numbers[placement.row])
            if self._completes_a_point(placement):
                point.last_sequence = sequence
                self._disarm()

    def _stream_ended(self, error: BaseException | None) -> None:
        with self._lock:
            failed = self.phase is Phase.FAILED
            if self.move(Call.STREAM_ENDED).verdict is not Verdict.DO:
                return  # between points, paused or closed: nothing waited on this stream
        if failed:
            self.close()  # the file keeps the complete points; the pending one fails
            return
        with self._lock:
            point, stream = self._pending, self.stream
            request = self.ledger.request
            # a stream of ours ended: trigger() set it, under this lock, before it could start
            assert stream is not None
            # the sequence that ended was answering ``request``: a point done once its frames
            # were on disk may already have a successor pending, its sequence still queued
            # (a pause, a stop or a close moved the phase on before stopping the camera)
            incomplete = (
                point is not None
                and point.last_sequence is None
                and request is not None
                and request.point == point.number
                and not stream.stopping
            )
        if incomplete:
            got = self.ledger.request.filled if self.ledger.request else 0
            what = "its sequence" if self.mode is Mode.SEQUENCE else "the acquisition"
            self.fail(
                CameraAcquisitionError(
                    f"{self.name}: the camera ended {what} with {got} of "
                    f"{self.ctx.frames_per_point} frames"
                )
            )
            self.close()

    # ---- the writer thread ------------------------------------------------------------

    def _row_written(self, row, pixels: np.ndarray) -> None:
        if self.ledger.stale(row.generation, row.row):
            return  # a dropped point's frame, written as the pause came: not the retake's
        point = self._pending
        if point is not None and row.row // self.ctx.frames_per_point == point.number:
            point.means.append(int(pixels.sum(dtype=np.uint64)) / pixels.size)  # exact
            point.biggest = max(point.biggest, int(pixels.max()))

    def _written(self, processed: int, flushed: int) -> None:
        if self.writer.error is not None:
            # the camera stops; the point fails once it has (its frames count as flushed
            # though they were never written: a later call must not finish it)
            if self.error is None:
                self.fail(self.writer.error)
            return
        point = self._pending
        if point is None:
            return
        if point.last_sequence is not None and flushed >= point.last_sequence:
            self._finish_point(point, None)
        elif self._progress_due():
            point.status.update(min(self.ctx.frames_per_point, processed - point.base))

    # ---- ending a point: the one place a trigger's status finishes ------------------------

    def _finish_point(self, point: _Point, error: BaseException | None) -> None:
        with self._lock:
            if self._pending is not point:
                return  # already finished, or abandoned by a pause
            if error is None and self.move(Call.POINT_DONE).verdict is not Verdict.DO:
                return  # a pause or the close took the point meanwhile
            self._pending = None
            if error is None:
                datum = self.docs.add_point()
                self.points_done += 1
                mean = sum(point.means) / len(point.means) if point.means else float("nan")
                self.last_point = PointResult(datum, mean, point.biggest, point.frame_number)
            # a pause's orphan of this point is done with it: the RunEngine may still
            # wait on it (it re-adds the statuses of an interrupted wait on resume)
            redone = [o for o in self._orphans if o.number == point.number]
            self._orphans = [o for o in self._orphans if o.number != point.number]
        self.ctx.report(self)
        for done in (point, *redone):
            if error is None:
                done.status.update(self.ctx.frames_per_point)
                done.status.set_finished()
            else:
                done.status.set_exception(error)

    def _status_waiting(self) -> bool:
        return self._pending is not None

    def _finish_statuses(self, error: BaseException) -> None:
        point = self._pending
        if point is not None:
            self._finish_point(point, error)
        with self._lock:
            orphans, self._orphans = self._orphans, []
        for orphan in orphans:
            # a point a pause interrupted and the run never took again (it ended
            # paused): nothing waits on it, and failing it now would raise in the
            # RunEngine as it finishes.  It ends as the session does.
            if self.error is None:
                orphan.status.set_finished()
            else:
                orphan.status.set_exception(self.error)

    def _references(self) -> int:
        """Points whose Datum the run emitted: a point done just as the plan was aborted
        or paused, read but never saved, never reached the run."""
        run = self.ctx.run
        if run is None:  # outside a run the file keeps every row anyway
            return self.docs.handed_over * self.ctx.frames_per_point
        return (run.datums_emitted(self.docs.resource_uid) or 0) * self.ctx.frames_per_point

    def read_result(self) -> dict[str, Any]:
        return {} if self.last_point is None else vars(self.last_point)
