"""The fault matrix on the ophyd-async face: 3 plans x 10 endings on the C simulator.

The ophyd face's endings (``test_fault_matrix.py``, whose harness ``fault_matrix.py``
this shares; a plain run without a fault is covered by
``test_async_detector_on_the_simulator.py``) and a pause the plan is resumed from: a count, a scan
of several exposures per collection and a fly scan (``collect_while_completing``),
each against a stall, a stall that resolves, a readout failure, a disconnect, dropped
frames, abort, stop, halt, Ctrl-C and pause.  For each: the plan fails with the core's
error (a failed status whose cause is the device's error and its diagnosis, never a
bare timeout) or ends as it should; the camera has stopped when ``RE()`` returns; the
file is closed and its frames are the ones expected; the run is exactly what is on
disk (its StreamDatums reference exactly the file's rows; three runs, one of each plan,
also go into the catalog and are replayed in one new process); drops are
counted; the next plan works in the same Python.

Small on purpose (a 128 x 64 ROI, a few frames a plan): the suite has a time budget.
"""

from __future__ import annotations

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import pytest
from fault_matrix import (
    ENDINGS,
    INTERRUPTS,
    Outcome,
    camera_stopped,
    check,
    expected_frames,
    file_numbers,
    inject,
    matrix_run_engine,
    referenced_rows,
    replay_in_new_process,
    run_plan,
)
from ophyd.sim import SynAxis
from ophyd_async.core import StaticFilenameProvider, StaticPathProvider, TriggerInfo

import ophyd_pvcam.sim as sim

pytestmark = pytest.mark.timeout(300)  # the first test runs all 30 scenarios

