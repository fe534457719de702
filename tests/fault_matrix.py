"""The fault matrix's harness, shared by both faces (``tests/sim/test_fault_matrix.py``
for ``PrimeBSI``, ``tests/sim/test_async_fault_matrix.py`` for ``PvcamDetector``).

A scenario is one plan shape against one ending: the fault is injected into the C
simulator (or the plan is interrupted from another thread, or by Ctrl-C), the plan
runs into the catalog, and :class:`Outcome` records what a scientist would see --
the error, the run's exit status, whether the camera was stopped when ``RE()``
returned, the frames the closed file holds (by the numbers the simulator stamps into
the pixels) -- and whether the next plan worked.  The runs are then replayed from the
catalog in one new process (:func:`replay_in_new_process`), or, where writing every
run into the catalog costs too much, their documents are checked to reference exactly
the file's rows (:func:`referenced_rows`): the run must be exactly what is on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h5py
from bluesky.utils import FailedStatus, RunEngineInterrupted

import ophyd_pvcam.sim as sim

INTERRUPTS = ("abort", "stop", "halt", "ctrl_c_abort")
# the endings both matrices try (each adds its own: the ophyd one a plain run, the
# ophyd-async one a pause)
ENDINGS = ("stall", "stall_resumes", "readout_failure", "disconnect", "drop", *INTERRUPTS)
DEADLINE_S = 30.0  # any wait here: far beyond what a scenario takes

# the error each ending fails the plan with (None: it does not fail), and the exit status
OUTCOME = {
    "none": (None, "success"),
    "stall_resumes": (None, "success"),
    "drop": (None, "success"),
    "pause": (None, "success"),
    "stall": ("FrameStallError", "fail"),
    "readout_failure": ("CameraAcquisitionError", "fail"),
    "disconnect": ("CameraLostError", "fail"),
    "abort": ("RunEngineInterrupted", "abort"),
    "stop": ("RunEngineInterrupted", "success"),
    "halt": ("RunEngineInterrupted", "abort"),
    "ctrl_c_abort": ("RunEngineInterrupted", "abort"),
}


@dataclass
class Outcome:
    raised: str | None = None
    message: str = ""
    uid: str | None = None
    stream: str = ""
    key: str = ""
    exit_status: str | None = None
    file_numbers: list[int] = field(default_factory=list)
    unreferenced: int = 0
    camera_stopped: bool = False
    next_plan_ok: bool = False
    dropped: int = 0
    paused: bool = False  # the RunEngine paused (and was resumed)
    referenced: int | None = None  # rows the run's documents reference (None: not counted)
    replay: dict = field(default_factory=dict)  # read back in a new process (empty: not)


def inject(fault: str, at: int) -> None:
    """Arm ``fault`` in the simulator, ``at`` frames into the acquisition."""
    if fault == "stall":
        sim.inject_fault("stall", after_frames=at)
    elif fault == "stall_resumes":
        sim.inject_fault("stall", after_frames=at, duration=0.3)
    elif fault in ("readout_failure", "disconnect"):
        sim.inject_fault(fault, after_frames=at, times=1)
    elif fault == "drop":
        sim.inject_fault("drop", every=7)


def interrupter(RE, fault: str, at: int) -> threading.Thread:
    """Interrupt the plan once the camera has made ``at`` more frames (a pulse of Ctrl-C
    needs the main thread's signal handler; abort, stop, halt and pause come from
    another thread, as from a GUI or the queue server)."""
    target = sim.frames_generated(0) + at

    def act():
        deadline = time.monotonic() + DEADLINE_S
        while sim.frames_generated(0) < target and time.monotonic() < deadline:
            threading.Event().wait(0.002)  # the simulator's counter: nothing to wait on
        if fault == "abort":
            RE.abort("the matrix aborts")
        elif fault == "stop":
            RE.stop()
        elif fault == "halt":
            RE.halt()
        elif fault == "pause":
            RE.request_pause()
        else:
            # bluesky counts a second Ctrl-C only if its handler runs over 0.1 s after the
            # first one's (two signals close together may even arrive as one): send the
            # second once the first has been taken (a deferred pause, or already paused at
            # a step scan's checkpoint), and 0.15 s later
            os.kill(os.getpid(), signal.SIGINT)
            taken = time.monotonic() + DEADLINE_S
            while RE.state == "running" and not RE.deferred_pause_requested:
                if time.monotonic() > taken:
                    break
                threading.Event().wait(0.005)  # a RunEngine property: nothing to wait on
            threading.Event().wait(0.15)
            os.kill(os.getpid(), signal.SIGINT)

    return threading.Thread(target=act, daemon=True)


def run_plan(RE, plan: Any, fault: str, at: int, outcome: Outcome) -> None:
    """Run ``plan`` to its end as a scientist would: an interruption from ``fault``
    lands ``at`` frames in; after a pause the plan is resumed, after Ctrl-C twice it
    is aborted.  Records the error the plan failed with (a failed status's cause: the
    error the device gave it)."""
    interrupts = fault in (*INTERRUPTS, "pause")
    thread = interrupter(RE, fault, at) if interrupts else None
    if thread is not None:
        thread.start()
    # the RunEngine takes Ctrl-C while it runs; one that lands after it paused (a step
    # scan pauses at its next checkpoint after the first) must not hit pytest
    stray_sigint = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        try:
            RE(plan)
        except RunEngineInterrupted:
            if fault != "pause":
                raise
            outcome.paused = True
            if thread is not None:
                thread.join(DEADLINE_S)
            RE.resume()  # the pause's whole point: the run goes on
    except RunEngineInterrupted:
        outcome.raised = "RunEngineInterrupted"
        if RE.state == "paused":  # Ctrl-C twice pauses; then the scientist aborts
            try:
                RE.abort("after Ctrl-C")
            except Exception as error:  # an abort must not fail: the cell shows it
                outcome.raised, outcome.message = type(error).__name__, f"abort: {error!r}"
    except Exception as error:  # the plan's failure, as a user sees it
        cause = error.__cause__ if isinstance(error, FailedStatus) else None
        shown = cause if isinstance(cause, Exception) else error
        outcome.raised, outcome.message = type(shown).__name__, str(shown)
    finally:
        if thread is not None:
            thread.join(DEADLINE_S)
        signal.signal(signal.SIGINT, stray_sigint)


def camera_stopped(acquiring: Callable[[], bool], watch_s: float = 0.2) -> bool:
    """Nothing is acquiring, and the camera makes no more frames in ``watch_s`` (at
    2 ms a frame, a running camera would show in 0.1 s)."""
    before = sim.frames_generated(0)
    threading.Event().wait(watch_s)  # the simulator's counter: nothing to wait on
    return not acquiring() and sim.frames_generated(0) == before


def file_numbers(path) -> tuple[list[int], int]:
    """The frame numbers in the file's dataset and the rows kept apart from it, read
    the plain (non-SWMR) way: proves the file is closed."""
    with h5py.File(path, "r") as f:
        data = f["/entry/data/data"][()]
        extra = f["/entry/data"].get("unreferenced")
        return [sim.frame_number(frame) for frame in data], 0 if extra is None else len(extra)


def referenced_rows(docs, key: str) -> int:
    """Rows of the frame file one run's StreamDatums of ``key`` reference, checked to
    cover them from the first, without a gap or an overlap."""
    resources = {d["uid"]: d for n, d in docs if n == "stream_resource" and d["data_key"] == key}
    spans = sorted((d["indices"]["start"], d["indices"]["stop"]) for n, d in docs
                   if n == "stream_datum" and d["stream_resource"] in resources)  # fmt: skip
    covered = 0
    for start, stop in spans:
        assert start == covered, f"{key}: StreamDatums {spans} leave a gap or overlap"
        covered = stop
    multipliers = {d["parameters"].get("multiplier", 1) for d in resources.values()}
    assert len(multipliers) <= 1, multipliers
    return covered * (multipliers.pop() if multipliers else 1)


def matrix_run_engine(catalog, *preprocessors) -> Any:
    """A RunEngine for a matrix: ``RE.catalog`` (a :class:`Gate` into ``catalog``, shut
    until a scenario opens it), ``RE.recorder`` (every document) and ``preprocessors``."""
    from bluesky import RunEngine
    from bluesky_tiled_plugins import TiledWriter
    from helpers import Recorder

    engine = RunEngine({}, call_returns_result=False)
    engine.catalog = Gate(TiledWriter(catalog))
    engine.subscribe(engine.catalog)
    engine.recorder = Recorder()
    engine.subscribe(engine.recorder)
    engine.preprocessors.extend(preprocessors)
    return engine


class Gate:
    """A document callback that passes documents on only while ``open`` (the catalog
    gets the runs a matrix replays in a new process, and no others: writing a run
    costs about a second)."""

    def __init__(self, callback: Callable[[str, dict], Any]):
        self.callback = callback
        self.open = False

    def __call__(self, name: str, doc: dict) -> None:
        if self.open:
            self.callback(name, doc)


REPLAY = """
import json, sys
import ophyd_pvcam.sim as sim
from ophyd_pvcam import open_catalog
catalog = open_catalog(sys.argv[1])
result = {}
for uid, stream, key in json.loads(sys.argv[2]):
    run = catalog[uid]
    try:
        images = run[stream][key].read() if stream in run else []
        numbers = [sim.frame_number(frame) for point in images for frame in point]
    except Exception as error:  # reported by the scenario's own test
        numbers = f"{type(error).__name__}: {str(error)[-300:]}"
    result[uid] = {"numbers": numbers, "exit_status": run.metadata["stop"]["exit_status"]}
