"""``ophyd-pvcam probe``: where and why do frames stop on this camera?

Two halves, on whatever camera is attached (the simulator or a real one):

1. ophyd-pvcam's own fly scans (pyvcam, CIRC_OVERWRITE) over buffer sizes,
   exposures and readout ports (:func:`ophyd_pvcam.device.stall_probe`): does *this*
   driver see frames stop, and does the stop move with the buffer size?
2. the stall doctor (:mod:`ophyd_pvcam.diagnostics._doctor`): one controlled experiment per
   cause other teams reported, driven directly through the SDK, and a verdict.
   Its ``no-unlock`` experiment is the original investigation's buffer-strategy
   matrix, with a frame callback pacing a consumer loop:

   - CIRC_OVERWRITE, take the latest frame on each callback;
   - CIRC_NO_OVERWRITE, take the oldest frame and unlock it;
   - CIRC_NO_OVERWRITE, take the latest frame and never unlock.

The report grows section by section (``update`` sees it after each), so an
interrupted probe keeps what it found; the camera's settings are restored and
nothing is left acquiring (:class:`~ophyd_pvcam.diagnostics.Bench`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ophyd_pvcam import sim
from ophyd_pvcam.device import fly_table, format_table, stall_probe
from ophyd_pvcam.hardware.sdk import (
    CIRC_NO_OVERWRITE,
    CIRC_OVERWRITE,
    PL_CALLBACK_EOF,
    FrameCounter,
    Region,
    Sdk,
    quietly,
)

from . import _doctor as doctor
from ._doctor import NO_UNLOCK, OVERWRITE, UNLOCK

log = logging.getLogger(__name__)

RunPair = tuple[doctor.Run, doctor.Run]  # a controlled pair: without the cause, with it


@dataclass(frozen=True)
class Strategy:
    name: str
    buffer_mode: int
    oldest: bool
    unlock: bool


STRATEGIES = (
    Strategy(OVERWRITE, CIRC_OVERWRITE, oldest=False, unlock=False),
    Strategy(UNLOCK, CIRC_NO_OVERWRITE, oldest=True, unlock=True),
    Strategy(NO_UNLOCK, CIRC_NO_OVERWRITE, oldest=False, unlock=False),
)


@dataclass(frozen=True)
class SdkResult:
    """One stream straight on the SDK (``run_strategy``): the frames a strategy got
    of those asked for, with a given circular buffer, and whether they stopped."""

    strategy: str
    buffer_frames: int
    delivered: int
    target: int
    stalled: bool
    last_frame: int


def run_strategy(
    sdk: Sdk,
    handle: int,
    strategy: Strategy,
    buffer_frames: int,
    frames: int,
    exposure: int = 2,
    region: Region | None = None,
    stall_timeout: float = 1.0,
) -> SdkResult:
    """Stream until ``frames`` frames or a stall; returns what was delivered.
    ``exposure`` is in the camera's exposure resolution (microseconds on a
    :class:`~ophyd_pvcam.diagnostics.Bench`)."""
    region = region or Region.of(0, 0, 256, 128)
    frame_bytes = sdk.setup_cont(handle, region, exposure, strategy.buffer_mode)
    buffer = np.zeros(frame_bytes * buffer_frames // 2, dtype=np.uint16)
    counter = FrameCounter()
    sdk.on_frame(handle, PL_CALLBACK_EOF, counter)
    consumed, last = 0, 0
    try:
        sdk.start_cont(handle, buffer)
        while consumed < frames:
            if not counter.wait_beyond(consumed, stall_timeout):
                break  # no callback within the timeout: frames stopped
            consumed = counter.count
            frame = (sdk.oldest_frame if strategy.oldest else sdk.latest_frame)(
                handle, region.shape
            )
            last = frame.number
            if strategy.unlock:
                sdk.unlock_oldest(handle)
    finally:
        quietly(sdk.abort, handle)
        quietly(sdk.clear_callback, handle, PL_CALLBACK_EOF)
    delivered = min(counter.count, frames)
    return SdkResult(strategy.name, buffer_frames, delivered, frames, delivered < frames, last)


# ---- the probe -------------------------------------------------------------------------------


@dataclass
class ProbeOptions:
    """What the probe tries: the fly scans' buffers, exposures and ports, the doctor's
    SDK experiments, and the limits its frame- and byte-limit streams must pass."""

    buffers: Sequence[int] = (8, 16, 32)
    exposures: Sequence[float] = (0.002,)
    ports: Sequence[str] | None = None
    frames: int = 150
    roi: tuple[int, int, int, int] = (0, 0, 256, 128)
    inject_stall: int | None = None  # simulator: stall after N frames (fly scans, limits)
    fly: bool = True  # ophyd-pvcam's fly scans
    sdk: bool = True  # the doctor's SDK experiments
    stall_timeout: float | None = None  # None: automatic
    limit_frames: int = 200  # the frame/byte-limit streams pass this many frames...
    limit_bytes: int = 1 << 30  # ... and this many bytes
    catalog: Any = None  # record the fly scans here (None: not recorded)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "catalog"}
        return {**out, "recorded": self.catalog is not None}


@dataclass
class Probe:
    """One probe: ``run()`` fills ``report`` section by section."""

    bench: Any  # an entered Bench
    options: ProbeOptions
    say: Callable[[str], None] = print
    update: Callable[[dict], None] | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def run(self) -> dict[str, Any]:
        o, started = self.options, time.monotonic()
        self.report = {
            "camera": {},
            "options": o.as_dict(),
            "injected": None,
            "device": [],
            "sdk": [],
            "experiments": {"limits": [], "param_polling": [], "callback_reregistration": []},
            "hypotheses": [],
            "verdict": None,
            "complete": False,
        }
        self._started = started
        if o.inject_stall is not None:
            self.report["injected"] = (
                f"a stall after {o.inject_stall} frames (simulator): in the fly scans and the "
                "frame/byte-limit streams; the other experiments run on a healthy camera"
            )
        with self.bench.device() as cam:
            self.report["camera"] = self.bench.identity(cam.capabilities)
            self.say(describe_camera(self.report["camera"]))
            if self.report["injected"]:
                self.say(f"injected {self.report['injected']}")
            if o.fly:
                self._fly(cam)
        if o.sdk:
            self._doctor()
        self.report["complete"] = True
        self._changed()
        return self.report

    def _changed(self) -> None:
        self.report["duration_s"] = round(time.monotonic() - self._started, 1)
        if self.update is not None:
            self.update(self.report)

    # ---- 1. ophyd-pvcam's fly scans --------------------------------------------------------

    def _fly(self, cam) -> None:
        from bluesky import RunEngine

        from ophyd_pvcam.device import StallGuard

        o = self.options
        ports = o.ports or [p.name for p in cam.capabilities.ports]
        self.say(
            f"\n1. ophyd-pvcam fly scans (pyvcam, CIRC_OVERWRITE), {o.frames} frames each, "
            f"ports {', '.join(ports)}:"
        )
        engine = RunEngine({}, call_returns_result=True)
        engine.preprocessors.append(StallGuard())
        if o.catalog is not None:
            from bluesky_tiled_plugins import TiledWriter

            engine.subscribe(TiledWriter(o.catalog))
        previous = cam.stall_timeout.get()
        if o.stall_timeout:
            cam.stall_timeout.put(o.stall_timeout)

        def row_done(row: dict) -> None:
            self.report["device"].append(row)
            self._changed()

        try:
            with _injected(o.inject_stall):
                engine(
                    stall_probe(
                        cam, o.buffers, o.exposures, ports, o.frames, roi=o.roi, on_row=row_done
                    )
                )
        finally:
            cam.stall_timeout.put(previous)

    # ---- 2. the doctor ---------------------------------------------------------------------

    def _doctor(self) -> None:
        o, bench = self.options, self.bench
        experiments = self.report["experiments"]
        exposure_us = max(1, round(o.exposures[0] * 1e6))
        region = Region.of(*o.roi)
        x, y, width, height = o.roi
        timeout = o.stall_timeout or 1.0
        small = f"ROI {width}x{height} at ({x}, {y}), exposure {exposure_us / 1e3:g} ms"
        with bench.camera() as handle:
            sdk = bench.sdk
            self.say(f"\n2. no-unlock: the stall report's buffer strategies (ctypes), {small}:")
            for strategy in STRATEGIES:
                for buffer in o.buffers:
                    result = run_strategy(
                        sdk, handle, strategy, buffer, o.frames, exposure_us, region, timeout
                    )
                    self.report["sdk"].append(asdict(result))
                    self._changed()
            self.say(strategy_table(self.report["sdk"]))

            def pair(key: str, heading: str, runs_of: Callable[..., RunPair]) -> RunPair:
                """One controlled pair, recorded and shown as soon as it has run."""
                self.say(heading)
                runs = runs_of(
                    sdk,
                    handle,
                    region,
                    buffer_frames=max(o.buffers),
                    frames=o.frames,
                    exposure_us=exposure_us,
                    stall_timeout=timeout,
                )
                experiments[key] = [r.as_dict() for r in runs]
                self._changed()
                self.say(run_table(runs, reads=key == "param_polling"))
                return runs

            param = pair(
                "param_polling",
                f"\n3. param-polling: the same stream without and with a temperature read "
                f"every {doctor.READ_EVERY} frames from frame {doctor.READ_FROM}, {small}:",
                doctor.param_polling_runs,
            )
            callback = pair(
                "callback_reregistration",
                f"\n4. callback-reregistration: the EOF callback registered once, then "
                f"twice, {small}:",
                doctor.callback_runs,
            )

            buffers = doctor.limit_buffers(o.buffers)
            self.say(
                f"\n5. byte-limit / frame-limit: full and quarter-height frames, buffers of "
                f"{buffers[0]} and {buffers[1]}, each past {o.limit_frames} frames and "
                f"{doctor.mib(o.limit_bytes)} (ctypes, CIRC_OVERWRITE, exposure "
                f"{exposure_us / 1e3:g} ms):"
            )

            def limit_done(run: doctor.Run) -> None:
                experiments["limits"].append(run.as_dict())
                self._changed()

            with _injected(o.inject_stall):
                limits = doctor.limit_runs(
                    sdk,
                    handle,
                    bench.sensor,
                    o.buffers,
                    exposure_us,
                    o.limit_frames,
                    o.limit_bytes,
                    timeout,
                    progress=limit_done,
                )
            self.say(limit_table(limits))

        rows = [SdkResult(**r) for r in self.report["sdk"]]
        frame_limit, byte_limit = doctor.judge_limits(limits)
        found = {
            "no-unlock": doctor.judge_no_unlock(rows),
            "param-polling": doctor.judge_param_polling(*param),
            "callback-reregistration": doctor.judge_callback(*callback),
            "byte-limit": byte_limit,
            "frame-limit": frame_limit,
        }
        hypotheses = [found[h] for h in doctor.HYPOTHESES]
        self.report["hypotheses"] = [h.as_dict() for h in hypotheses]
        result = doctor.verdict(hypotheses, self.report["device"])
        self.report["verdict"] = result.as_dict()
        self._changed()
        self.say("\nHypotheses:")
        self.say(doctor.hypotheses_table(hypotheses))
        self.say("")
        self.say(doctor.wrap_lines(result.lines))


@contextlib.contextmanager
def _injected(after_frames: int | None) -> Iterator[None]:
    """The simulated camera stalls after ``after_frames`` frames, meanwhile; then only the
    faults the environment armed remain."""
    if after_frames is None:
        yield
        return
    sim.inject_fault("stall", after_frames=after_frames)
    try:
        yield
    finally:
        sim.clear_faults()
        sim.inject_environment_faults()


def describe_camera(camera: dict[str, Any]) -> str:
    return (
        f"camera   {camera['name']}: {camera['model']}"
        f"{' (simulated)' if camera['simulated'] else ''}, serial {camera['serial_number']}, "
        f"firmware {camera['firmware_version']}, PVCAM {camera['pvcam_version']}, sensor "
        f"{camera['sensor'][0]}x{camera['sensor'][1]}"
    )


def strategy_table(rows: Sequence[dict]) -> str:
    return format_table(
        [
            {
                "strategy": r["strategy"],
                "buffer": r["buffer_frames"],
                "target": r["target"],
                "delivered": r["delivered"],
                "outcome": "stalled" if r["stalled"] else "complete",
            }
            for r in rows
        ]
    )


def run_table(runs: Sequence[doctor.Run], reads: bool = False) -> str:
    return format_table(
        [
            {
                "arm": r.arm,
                **({"reads": r.reads} if reads else {}),
                "target": r.target,
                "delivered": r.delivered,
                "last frame": r.last_frame,
                "status at end": r.status or "-",
                "outcome": r.outcome if not r.error else f"failed: {r.error}",
            }
            for r in runs
        ]
    )


def limit_table(runs: Sequence[doctor.Run]) -> str:
    return format_table(
        [
            {
                "frame": f"{r.width}x{r.height}",
                "MiB/frame": f"{r.frame_bytes / doctor.MIB:g}",
                "buffer": r.buffer_frames,
                "target": r.target,
                "delivered": r.delivered,
                "last frame": r.last_frame,
                "MiB at end": f"{r.stop_bytes / doctor.MIB:.0f}",
                "outcome": r.outcome if not r.error else f"failed: {r.error}",
            }
            for r in runs
        ]
    )


def text_report(report: dict[str, Any]) -> str:
    """The whole report as text (what the CLI printed as it went)."""
    lines = [describe_camera(report["camera"])] if report.get("camera") else []
    if report.get("injected"):
        lines.append(f"injected {report['injected']}")
    if report.get("device"):
        lines += ["", "ophyd-pvcam fly scans:", fly_table(report["device"])]
    if report.get("hypotheses"):
        hypotheses = [doctor.Hypothesis(**h) for h in report["hypotheses"]]
        lines += ["", "Hypotheses:", doctor.hypotheses_table(hypotheses)]
    if report.get("verdict"):
        lines += ["", doctor.wrap_lines(report["verdict"]["text"].splitlines())]
    return "\n".join(lines)