PLANS = ("count", "scan", "fly")
FAULTS = (*ENDINGS, "pause")
COUNT_POINTS, SCAN_POINTS, EXPOSURES, FLY_FRAMES = 8, 4, 3, 100
FRAMES = {"count": COUNT_POINTS, "scan": SCAN_POINTS * EXPOSURES, "fly": FLY_FRAMES}
PER_POINT = {"count": 1, "scan": EXPOSURES, "fly": 1}
FAULT_AT = {"count": 3, "scan": 4, "fly": 30}  # frames before the fault
INTERRUPT_AT = {"count": 2, "scan": 4, "fly": 40}
LONG_FLY = 20000  # 40 s: an interruption always lands mid-fly
PAUSED_FLY = 500  # 1 s: the pause lands mid-fly, and the scan then ends by itself
DROPPED = {"count": 1, "scan": 1, "fly": FLY_FRAMES // 7}
# written to the catalog and replayed in a new process (each costs a second or so);
# the documents of every other run are checked against its file in this process
REPLAYED = {("count", "pause"), ("scan", "stall"), ("fly", "ctrl_c_abort")}


def _plan(acam, plan: str, fault: str):
    # an interruption lands mid-plan: 0.1 s a point leaves it a few tenths of a second,
    # however late a loaded machine runs the thread that interrupts
    slow = 0.1 if fault in (*INTERRUPTS, "pause") else 0
    if plan == "count":
        return bp.count([acam], num=COUNT_POINTS, delay=slow or None)
    if plan == "scan":
        motor = SynAxis(name="motor", delay=slow)

        @bpp.stage_decorator([acam, motor])
        @bpp.run_decorator()
        def scan():
            yield from bps.prepare(acam, TriggerInfo(exposures_per_collection=EXPOSURES), wait=True)
            for point in range(SCAN_POINTS):
                yield from bps.checkpoint()
                yield from bps.mv(motor, point)
                yield from bps.trigger_and_read([acam, motor])

        return scan()

    events = LONG_FLY if fault in INTERRUPTS else PAUSED_FLY if fault == "pause" else FLY_FRAMES

    @bpp.stage_decorator([acam])
    @bpp.run_decorator()
    def fly():
        yield from bps.prepare(acam, TriggerInfo(number_of_events=events), wait=True)
        yield from bps.declare_stream(acam, name="primary")
        yield from bps.kickoff(acam, wait=True)
        yield from bps.collect_while_completing([acam], [acam], flush_period=0.05)

    return fly()


def _run_scenario(acam, RE, plan: str, fault: str) -> Outcome:
    from bluesky.run_engine import call_in_bluesky_event_loop

    outcome = Outcome(stream="primary", key="acam_image")
    sim.clear_faults()
    sim.inject_fault("param_poll")  # any parameter access while frames stream fails it
    RE(bps.mv(acam.stall_timeout, 2.0 if fault == "stall_resumes" else 0))
    inject(fault, FAULT_AT[plan])
    RE.recorder.docs.clear()
    RE.catalog.open = (plan, fault) in REPLAYED
    try:
        run_plan(RE, _plan(acam, plan, fault), fault, INTERRUPT_AT[plan], outcome)
    finally:
        RE.catalog.open = False
    outcome.camera_stopped = camera_stopped(lambda: acam.controller.acquiring, watch_s=0.1)
    stop = RE.recorder.of("stop")[-1]
    outcome.uid, outcome.exit_status = stop["run_start"], stop["exit_status"]
    outcome.referenced = referenced_rows(RE.recorder.docs, "acam_image")
    outcome.dropped = call_in_bluesky_event_loop(acam.dropped_frames.get_value())
    (path,) = [p for p in acam.folder.rglob("*.h5") if p.parent.name == outcome.uid]
    outcome.file_numbers, outcome.unreferenced = file_numbers(path)
    sim.clear_faults()
    try:
        RE(bp.count([acam], num=1))
        outcome.next_plan_ok = RE.recorder.of("stop")[-1]["exit_status"] == "success"
    except Exception as error:
        outcome.message += f" | next plan failed: {error!r}"
    return outcome


@pytest.fixture(scope="module")
def matrix(data_dir, catalog):
    """Run all 30 scenarios on one detector, then replay every run in one new process."""
    from ophyd_async.core import init_devices

    from ophyd_pvcam.asyncio import PvcamDetector

    RE = matrix_run_engine(catalog)
    folder = data_dir / "frames" / "async-matrix"
    with init_devices():
        acam = PvcamDetector(
            sim=True, path_provider=StaticPathProvider(StaticFilenameProvider("acam"), folder)
        )
    acam.folder = folder
    RE(bps.mv(acam.roi, [0, 0, 128, 64], acam.exposure_time, 0.002))
    outcomes = {}
    try:
        for plan in PLANS:
            for fault in FAULTS:
                outcomes[plan, fault] = _run_scenario(acam, RE, plan, fault)
    finally:
        acam.close()
    replay_in_new_process(data_dir / "catalog", [outcomes[cell] for cell in sorted(REPLAYED)])
    return outcomes


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("plan", PLANS)
def test_every_ending_on_the_async_face_stops_the_camera_and_replays_the_file(matrix, plan, fault):
    outcome = matrix[plan, fault]
    expected = expected_frames(fault, FRAMES[plan], PER_POINT[plan], FAULT_AT[plan], plan == "fly")
    check(outcome, fault, expected, FAULT_AT[plan])
    if outcome.raised not in (None, "RunEngineInterrupted"):  # the core's words, in full
        assert outcome.message.startswith("acam"), outcome.message
        assert "timeout" not in outcome.raised.lower(), outcome.message
    if fault == "drop":
        assert outcome.dropped == DROPPED[plan]
    if fault == "stall" and plan == "scan":
        assert outcome.unreferenced == 1  # the stalled point's one frame, kept apart
    if fault == "pause":  # every frame after the resume; a pause in the delay after a
        # point's event redoes the point (bluesky rewinds to the checkpoint before it)
        taken = len(outcome.file_numbers)
        assert outcome.paused and taken % PER_POINT[plan] == 0
        assert taken == PAUSED_FLY if plan == "fly" else taken >= FRAMES[plan]
    assert bool(outcome.replay) == ((plan, fault) in REPLAYED)
