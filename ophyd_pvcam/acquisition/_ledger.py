"""The frame ledger: every frame the camera numbered is written, or counted with a reason.

Pure bookkeeping, no threads and no I/O, so it is tested in microseconds.  The
owner thread tells it about every frame that arrives; it answers where the frame
goes (a row of the file, and which point of a step scan it answers) or why not,
and it finds frames that never came from gaps in the camera's frame numbers.  Its
per-row table (frame number, camera clock, wall time, frames lost just before) is
the one table both the file's records and a fly scan's events are made from.

Which frame answers which trigger: in "Software Trigger Edge" every accepted
trigger exposes exactly one frame and the camera numbers frames in that order, so
frame *n* is the answer to the *n*-th accepted trigger.  A frame answers a step
point only if its trigger was sent for that point: a late frame from an earlier
point is never passed off as a later point's (it might predate a motor move).
"""

from __future__ import annotations

import array
import math
from collections import Counter
from dataclasses import dataclass, field

GAP = "never arrived (a gap in the camera's frame numbers)"
TORN = "overwritten in the camera's buffer while it was read"
MEMORY = "the memory buffer was full (the disk was slower than the camera)"
WRITE = "could not be written to disk"
INTERRUPTED = "belonged to a point that was interrupted"
RETAKEN = "belonged to a point the RunEngine took again after a pause"


@dataclass(frozen=True)
class Placement:
    """Where a frame goes: a row of the file (and the step point it answers)."""

    row: int
    point: int


@dataclass
class Request:
    """Frames asked for by one trigger(): ``count`` fresh frames for ``point``."""

    point: int
    count: int
    filled: int = 0

    @property
    def fulfilled(self) -> bool:
        return self.filled >= self.count


@dataclass
class Losses:
    """Frames known lost, by reason, with their numbers as ranges (compact)."""

    by_reason: Counter = field(default_factory=Counter)
    ranges: list[list] = field(default_factory=list)  # [first, last, reason]
    total: int = 0  # a plain int: other threads read it while the owner adds

    def add(self, first: int, last: int, reason: str) -> None:
        if last < first:
            return
        self.by_reason[reason] += last - first + 1
        self.total += last - first + 1
        if self.ranges and self.ranges[-1][2] == reason and self.ranges[-1][1] == first - 1:
            self.ranges[-1][1] = last
        else:
            self.ranges.append([first, last, reason])

    def expanded(self) -> list[int]:
        """Every lost frame number."""
        return [n for first, last, _ in self.ranges for n in range(first, last + 1)]

    def numbers(self) -> str:
        """ "7, 14-16, 21" (at most a few dozen ranges, then "...")."""
        shown = [f"{a}" if a == b else f"{a}-{b}" for a, b, _ in self.ranges[:24]]
        if len(self.ranges) > 24:
            shown.append("...")
        return ", ".join(shown)


