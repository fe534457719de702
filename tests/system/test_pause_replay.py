"""Pauses and suspenders across the plans a beamline runs, replayed next week.

Four plans -- ``count``, ``scan`` with several frames per point, ``bp.fly`` and
``fly_during_wrapper`` around a motor scan -- each interrupted in three windows: during
an exposure (a frame the camera holds back), during readout (frames made and still on
their way to disk: the writer is held) and between points (the camera idle between two
points; for ``bp.fly``, which has none, once its last frame is in and before it is
collected).  Each is interrupted twice: by a pause (``RE.request_pause``, then
``RE.resume()``) and by a ``SuspendFloor`` on a beam signal (a beam dump: it resumes by
itself).  The camera is the fake one, so each window is made by an event, not a timer.

Every run goes into the suite's catalog; one fresh Python then reads them all back, and
each must be exactly its file: every row once, in order, pixel for pixel; the stop
document ``success``; frame times forward; the pause recorded, nothing counted lost for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import bluesky.plans as bp
import bluesky.preprocessors as bpp
import h5py
import numpy as np
import pytest
from bluesky.suspenders import SuspendFloor
from bluesky.utils import RunEngineInterrupted
from ophyd.sim import SynAxis, SynSignal

from ophyd_pvcam import PrimeBSI
from ophyd_pvcam.storage import DATA_PATH, FrameFile, record_path
from ophyd_pvcam.testing import FakeBackend, fake_frame_number

DEADLINE = 20.0
POINTS = 4
FLY_FRAMES = 30
PLANS = {"count": 1, "scan": 3, "fly": 1, "fly_during": 1}  # frames per point
WINDOWS = ["exposure", "readout", "between"]
HOWS = ["pause", "suspender"]

READ_ALL = """
import json, sys
import numpy as np
from ophyd_pvcam import open_catalog
catalog = open_catalog(sys.argv[1])
out = {}
for item in json.loads(sys.argv[2]):
    run = catalog[item["uid"]]
    images = run[item["stream"]]["cam_image"].read()
    np.save(f"{sys.argv[3]}/{item['uid']}.npy", np.asarray(images))
    out[item["uid"]] = run.metadata["stop"]["exit_status"]
