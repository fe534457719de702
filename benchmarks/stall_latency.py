"""Stall-detection latency (issue item 4).

The simulated camera is told to stall after a few frames; the plan must then
fail.  Latency = (moment the RunEngine call raises) - (the last frame's time)
- stall_timeout, i.e. what the detection and the clean-up add to the timeout.

Two plans: ``bluesky.plans.fly`` (the plan waits on ``complete``, so the
camera's failed status ends it) and a plan that kicks off and then sleeps
(only the :class:`~ophyd_pvcam.StallGuard` preprocessor can end it).

The last frame's time is the timestamp of the last event: bluesky 1.15 sets
an event's ``time`` when ``collect`` composes it, while its ``timestamps``
keep the frame's own (camera clock mapped to wall time).
"""

from __future__ import annotations

import time
from typing import Any

import _common as common

import ophyd_pvcam.sim as sim

STALL_TIMEOUT_S = 1.0  # the automatic timeout for a fast camera, set explicitly
EXPOSURE_S = 5e-3
STALL_AFTER = 20  # frames
SLEEP_S = 30.0  # the guarded plan sleeps this long; a stall must cut it short
IDLE_TIMEOUT_S = 15.0  # for the camera to become idle after a failed plan


class LastFrame:
    """Keeps the timestamp of the newest frame seen in events, and the stop time."""

    def __init__(self, key: str):
        self.key = key
        self.last: float | None = None
        self.stop_time: float | None = None

    def __call__(self, name: str, doc: dict) -> None:
        if name == "event_page":
            stamps = doc["timestamps"].get(self.key) or [None]
            self._see(stamps[-1])
        elif name == "event":
            self._see(doc["timestamps"].get(self.key))
        elif name == "stop":
            self.stop_time = doc["time"]

    def _see(self, stamp: float | None) -> None:
        if stamp is not None:
            self.last = stamp if self.last is None else max(self.last, stamp)


def _guarded_plan(camera: Any):
    """Kick off, then sleep far longer than the fly scan takes: only the guard ends it."""
    import bluesky.plan_stubs as bps

    yield from bps.open_run()
    yield from bps.kickoff(camera, wait=True)
    yield from bps.sleep(SLEEP_S)
    yield from bps.complete(camera, wait=True)
    yield from bps.collect(camera)
    yield from bps.close_run()


def _plan(kind: str, camera: Any):
    import bluesky.plans as bp

    return bp.fly([camera]) if kind == "fly" else _guarded_plan(camera)


def wait_until_idle(camera: Any) -> float | None:
    """Seconds until the camera stops acquiring after the plan failed (None: never):
    a plan retried at once needs an idle camera."""
    start = time.monotonic()
    while camera.acquiring:
        if time.monotonic() - start > IDLE_TIMEOUT_S:
            return None
        time.sleep(0.001)
    return time.monotonic() - start


def one_stall(camera: Any, kind: str) -> dict[str, Any]:
    """Inject one stall, run the plan, and time its failure."""
    engine = common.run_engine()
    watcher = LastFrame(f"{camera.name}_frame_number")
    token = engine.subscribe(watcher)
    sim.clear_faults()
    sim.inject_fault("stall", after_frames=STALL_AFTER, times=1)
    error: BaseException | None = None
    try:
        engine(_plan(kind, camera))
    except Exception as caught:  # kept, not raised: one bad trial should not end the run
        error = caught
    failed_at = time.time()
    idle_after = wait_until_idle(camera)
    engine.unsubscribe(token)
    sim.clear_faults()
    found: dict[str, Any] = {"error": type(error).__name__ if error else None}
    if error is not None and not isinstance(error, _stall_error()):
        found["message"] = str(error)[:300]
    found["idle_after_failure_s"] = idle_after
    if watcher.last is None:  # a declared stream has no events: the file's last frame
        watcher.last = _last_frame_time(camera)
    if watcher.last is not None:
        found["latency_s"] = failed_at - watcher.last - STALL_TIMEOUT_S
        if watcher.stop_time is not None:
            found["stop_doc_latency_s"] = watcher.stop_time - watcher.last - STALL_TIMEOUT_S
    return found


def _last_frame_time(camera: Any) -> float | None:
    import h5py

    path = camera.last_file
    if path is None:
        return None
    with h5py.File(path, "r") as f:
        times = f["/entry/instrument/NDAttributes/frame_time"][()]
    return float(times[-1]) if len(times) else None


def _stall_error() -> type:
    from ophyd_pvcam import FrameStallError

    return FrameStallError


def measure(kind: str, trials: int) -> dict[str, Any]:
    """``trials`` stalls in a row on one device; latency statistics in seconds."""
    with common.scratch_dir("stall") as folder:
        camera = common.new_device(folder)
        try:
            camera.roi.set((0, 0, 128, 128)).wait(5)
            camera.exposure_time.set(EXPOSURE_S).wait(5)
            camera.num_frames.set(10 * STALL_AFTER).wait(5)
            camera.stall_timeout.set(STALL_TIMEOUT_S).wait(5)
            results = [one_stall(camera, kind) for _ in range(trials)]
        finally:
            camera.close()
    stalls = [r for r in results if r["error"] == "FrameStallError"]
    latencies = [r["latency_s"] for r in stalls if "latency_s" in r]
    stop_latencies = [r["stop_doc_latency_s"] for r in stalls if "stop_doc_latency_s" in r]
    idle = [r["idle_after_failure_s"] for r in results if r["idle_after_failure_s"] is not None]
    return {
        "trials": trials,
        "failed_with_stall_error": len(stalls),
        "latency_s": common.summary(latencies),
        "stop_doc_latency_s": common.summary(stop_latencies),
        "all_latencies_s": latencies,
        "idle_after_failure_s": common.summary(idle),
        "never_idle": sum(r["idle_after_failure_s"] is None for r in results),
        "other_errors": [r.get("message") or r["error"] for r in results if r not in stalls],
    }


def run(quick: bool) -> dict[str, Any]:
    """Both plans, ``trials`` stalls each."""
    trials = 2 if quick else 20
    return {
        "stall_timeout_s": STALL_TIMEOUT_S,
        "exposure_s": EXPOSURE_S,
        "stall_after_frames": STALL_AFTER,
        "fly": measure("fly", trials),
        "kickoff_then_sleep": measure("guarded", trials),
    }


COLUMNS = (
    "plan", "trials", "stall_errors", "median_ms", "worst_ms", "stop_doc_worst_ms", "idle_worst_ms",
)  # fmt: skip


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Latency beyond the stall timeout, in milliseconds."""
    lines = []
    for plan in ("fly", "kickoff_then_sleep"):
        entry = result[plan]
        lines.append(
            {
                "plan": plan,
                "trials": entry["trials"],
                "stall_errors": entry["failed_with_stall_error"],
                "median_ms": entry["latency_s"]["median"] * 1e3,
                "worst_ms": entry["latency_s"]["max"] * 1e3,
                "stop_doc_worst_ms": entry["stop_doc_latency_s"]["max"] * 1e3,
                "idle_worst_ms": entry["idle_after_failure_s"]["max"] * 1e3,
            }
        )
    return lines