print(json.dumps(result))
"""


def replay_in_new_process(catalog_dir, outcomes) -> None:
    """Read every outcome's run back from the catalog in one new Python (as a
    scientist would next week) into ``outcome.replay``."""
    outcomes = list(outcomes)
    runs = [(o.uid, o.stream, o.key) for o in outcomes]
    result = subprocess.run(
        [sys.executable, "-c", REPLAY, str(catalog_dir), json.dumps(runs)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    replayed = json.loads(result.stdout.strip().splitlines()[-1])
    for outcome in outcomes:
        outcome.replay = replayed[outcome.uid]


def expected_frames(fault: str, frames: int, per_point: int, fault_at: int, fly: bool):
    """The frames (numbers, in order) a run of ``frames`` frames, ``per_point`` a point,
    must hold after ``fault`` ``fault_at`` frames in; None where only the invariants
    apply (where an interruption or a failure lands depends on timing)."""
    if fault in ("none", "stall_resumes"):
        return list(range(1, frames + 1))
    if fault == "drop":  # every 7th frame lost: a step point takes the next one instead
        kept = [n for n in range(1, 2 * frames + 1) if n % 7]
        return [n for n in kept if n <= frames] if fly else kept[:frames]
    if fault == "stall":  # every frame before the stall, in complete points
        return list(range(1, fault_at // per_point * per_point + 1))
    return None


def check(outcome: Outcome, fault: str, expected: list[int] | None, fault_at: int) -> None:
    """What every scenario must show, on either face: the plan ended as it should,
    with the device's own error; the camera was stopped; the next plan worked; the run
    is exactly the file (replayed in a new process, or else its documents reference
    exactly the file's rows); and the frames are those ``expected`` (None: where an
    interruption or a failure lands depends on timing, so the frames must run from 1,
    in order, none missing, up to ``fault_at`` for a failure; after a pause, the caller
    counts them)."""
    raised, exit_status = OUTCOME[fault]
    if fault in ("abort", "stop", "halt"):  # from another thread, RE() may or may not raise
        raised = outcome.raised if outcome.raised in (None, "RunEngineInterrupted") else raised
    assert (outcome.raised, outcome.exit_status) == (raised, exit_status), outcome.message
    assert outcome.camera_stopped
    assert outcome.next_plan_ok, outcome.message
    if outcome.referenced is not None:
        assert outcome.referenced == len(outcome.file_numbers)
    if outcome.replay:
        assert outcome.replay["numbers"] == outcome.file_numbers  # the run is what is on disk
        assert outcome.replay["exit_status"] == exit_status
    numbers = outcome.file_numbers
    if expected is not None:
        assert numbers == expected
    elif fault == "pause":  # the camera numbers its frames from 1 again after a resume
        assert outcome.paused
    else:  # frames from 1, in order, none missing (the camera lost none here)
        assert numbers == list(range(1, len(numbers) + 1))
        if fault in INTERRUPTS:
            assert len(numbers) >= 1
        else:  # a failure after fault_at frames: some may be unreachable in pvc's queue
            assert 1 <= len(numbers) <= fault_at