print(json.dumps(out))
"""


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    tick = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE} s: {what}"
        tick.wait(0.005)


class HeldWriter:
    """Holds the writer before it writes row ``row`` (frames stay in memory, on their
    way to disk), until released."""

    def __init__(self, monkeypatch) -> None:
        self.row: int | None = None
        self.reached = threading.Event()
        self.gate = threading.Event()
        original = FrameFile.write
        held = self

        def write(file, row, pixels, chunk):
            if held.row is not None and row.row == held.row and not held.gate.is_set():
                held.reached.set()
                held.gate.wait(DEADLINE)
            return original(file, row, pixels, chunk)

        monkeypatch.setattr(FrameFile, "write", write)

    def hold(self, row: int) -> None:
        self.row = row
        self.reached.clear()
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()


def plan_for(name: str, cam):
    motor = SynAxis(name="motor", delay=0.03)
    if name == "count":
        return bp.count([cam], num=POINTS, delay=0.05)
    if name == "scan":
        return bp.scan([cam], motor, 0, 1, POINTS)
    cam.num_frames.put(FLY_FRAMES)
    if name == "fly":
        return bp.fly([cam])
    return bpp.fly_during_wrapper(bp.scan([], motor, 0, 1, 8), [cam])


def interrupt(RE, cam, fake, held: HeldWriter, plan: str, window: str, how: str, beam):
    """Start the thread that interrupts the plan in ``window``, as ``how`` does."""
    fpp = PLANS[plan]
    fly = plan.startswith("fly")
    made = fake.frames_made  # before this plan (the camera made frames for others)
    # exposure: the frame held back (point 1's first, or the fly's middle one); readout:
    # the row the writer is held before (point 1's last, or the fly's middle one)
    frame = FLY_FRAMES // 2 if fly else fpp + 1
    if window == "exposure":
        fake.script[frame] = "stall"
    elif window == "readout":
        held.hold(FLY_FRAMES // 2 if fly else 2 * fpp - 1)
    elif plan == "fly":  # after its last frame, before it is collected
        held.hold(FLY_FRAMES - 1)

    def reached() -> bool:
        if window == "exposure":
            return frame not in fake.script
        if window == "readout" or plan == "fly":
            return held.reached.is_set()
        if fly:
            return fake.frames_made - made >= frame
        return fake.frames_made - made >= 2 * fpp and not cam.acquiring

    def act() -> None:
        wait_until(reached, f"the {window} window")
        if how == "pause":  # as Ctrl-C does; it returns once the devices have paused
            defer = window == "between" and plan != "fly"
            threading.Thread(target=RE.request_pause, args=(defer,), daemon=True).start()
        else:
            beam.put(0.0)
        # the session has noted the pause: the writer may go on (the camera's stop, which
        # the pause waits for, waits for it)
        wait_until(lambda: bool(getattr(cam._controller.last, "pauses", None)), "the pause")
        held.release()
        if how == "suspender":
            wait_until(lambda: RE.state == "paused" or not cam.acquiring, "the suspension")
            beam.put(1.0)

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def outcomes(data_dir, catalog, tmp_path_factory):
    """Run every (plan, window, how) into the catalog, then replay them all in one fresh
    Python: {case: (uid, file, stream, exit status, replayed images)}."""
    from bluesky import RunEngine
    from bluesky_tiled_plugins import TiledWriter

    from ophyd_pvcam import StallGuard

    mp = pytest.MonkeyPatch()
    held = HeldWriter(mp)
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(TiledWriter(catalog))
    RE.preprocessors.append(StallGuard())
    beam = SynSignal(name="beam", func=lambda: 1.0)
    beam.put(1.0)
    fake = FakeBackend(period_s=0.002)
    cam = PrimeBSI("cam", backend=lambda: fake, write_path=data_dir / "frames" / "pause_replay")
    cam.roi.put((0, 0, 16, 8))
    cam.exposure_time.put(0.002)
    cam.stall_timeout.put(60)  # a held frame is the window here, not a stall
    runs: dict = {}
    try:
        for plan, fpp in PLANS.items():
            cam.frames_per_point.put(fpp)
            for window in WINDOWS:
                for how in HOWS:
                    case = f"{plan}-{window}-{how}"
                    RE.clear_suspenders()
                    if how == "suspender":
                        RE.install_suspender(SuspendFloor(beam, 0.5, resume_thresh=0.8))
                    thread = interrupt(RE, cam, fake, held, plan, window, how, beam)
                    try:
                        uids = RE(plan_for(plan, cam))
                    except RunEngineInterrupted:
                        assert not cam.acquiring, f"{case}: the camera ran on after the pause"
                        uids = RE.resume()
                    thread.join(DEADLINE)
                    fake.script.clear()
                    held.hold(-1)
                    held.release()
                    stream = "cam" if plan.startswith("fly") else "primary"
                    runs[case] = {"uid": uids[0], "stream": stream, "file": cam.last_file}
        out = tmp_path_factory.mktemp("replayed")
        items = [{"uid": r["uid"], "stream": r["stream"]} for r in runs.values()]
        result = subprocess.run(
            [sys.executable, "-c", READ_ALL, str(data_dir / "catalog"), json.dumps(items),
             str(out)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout.strip().splitlines()[-1])
        for run in runs.values():
            run["exit_status"] = status[run["uid"]]
            run["replayed"] = np.load(out / f"{run['uid']}.npy")
    finally:
        cam.close()
        mp.undo()
    return runs


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("plan", list(PLANS))
def test_a_run_interrupted_and_resumed_replays_exactly_its_file(outcomes, plan, window, how):
    run = outcomes[f"{plan}-{window}-{how}"]
    assert run["exit_status"] == "success"
    with h5py.File(run["file"], "r") as f:  # a plain open: the file is closed
        pixels = f[DATA_PATH][()]
        times = f[record_path("frame_time")][()]
        lost = f[record_path("lost_frame_numbers")][()]
        reasons = json.loads(f["entry"].attrs.get("lost_frames", "{}"))
        pauses = json.loads(f["entry"].attrs["pauses"]) if "pauses" in f["entry"].attrs else []
    replayed = run["replayed"]
    replayed = replayed.reshape(-1, PLANS[plan], *pixels.shape[1:])  # events, frames, y, x
    assert np.array_equal(replayed.reshape(pixels.shape), pixels)  # every row, in order
    fly = plan.startswith("fly")
    if fly:
        assert pixels.shape[0] == FLY_FRAMES
    else:
        # a suspension in the delay after a point's event redoes the point (bluesky
        # rewinds to the checkpoint before it): one more event, and its row in the file
        assert replayed.shape[0] >= POINTS and pixels.shape[0] == replayed.size // pixels[0].size
    assert np.all(np.diff(times) >= 0), times  # frame times never run backwards
    assert len(pauses) >= 1 and all(p[0] <= p[1] for p in pauses)  # recorded as a pause
    if fly:
        assert len(lost) == 0, reasons  # the camera was stopped, not left running
    else:
        # a point the pause interrupted is taken again; its frames, if any came, are
        # counted with the reason and nothing else is
        assert set(reasons) <= {
            "belonged to a point that was interrupted",
            "belonged to a point the RunEngine took again after a pause",
        }, reasons
        numbers = [fake_frame_number(frame) for frame in pixels]
        assert all(n >= 1 for n in numbers)