class FrameLedger:
    """Decides, frame by frame, which row of the file each frame takes.

    ``target``: the last frame number wanted (fly scans; 0: until stopped).
    ``batched``: frames are kept only when a ``Request`` asks for them (step
    scans); ``frames_per_point`` rows make one point.  ``by_trigger``: frames answer
    the request their software trigger was sent for.
    """

    def __init__(
        self,
        *,
        target: int = 0,
        batched: bool = False,
        frames_per_point: int = 1,
        by_trigger: bool = False,
    ):
        self.target = target
        self.batched = batched
        self.frames_per_point = frames_per_point
        self.by_trigger = by_trigger
        self.last_number = 0
        self.received = 0  # frames that arrived, whatever became of them
        self.duplicates = 0
        self.unrequested = 0
        self.extra = 0  # frames after the target (the camera ran on until it was stopped)
        self.lost = Losses()
        self.request: Request | None = None
        self.triggers = 0  # accepted software triggers in this acquisition
        self._trigger_point: dict[int, int] = {}  # trigger number -> point it was sent for
        self._pending_lost = 0  # lost since the last row: reported on the next row
        self._clock_offset: float | None = None
        # the per-row table
        self.generation = 0  # rows dropped since: see stale()
        self._drops: list[tuple[int, int]] = []  # (generation it began, first row dropped)
        self.numbers = array.array("q")
        self.bof = array.array("d")
        self.eof = array.array("d")
        self.times = array.array("d")
        self.lost_before = array.array("q")

    # ---- requests (step scans) -----------------------------------------------------

    def want(self, point: int, count: int) -> None:
        """A trigger() asks for ``count`` fresh frames for ``point``."""
        if self.request is not None and not self.request.fulfilled:
            raise RuntimeError("the previous request has not been answered")
        self.request = Request(point, count)
        self._truncate(point * self.frames_per_point)

    def abandon(self, point: int) -> int:
        """``point`` will not be finished (a pause): its frames are discarded, counted,
        and its rows free again -- even if they were all in, for its Datum was never
        made and the RunEngine takes it again.  Returns how many.  (If its request never
        reached the ledger, the request there is an earlier point's, and stays whole.)"""
        request, self.request = self.request, None
        if request is None or request.point != point:
            return 0
        start = point * self.frames_per_point
        return self._drop_rows(start, INTERRUPTED)

    @property
    def outstanding(self) -> int:
        """Frames the pending request still needs."""
        request = self.request
        return 0 if request is None else max(0, request.count - request.filled)

    def triggered(self) -> None:
        """A software trigger was accepted: its frame answers the pending request."""
        self.triggers += 1
        if self.request is not None:
            self._trigger_point[self.triggers] = self.request.point

    # ---- frames --------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """Every frame up to the target has been accounted for."""
        return bool(self.target) and self.last_number >= self.target

    def restart(self) -> None:
        """A new acquisition starts: its frames are numbered from 1 again, and its camera
        clock starts again (frame times are placed on the wall clock anew, or a frame
        after a pause would be stamped from the first acquisition's start)."""
        self.last_number = 0
        self.triggers = 0
        self._trigger_point.clear()
        self._clock_offset = None

    def go_on(self) -> None:
        """A paused fly scan goes on in a new acquisition: its frames are numbered from 1
        again, and it wants only the frames it still misses (none lost to the pause: the
        camera was stopped, not left running)."""
        if self.target:
            self.target = max(1, self.target - self.last_number)
        self.restart()

    def retake(self, point: int) -> int:
        """The RunEngine takes ``point`` again, and every point after it: it dropped them
        (a pause rewound the plan before their events were saved).  Their frames, kept in
        rows it will overwrite, are counted; returns how many."""
        start = point * self.frames_per_point
        return self._drop_rows(start, RETAKEN)

    def arrive(
        self, number: int, bof: float, eof: float, now: float, lost: str | None = None
    ) -> Placement | str:
        """A frame came.  Returns its :class:`Placement`, or a string saying why it is
        not written (it is then counted).  ``lost``: the frame came but cannot be kept
        (torn in the camera's buffer, no memory left for it)."""
        self.received += 1
        if number <= self.last_number:
            self.duplicates += 1  # a slot read late already held a newer frame
            return "duplicate"
        if self.target and number > self.target:
            self.extra += 1
            self._gap_to(self.target + 1)  # the target's last frames never came
            return "beyond the target"
        self._gap_to(number)
        self.last_number = number
        if lost is not None:
            self._lose(number, number, lost)
            return lost
        point = self._point_for(number)
        if point is None:
            self.unrequested += 1
            return "unrequested"
        if self._clock_offset is None or math.isnan(eof):
            eof_s = 0.0 if math.isnan(eof) else eof
            # placed by this frame's arrival, which can only be late: never before the
            # last frame of an earlier acquisition of this session (placed by its own
            # first arrival, perhaps later than this one's), or times would run back
            floor = self.times[-1] if self.times else -math.inf
            self._clock_offset = max(now - eof_s, floor - eof_s)
        row = len(self.numbers)
        self.numbers.append(number)
        self.bof.append(bof)
        self.eof.append(eof)
        floor = self.times[-1] if self.times else -math.inf
        self.times.append(max(now, floor) if math.isnan(eof) else self._clock_offset + eof)
        self.lost_before.append(self._pending_lost)
        self._pending_lost = 0
        if self.request is not None:
            self.request.filled += 1
        return Placement(row, point)

    def stale(self, generation: int, row: int) -> bool:
        """A row placed in ``generation`` was dropped since (its point interrupted or
        taken again): its frame is counted, and must not be written over the rows the
        retake fills.  (The writer thread asks; drops are only ever appended.)"""
        return any(start <= row for after, start in self._drops if after > generation)

    def unwritten(self, rows_on_disk: int) -> int:
        """Rows placed but never written (the disk failed): drop them from the table and
        count them lost.  Returns how many."""
        return self._drop_rows(rows_on_disk, WRITE)

    @property
    def lost_after(self) -> int:
        """Frames lost after the last row (no later row reports them)."""
        return self._pending_lost

    # ---- internals -------------------------------------------------------------------

    def _point_for(self, number: int) -> int | None:
        if not self.batched:
            return len(self.numbers)  # fly scans: one point per frame
        request = self.request
        if request is None or request.fulfilled:
            return None
        if self.by_trigger and self._trigger_point.get(number) != request.point:
            return None  # exposed for an earlier point (or before any trigger)
        return request.point

    def _gap_to(self, number: int) -> None:
        if number > self.last_number + 1:
            self._lose(self.last_number + 1, number - 1, GAP)
        self.last_number = max(self.last_number, number - 1)

    def _lose(self, first: int, last: int, reason: str) -> None:
        self.lost.add(first, last, reason)
        self._pending_lost += last - first + 1

    def _drop_rows(self, start: int, reason: str) -> int:
        """Rows from ``start`` on leave the table; their frames are counted lost for
        ``reason`` (not as a gap: each was received).  Returns how many."""
        dropped = [int(n) for n in self.numbers[start:]]
        self.generation += 1
        self._drops.append((self.generation, start))
        self._truncate(start)
        for number in dropped:
            self.lost.add(number, number, reason)
        return len(dropped)

    def _truncate(self, rows: int) -> None:
        for table in (self.numbers, self.bof, self.eof, self.times, self.lost_before):
            del table[rows:]
