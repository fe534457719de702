"""Every plan shape against every way an acquisition can end: 3 plans x 10 endings (the
issue's 9, and RE.halt()).

For each of the 30 combinations: the plan ends as it should (exception, exit status);
the camera has stopped when ``RE()`` returns; the run replays, in a new process,
exactly the frames that are in the file (by the frame numbers the simulator stamps
into the pixels), and those are the frames expected; the next plan works.

The scenarios run once, in order, in a module fixture (one new process replays all
of them); each combination is then its own test.
"""

from __future__ import annotations

import bluesky.plans as bp
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
    replay_in_new_process,
    run_plan,
)
from ophyd.sim import SynAxis

import ophyd_pvcam.sim as sim

pytestmark = pytest.mark.timeout(600)  # the first test runs all 30 scenarios

PLANS = ("count", "scan", "fly")
FAULTS = ("none", *ENDINGS)
COUNT_POINTS, SCAN_POINTS, FRAMES_PER_POINT, FLY_FRAMES = 10, 5, 3, 150
FAULT_AT = {"count": 4, "scan": 4, "fly": 40}  # frames before the fault
INTERRUPT_AT = {"count": 5, "scan": 7, "fly": 60}
LONG_FLY = 20000  # 40 s: an interruption always lands mid-fly


def _configure(cam, plan: str, fault: str) -> None:
    cam.roi.set((0, 0, 256, 128))
    cam.exposure_time.set(0.002)
    cam.stall_timeout.set(2.0 if fault == "stall_resumes" else 0)
    cam.frames_per_point.set(FRAMES_PER_POINT if plan == "scan" else 1)
    cam.num_frames.set(LONG_FLY if fault in INTERRUPTS else FLY_FRAMES)


def _plan(cam, plan: str, fault: str):
    slow = fault in INTERRUPTS  # give an interruption time to land mid-plan
    if plan == "count":
        return bp.count([cam], num=COUNT_POINTS, delay=0.05 if slow else None)
    if plan == "scan":
        motor = SynAxis(name="motor", delay=0.05 if slow else 0)
        return bp.scan([cam], motor, 0, 1, SCAN_POINTS)
    return bp.fly([cam])


def _run_scenario(cam, RE, plan: str, fault: str) -> Outcome:
    outcome = Outcome(stream="cam" if plan == "fly" else "primary", key="cam_image")
    sim.clear_faults()
    sim.inject_fault("param_poll")  # any parameter access while frames stream fails it
    _configure(cam, plan, fault)
    inject(fault, FAULT_AT[plan])
    RE.catalog.open = True  # the scenario's run is replayed from the catalog; the next is not
    try:
        run_plan(RE, _plan(cam, plan, fault), fault, INTERRUPT_AT[plan], outcome)
    finally:
        RE.catalog.open = False
    outcome.camera_stopped = camera_stopped(lambda: cam.acquiring)
    stop = RE.recorder.of("stop")[-1]
    outcome.uid, outcome.exit_status = stop["run_start"], stop["exit_status"]
    outcome.dropped = cam.dropped_frames.get()
    (path,) = [p for p in cam.write_path.rglob("*.h5") if p.parent.name == outcome.uid]
    outcome.file_numbers, outcome.unreferenced = file_numbers(path)
    sim.clear_faults()
    try:
        cam.frames_per_point.set(1)
        RE(bp.count([cam], num=2))
        outcome.next_plan_ok = RE.recorder.of("stop")[-1]["exit_status"] == "success"
    except Exception as error:
        outcome.message += f" | next plan failed: {error}"
    return outcome


@pytest.fixture(scope="module")
def matrix(data_dir, catalog, tmp_path_factory):
    """Run all 30 scenarios on one camera, then replay every run in one new process."""
    from ophyd_pvcam import PrimeBSI, StallGuard

    cam = PrimeBSI("cam", sim=True, write_path=data_dir / "frames" / "matrix")
    RE = matrix_run_engine(catalog, StallGuard())
    outcomes = {}
    try:
        for plan in PLANS:
            for fault in FAULTS:
                outcomes[plan, fault] = _run_scenario(cam, RE, plan, fault)
    finally:
        cam.close()
    replay_in_new_process(data_dir / "catalog", outcomes.values())
    return outcomes


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("plan", PLANS)
def test_every_ending_leaves_a_stopped_camera_and_a_run_that_replays_the_file(matrix, plan, fault):
    outcome = matrix[plan, fault]
    frames = {"count": COUNT_POINTS, "scan": SCAN_POINTS * FRAMES_PER_POINT, "fly": FLY_FRAMES}
    per_point = FRAMES_PER_POINT if plan == "scan" else 1
    expected = expected_frames(fault, frames[plan], per_point, FAULT_AT[plan], plan == "fly")
    check(outcome, fault, expected, FAULT_AT[plan])
    if fault == "drop":
        assert outcome.dropped == {"count": 1, "scan": 2, "fly": FLY_FRAMES // 7}[plan]
    if fault == "stall" and plan == "scan":
        assert outcome.unreferenced == 1  # the stalled point's one frame, kept apart
