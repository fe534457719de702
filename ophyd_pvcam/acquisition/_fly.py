"""A fly scan's frames: the camera free-runs, and every frame becomes an event.

kickoff() starts the camera (its status finishes once it runs); complete() finishes
once the last frame is on disk (for ``num_frames=0``, it first stops the camera);
collect() hands over the frames on disk so far, any number of times while the camera
runs (periodic collection keeps the catalog current).  The file closes after the
collect that follows the end of acquisition, so the run references exactly the rows
in the file; if the run ends some other way (an abort, a failure elsewhere, a plan
that never collects again), the run's end closes it, and frames the run could not
take are kept apart in the file and counted (:class:`~ophyd_pvcam.storage.FrameFile`).

A pause stops the camera and complete() waits through it; resume() starts the
camera again for the frames still missing, in the same file and run
(docs/decisions/0009).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from ophyd_pvcam.errors import CameraAcquisitionError, was_delivered
from ophyd_pvcam.hardware import Mode, StreamSpec
from ophyd_pvcam.storage import StreamAssets, stream_datasets

from ._ledger import FrameLedger
from ._owner import Stream
from ._seams import Completion, Progress
from ._session import STOP_TIMEOUT_S, Session, SessionContext
from ._states import FLY_RULES, Call, Phase, Verdict

log = logging.getLogger(__name__)


class FlySession(Session):
    """One fly scan (one file): kickoff, complete, collect."""

    kind = "fly"
    batches_frames = True
    rules = FLY_RULES

    def __init__(
        self,
        ctx: SessionContext,
        num_frames: int,
        software_first: bool,
    ):
        self.num_frames = num_frames
        # a declared stream takes a StreamResource and one StreamDatum per collect (cheap);
        # bluesky allows those only there, so otherwise a Datum per frame
        self.stream_documents: bool | None = None  # decided at the first collect
        self.number = 0  # which fly scan of its device (the controller counts)
        self._software_first = software_first
        self._kickoff: Completion | None = None
        self._complete: Progress | None = None
        self._superseded: list[Progress] = []  # complete() statuses asked for again
        self.replay_due = False  # paused since kicked off: the RunEngine replays kickoff
        self.datums = 0  # rows handed to the run as datums
        self.collected = 0  # rows handed to the run as events
        self._flushed = 0
        super().__init__(ctx, FrameLedger(target=num_frames))  # starts the writer thread
        self.stream_docs = StreamAssets(self.path, stream_datasets(ctx.name))

    @property
    def drained(self) -> bool:
        """The camera stopped for good and every frame it gave is on disk."""
        return self.phase in (Phase.DRAINED, Phase.CLOSED)

    @property
    def paused(self) -> bool:
        """Stopped by a pause, to go on when the RunEngine resumes."""
        return self.phase is Phase.PAUSED

    # ---- the RunEngine's side -------------------------------------------------------------

    def kickoff(self, status: Completion) -> None:
        """Start the camera; or, for a kickoff the RunEngine replays after a pause (the
        controller sends only those to a scan under way), join the scan."""
        with self._lock:
            rule = self.move(Call.KICKOFF)
            if rule.verdict is Verdict.DO:
                self._kickoff = status
        if rule.verdict is Verdict.REFUSE:
            status.set_exception(self.error or RuntimeError(f"{self.name}: {rule.why}"))
        elif rule.verdict is Verdict.JOIN:
            self.replay_due = False  # a later kickoff is a new scan's
            log.info("%s: kickoff after a resume: the fly scan goes on", self.name)
            status.set_finished()  # at once: the scan is under way (or its frames all in)
        else:
            self._start_stream()

    def _start_stream(self) -> None:
        ctx = self.ctx
        spec = StreamSpec(Mode.FREE, 0, ctx.buffer_frames)
        stream = Stream(spec, self, ctx.frames, retrigger_s=max(0.5, 3 * ctx.period_s))
        stream.software_first = self._software_first
        self.stream = ctx.owner.stream(stream)

    def complete(self, status: Progress) -> None:
        with self._lock:
            rule = self.move(Call.COMPLETE)
            if rule.verdict is Verdict.REFUSE:
                status.set_exception(self.error or RuntimeError(f"{self.name}: {rule.why}"))
                return
            earlier = self._complete
            if earlier is not None and not earlier.done:
                # asked again (the RunEngine redid its plan after a pause): the earlier
                # status, which it may still wait on, ends with this one
                self._superseded.append(earlier)
            self._complete = status
            drained = self.phase is Phase.DRAINED
            if not self.num_frames and self.stream is not None:
                self.stream.stop()  # unbounded: complete() means "stop now"
        if drained:
            self._finish_complete()

    # pause(): the camera stops, and complete() goes on waiting (every frame the camera
    # gave is still written); on resume() the camera starts again for the frames still
    # missing, in the same file and run.

    def pause(self) -> None:
        with self._lock:
            self.replay_due = not self.closed
        super().pause()

    def _resumed(self) -> None:
        """The camera starts again, numbering its frames from 1 (frame times stay on the
        wall clock), for the frames the scan still misses -- if it misses any: the last
        frame may have come just as the pause did."""
        with self._lock:
            stream = self.stream
        if stream is not None and not stream.wait(STOP_TIMEOUT_S):
            self.fail(CameraAcquisitionError(f"{self.name}: the camera did not stop for a pause"))
            return
        if self.ledger.complete:  # every frame was in: the scan is over
            self._stream_ended(None)
            return
        self.ledger.go_on()  # the owner thread is not streaming: the ledger is ours
        log.info("%s: fly scan resumes after a pause (%d frames so far)", self.name,
                 self.file.rows)  # fmt: skip
        self._start_stream()

    def asset_docs(
        self, final: bool, stream: bool, up_to: int | None = None
    ) -> Iterator[tuple[str, dict]]:
        """Documents for the rows on disk not yet handed over; with ``final`` (the
        RunEngine is tearing the plan down) the camera is stopped first, so nothing is
        left out.  ``stream``: bluesky has the camera's stream declared, so a StreamDatum
        per collect will do (decided at the first collect, kept for the session).
        ``up_to``: hand over rows below it only (bluesky's index, when it collects
        several detectors together and aligns them on the slowest)."""
        with self._lock:
            if self.move(Call.COLLECT).verdict is not Verdict.DO:
                return
        if self.stream_documents is None:
            self.stream_documents = stream
        if final and not self.drained:
            self.stop_camera()
            self._wait_drained()
        elif not self.closed:
            self.writer.flush_now(STOP_TIMEOUT_S)  # hand over what is on disk, all of it
        with self._lock:
            available = min(self._flushed, self.file.rows)
            if up_to is not None:
                available = min(available, up_to)
            if self.stream_documents:
                docs = list(self.stream_docs.hand_over(available))
                self.datums = self.collected = self.stream_docs.rows  # no events follow
                done = self.drained and self.collected >= self.file.rows
            else:
                while self.datums < available:
                    self.docs.add_point()
                    self.datums += 1
                docs = list(self.docs.take())
                done = False  # the events follow, in pages()
        yield from docs
        if done:
            self.close("everything collected")

    def pages(self, name: str) -> Iterator[dict]:
        """One event page for the rows handed over and not yet collected: the camera's
        frame numbers, times and losses (the images are in the StreamDatum)."""
        ledger = self.ledger
        with self._lock:
            start, end = self.collected, self.datums
            self.collected = end
            lost_after = ledger.lost_after if self.drained and end == len(ledger.numbers) else 0
            done = self.drained and end >= self.file.rows
        if end > start:
            times = list(ledger.times[start:end])
            data = {
                f"{name}_frame_number": list(ledger.numbers[start:end]),
                f"{name}_frame_time": times,
                f"{name}_lost_before": list(ledger.lost_before[start:end]),
                # frames lost after the last one have no later frame to report them
                f"{name}_lost_after": [0] * (end - start - 1) + [lost_after],
            }
            data[f"{name}_image"] = [self.docs.datum_id(row) for row in range(start, end)]
            yield {"data": data, "timestamps": dict.fromkeys(data, times)}
        if done:
            self.close("everything collected")

    # ---- the owner thread ---------------------------------------------------------------

    def started(self, readings) -> None:
        super().started(readings)
        with self._lock:
            if self.move(Call.STARTED).verdict is not Verdict.DO:
                return
            # a pause that came as the camera started stops it; the kickoff is done all
            # the same (the RunEngine waits on it again when it resumes)
            status, self._kickoff = self._kickoff, None
            if self.phase is Phase.STREAMING:
                self._arm()
        self.ctx.report(self)
        if status is not None:
            status.set_finished()

    def _stream_ended(self, error: BaseException | None) -> None:
        # the scan ends only once every frame is on disk; a pause does not wait for a
        # slow disk (the RunEngine's pause waits for the camera's stop, which is this)
        if not self.writer.drain(STOP_TIMEOUT_S):
            log.error("%s: frames were still being written after %g s", self.name, STOP_TIMEOUT_S)
        with self._lock:
            if self.move(Call.STREAM_ENDED).verdict is not Verdict.DO:
                return  # stopped for a pause (resume() starts it again), or closed
            kickoff, self._kickoff = self._kickoff, None
        self.ctx.report(self)
        if kickoff is not None:  # the camera never started: nothing was written
            self.discard()
            kickoff.set_exception(
                self.error or CameraAcquisitionError(f"{self.name}: the camera did not start")
            )
            return
        self._finish_complete()

    # ---- the writer thread ----------------------------------------------------------------

    def _written(self, processed: int, flushed: int) -> None:
        if self.writer.error is not None and self.error is None:
            self.fail(self.writer.error)
        self._flushed = flushed
        status = self._complete
        if status is not None and not status.done and self._progress_due():
            status.update(processed + self.ledger.lost.total)  # frames accounted for

    # ---- ending: the one place each status finishes -----------------------------------------

    def _finish_complete(self) -> None:
        with self._lock:
            status, self._complete = self._complete, None
            superseded, self._superseded = self._superseded, []
            error = self.error
        for done in (*superseded, status):
            if done is None or done.done:
                continue
            # a stall the stall guard already threw into the plan is not reported again:
            # the fly scan is over, and collect() hands over what came before it
            if error is None or was_delivered(error):
                done.update(self.file.rows + self.ledger.lost.total)
                done.set_finished()
            else:
                done.set_exception(error)

    def _failed(self) -> None:
        if self.phase is Phase.DRAINED:  # failed while paused: nothing will stream again
            self._finish_complete()

    def _frames_expected(self) -> int:
        return self.num_frames

    def _status_waiting(self) -> bool:
        return self._complete is not None

    def _finish_statuses(self, error: BaseException) -> None:
        with self._lock:
            statuses = (self._kickoff, self._complete, *self._superseded)
            self._kickoff = self._complete = None
            self._superseded = []
        for status in statuses:
            if status is not None and not status.done:
                status.set_exception(error)

    def _references(self) -> int:
        return self.collected

    def _wait_drained(self) -> None:
        stream = self.stream
        if stream is not None and not stream.wait(STOP_TIMEOUT_S):
            log.error("%s: the camera did not stop within %g s", self.name, STOP_TIMEOUT_S)
