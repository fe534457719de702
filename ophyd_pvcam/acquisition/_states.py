"""Every call a session can receive, in every phase it can be in: one table per kind.

A session (one run's frames, one file) is driven from four threads: the RunEngine's
(trigger, kickoff, complete, collect, pause, resume, stop, close), the owner thread's
(the camera started, a frame completed a point's request, the camera stopped), the
writer's (a point's frames are on disk, the disk failed) and the watchdog's (a stall).
Which of those calls may act, and what the session becomes, depends only on its
phase; these tables say it for each pair, and the sessions ask them before they act
(:meth:`~ophyd_pvcam.acquisition.Session.move`), so there is no call the code handles
that the table does not name.  docs/decisions/0010 says why each cell is what it is;
``tests/unit/test_session_model.py`` searches sequences of calls and faults against
them.

A rule's verdict:

- ``DO``: the call acts; the session is then in ``then``.
- ``JOIN``: the work is already under way (a kickoff the RunEngine replays after a
  pause): the call's status finishes at once, nothing new starts.
- ``IGNORE``: nothing to do in this phase (a pause of a closed session, a second
  failure: the first one wins).
- ``REFUSE``: the call fails at once, saying ``why``; the phase stays.

A failure is not lost when a call is ignored: the session's ``error`` keeps the first
one, whatever the phase.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

log = logging.getLogger(__name__)


class Phase(Enum):
    """Where a session is.  Step sessions use ready, acquiring, paused, failed and
    closed; fly sessions ready, starting, streaming, paused, drained, failed and closed."""

    READY = "ready"  #: the file is open, nothing is due (step: between points)
    ACQUIRING = "acquiring"  #: step: a trigger waits for its point's frames
    STARTING = "starting"  #: fly: kicked off, the camera not yet running
    STREAMING = "streaming"  #: fly: the camera runs (or restarts after a pause)
    PAUSED = "paused"  #: the RunEngine paused: the camera is stopped, the file stays open
    DRAINED = "drained"  #: fly: the camera stopped for good, every frame it gave on disk
    FAILED = "failed"  #: a failure is known: the camera stops, what waits fails with it
    CLOSED = "closed"  #: the file is closed with exactly the rows the run references


class Call(Enum):
    """Everything that can happen to a session: the RunEngine's calls, then the events
    of the camera, the disk and the watchdog."""

    # the RunEngine's thread
    TRIGGER = "trigger"
    KICKOFF = "kickoff"
    COMPLETE = "complete"
    COLLECT = "collect"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"  #: stop(), an abort: the camera stops now, what waits fails
    CLOSE = "close"  #: unstage, the run's end, the last collect, the device closed
    # the camera's (owner thread), the disk's (writer thread), the watchdog's
    STARTED = "started"  #: the camera runs
    POINT_DONE = "point done"  #: a step point's frames are on disk
    #: the camera stopped (any reason); also sent by a fly scan's resume that finds
    #: its frames all in (the last came as the pause did): nothing is left to restart
    STREAM_ENDED = "stream ended"
    FAULT = "fault"  #: readout failure, disconnect, stall, full disk


class Verdict(Enum):
    """What a call does in a phase."""

    DO = "do"  #: the call acts; the session is then in the rule's ``then``
    JOIN = "join"  #: the work is under way (a replayed kickoff): finish with it
    IGNORE = "ignore"  #: nothing to do in this phase (the first failure wins)
    REFUSE = "refuse"  #: the call fails at once, saying the rule's ``why``


@dataclass(frozen=True)
class Rule:
    """One cell of a table: what a call does in a phase, and the phase it leaves."""

    verdict: Verdict
    then: Phase
    why: str = ""  # for REFUSE: the error's text; otherwise what the call does


def _do(then: Phase, what: str) -> Rule:
    return Rule(Verdict.DO, then, what)


def _ignore(phase: Phase, why: str = "") -> Rule:
    return Rule(Verdict.IGNORE, phase, why)


def _refuse(phase: Phase, why: str) -> Rule:
    return Rule(Verdict.REFUSE, phase, why)


P, C = Phase, Call
NOT_A_FLY = "staged for a step scan, not a fly scan"
NOT_A_STEP = "busy with a fly scan; complete() it first"


def _step_rules() -> dict[tuple[Phase, Call], Rule]:
    """A step scan: points taken one trigger at a time, one file for the run."""
    rules: dict[tuple[Phase, Call], Rule] = {}
    live = (P.READY, P.ACQUIRING, P.PAUSED)
    for phase in (*live, P.FAILED, P.CLOSED):
        # calls of the other kind, and of the kind's own that never apply to a step scan
        rules[phase, C.KICKOFF] = _refuse(phase, NOT_A_FLY)
        rules[phase, C.COMPLETE] = _refuse(phase, NOT_A_FLY)
        rules[phase, C.COLLECT] = _ignore(phase, "a step scan's documents go with its reads")
        rules[phase, C.STARTED] = _do(phase, "the ledger starts the acquisition's clock")
    rules.update({
        (P.READY, C.TRIGGER): _do(P.ACQUIRING, "ask the camera for the point's frames"),
        (P.PAUSED, C.TRIGGER): _do(P.ACQUIRING, "the replayed point: the pause ends"),
        (P.ACQUIRING, C.TRIGGER): _refuse(P.ACQUIRING, "the previous trigger has not finished"),
        (P.FAILED, C.TRIGGER): _refuse(P.FAILED, "the session failed"),
        (P.CLOSED, C.TRIGGER): _refuse(P.CLOSED, "the session has ended"),
        (P.ACQUIRING, C.POINT_DONE): _do(P.READY, "the point's Datum; its status finishes"),
        # a point whose frames were all on disk as the failure came is still good
        (P.FAILED, C.POINT_DONE): _do(P.FAILED, "the point's Datum; its status finishes"),
        (P.READY, C.POINT_DONE): _ignore(P.READY, "already finished"),
        (P.PAUSED, C.POINT_DONE): _ignore(P.PAUSED, "abandoned by the pause; retaken"),
        (P.CLOSED, C.POINT_DONE): _ignore(P.CLOSED, "the close failed it"),
        (P.READY, C.PAUSE): _do(P.PAUSED, "stop the camera"),
        (P.ACQUIRING, C.PAUSE): _do(P.PAUSED, "stop the camera; abandon the point, "
                                              "its status kept to end with its retake"),
        (P.PAUSED, C.PAUSE): _ignore(P.PAUSED),
        (P.FAILED, C.PAUSE): _ignore(P.FAILED, "stopping already"),
        (P.CLOSED, C.PAUSE): _ignore(P.CLOSED),
        (P.PAUSED, C.RESUME): _do(P.READY, "note the pause's end; the next trigger "
                                           "starts the camera"),
        (P.READY, C.RESUME): _ignore(P.READY),
        (P.ACQUIRING, C.RESUME): _ignore(P.ACQUIRING),
        (P.FAILED, C.RESUME): _ignore(P.FAILED),
        (P.CLOSED, C.RESUME): _ignore(P.CLOSED),
        (P.READY, C.STREAM_ENDED): _ignore(P.READY, "a sequence ended with its point"),
        (P.PAUSED, C.STREAM_ENDED): _ignore(P.PAUSED, "stopped by the pause"),
        # a sequence that ended short of its point's frames (checked by the session)
        (P.ACQUIRING, C.STREAM_ENDED): _do(P.ACQUIRING, "a short sequence fails its point"),
        (P.FAILED, C.STREAM_ENDED): _do(P.FAILED, "the camera stopped: close"),
        (P.CLOSED, C.STREAM_ENDED): _ignore(P.CLOSED),
    })  # fmt: skip
    for phase in live:
        rules[phase, C.FAULT] = _do(P.FAILED, "keep the error; stop the camera")
        rules[phase, C.STOP] = _do(P.FAILED, "keep the error; stop the camera")
        rules[phase, C.CLOSE] = _do(P.CLOSED, "stop, write, close the file, end statuses")
    rules[P.FAILED, C.FAULT] = _ignore(P.FAILED, "the first failure wins")
    rules[P.FAILED, C.STOP] = _ignore(P.FAILED, "stopping already")
    rules[P.FAILED, C.CLOSE] = _do(P.CLOSED, "stop, write, close the file, fail statuses")
    for call in (C.FAULT, C.STOP, C.CLOSE):
        rules[P.CLOSED, call] = _ignore(P.CLOSED)
    return rules


def _fly_rules() -> dict[tuple[Phase, Call], Rule]:
    """A fly scan: the camera free-runs from kickoff until its frames are in."""
    rules: dict[tuple[Phase, Call], Rule] = {}
    phases = (P.READY, P.STARTING, P.STREAMING, P.PAUSED, P.DRAINED, P.FAILED, P.CLOSED)
    for phase in phases:
        rules[phase, C.TRIGGER] = _refuse(phase, NOT_A_STEP)
        rules[phase, C.POINT_DONE] = _ignore(phase, "a fly scan has no points")
    rules.update({
        (P.READY, C.KICKOFF): _do(P.STARTING, "start the camera"),
        # the RunEngine redoes a fly plan from its last checkpoint after a pause (the
        # controller joins only a scan of the same run that was paused)
        (P.STARTING, C.KICKOFF): _refuse(P.STARTING, "the fly scan is starting already"),
        (P.STREAMING, C.KICKOFF): Rule(Verdict.JOIN, P.STREAMING, "replayed after a pause"),
        (P.PAUSED, C.KICKOFF): Rule(Verdict.JOIN, P.PAUSED, "replayed after a pause"),
        (P.DRAINED, C.KICKOFF): Rule(Verdict.JOIN, P.DRAINED, "replayed after a pause"),
        (P.FAILED, C.KICKOFF): _refuse(P.FAILED, "the fly scan failed"),
        (P.CLOSED, C.KICKOFF): _refuse(P.CLOSED, "the fly scan has ended"),
        (P.READY, C.STARTED): _ignore(P.READY, "never kicked off"),
        (P.STARTING, C.STARTED): _do(P.STREAMING, "arm the watchdog; the kickoff finishes"),
        (P.STREAMING, C.STARTED): _do(P.STREAMING, "restarted after a pause: arm the watchdog"),
        (P.PAUSED, C.STARTED): _do(P.PAUSED, "started as the pause came: it stops it"),
        (P.DRAINED, C.STARTED): _ignore(P.DRAINED),
        (P.FAILED, C.STARTED): _do(P.FAILED, "the kickoff finishes; the failure stops it"),
        (P.CLOSED, C.STARTED): _ignore(P.CLOSED, "the close fails the kickoff"),
        (P.READY, C.COMPLETE): _refuse(P.READY, "complete() without a kickoff()"),
        (P.STARTING, C.COMPLETE): _do(P.STARTING, "wait for the last frame"),
        (P.STREAMING, C.COMPLETE): _do(P.STREAMING, "wait for the last frame"),
        (P.PAUSED, C.COMPLETE): _do(P.PAUSED, "wait through the pause"),
        (P.DRAINED, C.COMPLETE): _do(P.DRAINED, "finish now"),
        (P.FAILED, C.COMPLETE): _do(P.FAILED, "fails once the camera has stopped"),
        (P.CLOSED, C.COMPLETE): _refuse(P.CLOSED, "the fly scan has ended"),
        (P.STARTING, C.PAUSE): _do(P.PAUSED, "stop the camera"),
        (P.STREAMING, C.PAUSE): _do(P.PAUSED, "stop the camera; complete() waits through it"),
        (P.READY, C.PAUSE): _ignore(P.READY),
        (P.PAUSED, C.PAUSE): _ignore(P.PAUSED),
        (P.DRAINED, C.PAUSE): _ignore(P.DRAINED, "every frame is in"),
        (P.FAILED, C.PAUSE): _ignore(P.FAILED, "stopping already"),
        (P.CLOSED, C.PAUSE): _ignore(P.CLOSED),
        (P.PAUSED, C.RESUME): _do(P.STREAMING, "restart the camera for the missing frames"),
        (P.READY, C.RESUME): _ignore(P.READY),
        (P.STARTING, C.RESUME): _ignore(P.STARTING),
        (P.STREAMING, C.RESUME): _ignore(P.STREAMING),
        (P.DRAINED, C.RESUME): _ignore(P.DRAINED),
        (P.FAILED, C.RESUME): _ignore(P.FAILED),
        (P.CLOSED, C.RESUME): _ignore(P.CLOSED),
        # the session closes itself at the collect that hands over its last row
        (P.READY, C.COLLECT): _ignore(P.READY, "nothing acquired"),
        (P.STARTING, C.COLLECT): _do(P.STARTING, "hand over the rows on disk"),
        (P.STREAMING, C.COLLECT): _do(P.STREAMING, "hand over the rows on disk"),
        (P.PAUSED, C.COLLECT): _do(P.PAUSED, "hand over the rows on disk"),
        (P.DRAINED, C.COLLECT): _do(P.DRAINED, "hand over the rows on disk"),
        (P.FAILED, C.COLLECT): _do(P.FAILED, "hand over the rows on disk"),
        (P.CLOSED, C.COLLECT): _do(P.CLOSED, "hand over what the run has not had"),
        (P.READY, C.STREAM_ENDED): _ignore(P.READY),
        (P.STARTING, C.STREAM_ENDED): _do(P.DRAINED, "never started: discard the file"),
        (P.STREAMING, C.STREAM_ENDED): _do(P.DRAINED, "every frame in: complete() finishes"),
        (P.PAUSED, C.STREAM_ENDED): _ignore(P.PAUSED, "stopped by the pause"),
        (P.DRAINED, C.STREAM_ENDED): _ignore(P.DRAINED),
        (P.FAILED, C.STREAM_ENDED): _do(P.DRAINED, "complete() fails with the error"),
        (P.CLOSED, C.STREAM_ENDED): _ignore(P.CLOSED, "the close ends the statuses"),
    })  # fmt: skip
    for phase in (P.READY, P.STARTING, P.STREAMING):
        rules[phase, C.FAULT] = _do(P.FAILED, "keep the error; stop the camera")
        rules[phase, C.STOP] = _do(P.FAILED, "keep the error; stop the camera")
    # paused, the camera is already stopped: what waits fails at once
    rules[P.PAUSED, C.FAULT] = _do(P.DRAINED, "keep the error; complete() fails")
    rules[P.PAUSED, C.STOP] = _do(P.DRAINED, "keep the error; complete() fails")
    rules[P.DRAINED, C.FAULT] = _do(P.DRAINED, "keep the error (the disk, at the last flush)")
    rules[P.DRAINED, C.STOP] = _ignore(P.DRAINED, "stopped already")
    rules[P.FAILED, C.FAULT] = _ignore(P.FAILED, "the first failure wins")
    rules[P.FAILED, C.STOP] = _ignore(P.FAILED, "stopping already")
    for phase in phases[:-1]:
        rules[phase, C.CLOSE] = _do(P.CLOSED, "stop, write, close the file, end statuses")
    rules[P.CLOSED, C.FAULT] = _ignore(P.CLOSED)
    rules[P.CLOSED, C.STOP] = _ignore(P.CLOSED)
    rules[P.CLOSED, C.CLOSE] = _ignore(P.CLOSED)
    return rules


STEP_PHASES = (P.READY, P.ACQUIRING, P.PAUSED, P.FAILED, P.CLOSED)
FLY_PHASES = (P.READY, P.STARTING, P.STREAMING, P.PAUSED, P.DRAINED, P.FAILED, P.CLOSED)
STEP_RULES = _step_rules()
FLY_RULES = _fly_rules()
TABLES = {"step": (STEP_PHASES, STEP_RULES), "fly": (FLY_PHASES, FLY_RULES)}


def missing_cells(kind: str) -> list[tuple[Phase, Call]]:
    """The (phase, call) pairs of ``kind``'s table without a rule (there must be none),
    and rules that lead out of the kind's phases."""
    phases, rules = TABLES[kind]
    missing = [(p, c) for p in phases for c in Call if (p, c) not in rules]
    stray = [(p, c) for (p, c), rule in rules.items() if p not in phases or rule.then not in phases]
    return missing + stray


def as_markdown(kind: str) -> str:
    """The table as a person reads it, a call per row and a phase per column (the
    decision record shows this): ``-> phase`` where the call acts, else its verdict."""
    phases, rules = TABLES[kind]
    lines = [
        "| call | " + " | ".join(p.value for p in phases) + " |",
        "|---" * (len(phases) + 1) + "|",
    ]
    for call in Call:
        cells = []
        for phase in phases:
            rule = rules[phase, call]
            if rule.verdict is Verdict.DO:
                cells.append(f"-> {rule.then.value}" if rule.then is not phase else "do")
            else:
                cells.append(rule.verdict.value)
        lines.append(f"| {call.value} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
