"""``ophyd-pvcam check``: the first-day acceptance test of a camera and its driver.

Run it when the camera arrives, and after any driver, firmware or cable change.
In order (each check is one row of the report, and a failure in one does not stop
the others):

1. identity: what the camera says it is, and which PVCAM drives it;
2. full-frame rate, for every readout port / speed / gain (SDK, no disk): frames
   per second measured with the camera's own frame timestamps, against the
   readout time the camera reports for that mode;
3. software triggers (SDK): one frame per trigger, none without one, and every
   frame ending at least an exposure and a readout after its trigger (a frame
   whose exposure began before its trigger would end sooner);
4. a stream of 1000 frames per port / speed / gain through ophyd-pvcam (a fly
   scan to disk; a small ROI, stated, since the disk and not the camera limits
   full frames): no frame lost, frame numbers 1..1000 without a gap;
5. a step scan and 6. a fly scan through the RunEngine, replayed from the
   catalog (a temporary one unless ``keep_data``): images, frame numbers, no
   loss, exit status;
7. temperature: at its setpoint, or where it got to after a wait (reported, not
   failed, while it still approaches).

The camera's settings are restored and nothing is left acquiring
(:class:`~ophyd_pvcam.diagnostics.Bench`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from bluesky.utils import RunEngineInterrupted

from ophyd_pvcam import sim
from ophyd_pvcam.hardware.sdk import (
    CIRC_OVERWRITE,
    PARAM_BIT_DEPTH,
    PARAM_GAIN_INDEX,
    PARAM_READOUT_PORT,
    PARAM_READOUT_TIME,
    PARAM_SPDTAB_INDEX,
    PL_CALLBACK_EOF,
    FrameLog,
    Region,
    quietly,
)

log = logging.getLogger(__name__)

SOFTWARE_EDGE = "Software Trigger Edge"
WORDS = {"pass": "PASS", "fail": "FAIL", "warn": "NOTE"}  # a note is reported, not failed
IDLE_TIMEOUT_S = 30.0


@dataclass
class CheckOptions:
    rate_seconds: float = 1.0  # of full frames per readout mode
    rate_tolerance: float = 0.05  # measured rate within 5 % of 1 / readout time
    triggers: int = 20
    trigger_exposure: float = 0.01
    stream_frames: int = 1000
    stream_size: int = 128  # a square ROI, pixels
    stream_exposure: float = 0.002
    scan_points: int = 5
    frames_per_point: int = 2
    fly_frames: int = 200
    scan_size: int = 256
    temperature_wait: float = 120.0  # s
    temperature_tolerance: float = 1.0  # degC
    catalog: str | Path | None = None  # where the scans are recorded (None: a temporary one)


@dataclass
class Check:
    """One row of the report."""

    check: str
    status: str  # "pass", "fail", or "warn" (reported, not failed)
    measured: str
    expected: str
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **asdict(self)}

    def line(self) -> str:
        """One line naming the check and what went wrong (or right)."""
        text = f"{self.check}: {self.detail or self.measured}"
        text = " ".join(text.split())
        return text if len(text) <= 400 else text[:397] + "..."


@dataclass
class Mode:
    port: str
    port_value: int
    speed: int
    speed_name: str
    gain: int
    gain_name: str
    bit_depth: int

    @property
    def label(self) -> str:
        return f"{self.port} / {self.speed_name} / {self.gain_name}"


@dataclass
class FirstDayCheck:
    bench: Any  # an entered Bench
    options: CheckOptions = field(default_factory=CheckOptions)
    say: Callable[[str], None] = print
    update: Callable[[dict], None] | None = None
    checks: list[Check] = field(default_factory=list)
    camera: dict[str, Any] = field(default_factory=dict)

    # ---- the report ------------------------------------------------------------------------

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def first_failure(self) -> str | None:
        return next((c.line() for c in self.checks if not c.passed), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "first_failure": self.first_failure,
            "camera": self.camera,
            "options": {
                k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.options).items()
            },
            "checks": [c.as_dict() for c in self.checks],
            "duration_s": round(time.monotonic() - self._started, 1),
        }

    def _add(self, check: Check) -> None:
        self.checks.append(check)
        word = WORDS[check.status]
        self.say(f"{word}  {check.check:<48} {check.measured}")
        if check.status != "pass" and check.detail:
            self.say(f"      {check.detail}")
        if self.update is not None:
            self.update(self.as_dict())

    @contextlib.contextmanager
    def _checking(self, name: str, expected: str = "") -> Iterator[None]:
        """A check that raises becomes a failed row; the next check still runs."""
        started = time.monotonic()
        try:
            yield
        except RunEngineInterrupted:  # Ctrl-C during a scan ends the check, as it should
            raise
        except Exception as error:
            log.debug("check %s failed", name, exc_info=True)
            self._add(
                Check(
                    name,
                    "fail",
                    "error",
                    expected,
                    f"{type(error).__name__}: {error}",
                    seconds=round(time.monotonic() - started, 2),
                )
            )

    # ---- the run ---------------------------------------------------------------------------

    def run(self) -> FirstDayCheck:
        self._started = time.monotonic()
        bench = self.bench
        with bench.device() as cam:
            caps = cam.capabilities
            self.caps = caps
            self.modes = [
                Mode(
                    port.name,
                    port.value,
                    speed.index,
                    speed.name,
                    gain.index,
                    gain.name,
                    gain.bit_depth,
                )
                for port in caps.ports
                for speed in port.speeds
                for gain in speed.gains
            ]
            self._identity(cam)
        with self._checking("full-frame rates"), bench.camera() as handle:
            for mode in self.modes:
                with self._checking(f"full-frame rate {mode.label}"):
                    self._rate(handle, mode)
            with self._checking("software triggers"):
                self._triggers(handle)
        with bench.device() as cam:
            with self._checking("settings"):
                self._prepare(cam)
            for mode in self.modes:
                with self._checking(f"stream {self.options.stream_frames} {mode.label}"):
                    self._stream(cam, mode)
            scans = None
            with self._checking("catalog"):
                scans = self._catalog()
            if scans is not None:
                with self._checking("step scan"):
                    self._step_scan(cam, *scans)
                with self._checking("fly scan"):
                    self._fly_scan(cam, *scans)
            with self._checking("temperature"):
                self._temperature(cam)
        if self.update is not None:
            self.update(self.as_dict())
        return self

    # ---- 1. identity -----------------------------------------------------------------------

    def _identity(self, cam) -> None:
        import pyvcam

        caps = self.caps
        self.camera = {
            "name": caps.name,
            "model": caps.model,
            "serial_number": caps.serial_number,
            "firmware_version": caps.firmware_version,
            "chip": caps.chip_name,
            "sensor": [caps.sensor_width, caps.sensor_height],
            "pixel_size_um": caps.pixel_size_um,
            "simulated": bool(caps.simulated),
            "pvcam_version": self.bench.pvcam_version,
            "pyvcam_version": getattr(pyvcam, "__version__", "?"),
            "modes": [asdict(m) for m in self.modes],
            "trigger_modes": list(caps.trigger_modes),
        }
        ok = bool(caps.model) and bool(caps.serial_number) and caps.sensor_width > 0
        self._add(
            Check(
                "identity",
                "pass" if ok else "fail",
                f"{caps.model}{' (SIMULATED)' if caps.simulated else ''}, serial "
                f"{caps.serial_number}, firmware {caps.firmware_version}, {caps.sensor_width}x"
                f"{caps.sensor_height} px of {caps.pixel_size_um:g} um, PVCAM "
                f"{self.bench.pvcam_version}, {len(self.modes)} readout modes",
                "a model, a serial number and a sensor",
                "" if ok else "the camera did not say what it is",
            )
        )

    # ---- 2. full-frame rates (SDK) ---------------------------------------------------------

    def _select(self, handle: int, mode: Mode) -> None:
        sdk = self.bench.sdk
        sdk.write(handle, PARAM_READOUT_PORT, mode.port_value)
        sdk.write(handle, PARAM_SPDTAB_INDEX, mode.speed)
        sdk.write(handle, PARAM_GAIN_INDEX, mode.gain)

    def _rate(self, handle: int, mode: Mode) -> None:
        sdk, o = self.bench.sdk, self.options
        started = time.monotonic()
        self._select(handle, mode)
        width, height = self.bench.sensor
        exposure_us = 1000  # shorter than any full-frame readout: the readout sets the rate
        frame_bytes = sdk.setup_cont(
            handle, Region.of(0, 0, width, height), exposure_us, CIRC_OVERWRITE
        )
        readout_us = float(sdk.read(handle, PARAM_READOUT_TIME))
        bit_depth = int(sdk.read(handle, PARAM_BIT_DEPTH))
        period = max(exposure_us, readout_us) * 1e-6
        expected = 1 / period
        wanted = int(min(400, max(20, round(expected * o.rate_seconds)))) + 1
        records, stalled, status = self._stream_sdk(handle, frame_bytes, 8, wanted, period)
        label = f"full-frame rate {mode.label}"
        expected_text = f"{expected:.1f} fps (readout {readout_us / 1e3:.2f} ms)"
        values = {
            "expected_fps": expected,
            "readout_ms": readout_us / 1e3,
            "frames": len(records),
            "bit_depth": bit_depth,
            "mode": mode.label,
        }
        seconds = round(time.monotonic() - started, 2)
        if len(records) < 3:
            self._add(
                Check(
                    label,
                    "fail",
                    f"{len(records)} frames",
                    expected_text,
                    f"frames stopped after {len(records)} (camera status {status})",
                    values,
                    seconds,
                )
            )
            return
        camera_fps, host_fps = _rates(records[1:])  # the first frame includes the start
        values.update(camera_fps=camera_fps, host_fps=host_fps)
        close = abs(camera_fps / expected - 1) <= o.rate_tolerance
        problems = []
        if stalled:
            problems.append(f"frames stopped after {len(records)} of {wanted} (status {status})")
        if not close:
            problems.append(
                f"{camera_fps:.1f} fps is {100 * (camera_fps / expected - 1):+.1f} % from the "
                f"{expected:.1f} fps its readout time allows"
            )
        if bit_depth != mode.bit_depth:
            problems.append(f"bit depth {bit_depth}, the camera's table says {mode.bit_depth}")
        self._add(
            Check(
                label,
                "fail" if problems else "pass",
                f"{camera_fps:.1f} fps (camera clock), {bit_depth}-bit",
                expected_text,
                "; ".join(problems),
                values,
                seconds,
            )
        )

    def _stream_sdk(self, handle, frame_bytes, buffer_frames, wanted, period, exp_mode=None):
        """Stream until ``wanted`` frames or a stall: (records, stalled, status)."""
        sdk = self.bench.sdk
        frames = FrameLog()
        buffer = np.empty(frame_bytes * buffer_frames // 2, dtype=np.uint16)
        sdk.on_frame(handle, PL_CALLBACK_EOF, frames)
        stalled = False
        try:
            sdk.start_cont(handle, buffer)
            timeout = max(1.0, 5 * period)
            while frames.count < wanted:
                if not frames.wait_beyond(frames.count, timeout):
                    stalled = True
                    break
            status = sdk.status(handle)[0]
        finally:
            quietly(sdk.abort, handle)
            quietly(sdk.clear_callback, handle, PL_CALLBACK_EOF)
        return sorted(frames.records, key=lambda r: r.number), stalled, status

    # ---- 3. software triggers (SDK) -------------------------------------------------------

    def _triggers(self, handle: int) -> None:
        sdk, o, caps = self.bench.sdk, self.options, self.caps
        name = "software triggers"
        started = time.monotonic()
        if SOFTWARE_EDGE not in caps.trigger_modes:
            self._add(
                Check(
                    name,
                    "warn",
                    "no software trigger mode",
                    SOFTWARE_EDGE,
                    "the camera lists no 'Software Trigger Edge': step scans take one "
                    "sequence per point instead",
                )
            )
            return
        self._select(handle, self.modes[0])
        expose_out = next(iter(caps.expose_out_modes.values()), 0)
        exp_mode = caps.trigger_modes[SOFTWARE_EDGE] | expose_out
        size = min(256, *self.bench.sensor)
        width, height = self.bench.sensor
        region = Region.of((width - size) // 2, (height - size) // 2, size, size)
        exposure_us = max(1, round(o.trigger_exposure * 1e6))
        frame_bytes = sdk.setup_cont(handle, region, exposure_us, CIRC_OVERWRITE, exp_mode)
        readout_s = float(sdk.read(handle, PARAM_READOUT_TIME)) * 1e-6
        minimum = exposure_us * 1e-6 + readout_s  # trigger -> end of frame, at least
        gap = max(0.02, 2 * minimum)
        frames = FrameLog()
        buffer = np.empty(frame_bytes * 16 // 2, dtype=np.uint16)
        sdk.on_frame(handle, PL_CALLBACK_EOF, frames)
        latencies, untriggered, ignored, missing = [], 0, 0, 0
        try:
            sdk.start_cont(handle, buffer)
            for _ in range(o.triggers):
                before = frames.count
                if frames.wait_beyond(before, gap):  # nothing may come untriggered
                    untriggered += frames.count - before
                    before = frames.count
                sent = time.monotonic()
                if not sdk.trigger(handle):
                    ignored += 1
                    continue
                if not frames.wait_beyond(before, max(1.0, 10 * minimum)):
                    missing += 1
                    continue
                latencies.append(frames.records[before].arrived - sent)
        finally:
            quietly(sdk.abort, handle)
            quietly(sdk.clear_callback, handle, PL_CALLBACK_EOF)
        slack = 0.5e-3  # timestamp and scheduling granularity
        early = [t for t in latencies if t < minimum - slack]
        values = {
            "latencies_ms": [round(t * 1e3, 3) for t in latencies],
            "minimum_ms": round(minimum * 1e3, 3),
            "exposure_ms": exposure_us / 1e3,
            "readout_ms": round(readout_s * 1e3, 3),
        }
        problems = []
        if missing or ignored:
            problems.append(f"{missing} triggers got no frame, {ignored} were ignored")
        if untriggered:
            problems.append(f"{untriggered} frames came without a trigger")
        if early:
            problems.append(
                f"{len(early)} frames ended {min(early) * 1e3:.2f} ms after their trigger, "
                f"sooner than exposure + readout ({minimum * 1e3:.2f} ms): their exposure began "
                "before the trigger"
            )
        spread = (
            f"{min(latencies) * 1e3:.1f}-{max(latencies) * 1e3:.1f} ms" if latencies else "none"
        )
        self._add(
            Check(
                name,
                "fail" if problems else "pass",
                f"{len(latencies)} of {o.triggers} triggers answered, trigger to end of frame "
                f"{spread}",
                f"one frame per trigger, none untriggered, each >= {minimum * 1e3:.1f} ms "
                f"(exposure {exposure_us / 1e3:g} ms + readout {readout_s * 1e3:.2f} ms)",
                "; ".join(problems),
                values,
                round(time.monotonic() - started, 2),
            )
        )

    # ---- 4. streams through ophyd-pvcam ----------------------------------------------------

    def _prepare(self, cam) -> None:
        """The beamline's own temperature setpoint, if the camera had one."""
        from ophyd_pvcam.hardware.sdk import PARAM_TEMP_SETPOINT

        saved = self.bench.saved.get(PARAM_TEMP_SETPOINT)
        low, high = self.caps.temperature_setpoint_range
        if saved is not None and low <= saved / 100 <= high:
            cam.temperature_setpoint.set(saved / 100).wait(10)
        cam.trigger_mode.set("Internal Trigger").wait(10)

    def _apply(self, cam, mode: Mode, size: int, exposure: float) -> None:
        width, height = self.bench.sensor
        size = min(size, width, height)
        _wait_idle(cam)
        cam.roi.set(((width - size) // 2, (height - size) // 2, size, size)).wait(10)
        cam.readout_port.set(mode.port).wait(10)
        cam.speed_index.set(mode.speed).wait(10)
        cam.gain_index.set(mode.gain).wait(10)
        cam.exposure_time.set(exposure).wait(10)

    def _stream(self, cam, mode: Mode) -> None:
        from ophyd_pvcam.errors import CameraAcquisitionError, FrameStallError

        o = self.options
        started = time.monotonic()
        self._apply(cam, mode, o.stream_size, o.stream_exposure)
        cam.num_frames.set(o.stream_frames).wait(10)
        failure = None
        try:
            cam.kickoff().wait(30)
            cam.complete().wait(60 + o.stream_frames * max(o.stream_exposure, 0.001) * 3)
        except (FrameStallError, CameraAcquisitionError) as error:
            failure = str(error).splitlines()[0]
        finally:
            list(cam.collect_asset_docs())
            pages = list(cam.collect_pages())
            _wait_idle(cam)
        numbers = [int(n) for page in pages for n in page["data"]["cam_frame_number"]]
        times = [float(t) for page in pages for t in page["data"]["cam_frame_time"]]
        lost = int(cam.dropped_frames.get())
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        contiguous = numbers == list(range(1, o.stream_frames + 1))
        problems = [failure] if failure else []
        if lost:
            problems.append(f"{lost} frames lost")
        if not contiguous and not failure:
            gaps = [b for a, b in zip([0, *numbers], numbers, strict=False) if b != a + 1]
            problems.append(f"frame numbers not 1..{o.stream_frames}: jumps at {gaps[:8]}")
        size = min(o.stream_size, *self.bench.sensor)
        self._add(
            Check(
                f"stream {o.stream_frames} {mode.label}",
                "fail" if problems else "pass",
                f"{len(numbers)} frames, {lost} lost, numbers "
                f"{'1..' + str(numbers[-1]) if numbers else 'none'}"
                f"{' contiguous' if contiguous else ''}, {fps:.0f} fps",
                f"{o.stream_frames} frames, 0 lost, contiguous (ROI {size}x{size}, exposure "
                f"{o.stream_exposure * 1e3:g} ms)",
                "; ".join(problems),
                {"frames": len(numbers), "lost": lost, "fps": fps, "mode": mode.label},
                round(time.monotonic() - started, 2),
            )
        )

    # ---- 5-6. scans through the RunEngine, replayed from the catalog -------------------------

    def _catalog(self) -> tuple[Any, Callable[[str], Any]]:
        from ophyd_pvcam.catalog import open_catalog
        from ophyd_pvcam.device import make_run_engine

        location = self.options.catalog or self.bench.temporary / "catalog"
        readable = [self.bench.write_path]
        catalog = open_catalog(location, readable=readable)
        engine, _ = make_run_engine(catalog, progress_bar=False)

        def replay(uid: str):
            """The run as a later process sees it: the catalog opened afresh."""
            return open_catalog(location, readable=readable)[uid]

        return engine, replay

    def _step_scan(self, cam, engine, replay) -> None:
        import bluesky.plans as bp
        from ophyd.sim import SynAxis

        o = self.options
        started = time.monotonic()
        self._apply(cam, self.modes[0], o.scan_size, 0.01)
        cam.frames_per_point.set(o.frames_per_point).wait(10)
        motor = SynAxis(name="check_motor")
        uid, failure = _run_plan(engine, bp.scan([cam], motor, 0, 1, o.scan_points))
        run = replay(uid)
        fpp = o.frames_per_point
        size = min(o.scan_size, *self.bench.sensor)
        try:
            stream = run["primary"]
            images = stream["cam_image"].read()
            numbers = [int(n) for n in stream["cam_frame_number"].read()]
            dropped = int(stream["cam_dropped_frames"].read()[-1])
        except (KeyError, IndexError):  # not one point was taken
            images, numbers, dropped = np.zeros((0, fpp, size, size), np.uint16), [], 0
        exit_status = run.metadata["stop"]["exit_status"]
        expected_numbers = [fpp * (p + 1) for p in range(o.scan_points)]
        shape = (o.scan_points, fpp, size, size)
        problems = [failure] if failure else []
        if exit_status != "success" and not failure:
            problems.append(f"exit status {exit_status}: {_first_line(run.metadata['stop'])}")
        if tuple(images.shape) != shape:
            problems.append(f"images {tuple(images.shape)}, expected {shape}")
        if numbers != expected_numbers:
            problems.append(f"last frame of each point {numbers}, expected {expected_numbers}")
        if dropped:
            problems.append(f"{dropped} frames lost")
        stamped = self._stamped(images.reshape(-1, size, size)) if not problems else None
        if stamped is not None and stamped != list(range(1, o.scan_points * fpp + 1)):
            problems.append(f"pixels carry frame numbers {stamped}")
        self._add(
            Check(
                "step scan",
                "fail" if problems else "pass",
                f"scan of {o.scan_points} points x {fpp} frames, replayed: images "
                f"{tuple(images.shape)}, last frame of each point "
                f"{', '.join(map(str, numbers)) or 'none'}, {dropped} lost, exit {exit_status}",
                f"images {shape}, a fresh exposure per trigger, 0 lost, exit success",
                "; ".join(problems),
                {"uid": uid, "shape": list(images.shape), "frame_numbers": numbers},
                round(time.monotonic() - started, 2),
            )
        )

    def _fly_scan(self, cam, engine, replay) -> None:
        import bluesky.plans as bp

        o = self.options
        started = time.monotonic()
        self._apply(cam, self.modes[0], o.scan_size, 0.002)
        cam.num_frames.set(o.fly_frames).wait(10)
        uid, failure = _run_plan(engine, bp.fly([cam]))
        run = replay(uid)
        size = min(o.scan_size, *self.bench.sensor)
        try:
            stream = run["cam"]
            images = stream["cam_image"].read()
            numbers = [int(n) for n in stream["cam_frame_number"].read()]
            lost = int(np.sum(stream["cam_lost_before"].read()))
            if "cam_lost_after" in stream:  # a stream of events (not declared) has it
                lost += int(np.sum(stream["cam_lost_after"].read()))
        except KeyError:  # not one frame was collected
            images, numbers, lost = np.zeros((0, 1, size, size), np.uint16), [], 0
        exit_status = run.metadata["stop"]["exit_status"]
        shape = (o.fly_frames, 1, size, size)
        problems = [failure] if failure else []
        if exit_status != "success" and not failure:
            problems.append(f"exit status {exit_status}: {_first_line(run.metadata['stop'])}")
        if tuple(images.shape) != shape:
            problems.append(f"images {tuple(images.shape)}, expected {shape}")
        if numbers != list(range(1, o.fly_frames + 1)):
            problems.append(f"frame numbers are not 1..{o.fly_frames}")
        if lost:
            problems.append(f"{lost} frames lost")
        stamped = self._stamped(images.reshape(-1, size, size)) if not problems else None
        if stamped is not None and stamped != numbers:
            problems.append("the pixels carry other frame numbers than the events")
        self._add(
            Check(
                "fly scan",
                "fail" if problems else "pass",
                f"fly scan of {o.fly_frames} frames, replayed: images {tuple(images.shape)}, "
                f"frame numbers {numbers[0] if numbers else '?'}..{numbers[-1] if numbers else '?'}"
                f", {lost} lost, exit {exit_status}",
                f"images {shape}, frame numbers 1..{o.fly_frames}, 0 lost, exit success",
                "; ".join(problems),
                {"uid": uid, "shape": list(images.shape)},
                round(time.monotonic() - started, 2),
            )
        )

    def _stamped(self, frames: np.ndarray) -> list[int] | None:
        """The frame numbers the simulator stamps into pixels (None on a real camera)."""
        if not self.caps.simulated:
            return None
        return [int(sim.frame_number(frame)) for frame in frames]

    # ---- 7. temperature ---------------------------------------------------------------------

    def _temperature(self, cam) -> None:
        o = self.options
        started = time.monotonic()
        _wait_idle(cam)
        setpoint = float(cam.temperature_setpoint.get())
        trace = [(0.0, float(cam.temperature.get()))]
        pause = threading.Event()  # never set: paces the readings
        while (
            not math.isnan(trace[-1][1])
            and abs(trace[-1][1] - setpoint) > o.temperature_tolerance
            and time.monotonic() - started < o.temperature_wait
        ):
            pause.wait(min(2.0, max(0.0, o.temperature_wait - (time.monotonic() - started))))
            trace.append((round(time.monotonic() - started, 1), float(cam.temperature.get())))
        elapsed, temperature = trace[-1]
        values = {"setpoint": setpoint, "tolerance": o.temperature_tolerance, "trace": trace}
        expected = f"{setpoint:g} +/- {o.temperature_tolerance:g} degC"
        seconds = round(time.monotonic() - started, 2)
        if math.isnan(temperature):
            self._add(
                Check(
                    "temperature",
                    "fail",
                    "no reading",
                    expected,
                    "the camera reports no temperature",
                    values,
                    seconds,
                )
            )
            return
        if abs(temperature - setpoint) <= o.temperature_tolerance:
            waited = f", after waiting {elapsed:.0f} s" if elapsed else ""
            measured = f"{temperature:.2f} degC (setpoint {setpoint:g} degC{waited})"
            self._add(Check("temperature", "pass", measured, expected, "", values, seconds))
            return
        if elapsed == 0:
            detail = (
                f"{temperature:.2f} degC, setpoint {setpoint:g} degC: not waited for "
                "(--temperature-wait 0); reported, not failed"
            )
            self._add(
                Check(
                    "temperature",
                    "warn",
                    f"{temperature:.2f} degC",
                    expected,
                    detail,
                    values,
                    seconds,
                )
            )
            return
        rate = (trace[-1][1] - trace[0][1]) / elapsed * 60
        approaching = (trace[0][1] - setpoint) * (trace[-1][1] - setpoint) >= 0 and abs(
            trace[-1][1] - setpoint
        ) < abs(trace[0][1] - setpoint)
        detail = (
            f"not at the setpoint after {elapsed:.0f} s: {temperature:.2f} degC "
            f"(setpoint {setpoint:g} degC), changing {rate:+.1f} degC/min"
        )
        if approaching:
            detail += "; still approaching: reported, not failed (--temperature-wait waits longer)"
            status = "warn"
        else:
            detail += ": not approaching its setpoint (check the fan, coolant and power)"
            status = "fail"
        self._add(
            Check(
                "temperature", status, f"{temperature:.2f} degC", expected, detail, values, seconds
            )
        )

    # ---- text ----------------------------------------------------------------------------------

    def summary(self) -> str:
        """The conclusion, in one line (the rows were printed as they came)."""
        failed = [c for c in self.checks if not c.passed]
        if failed:
            return f"FAILED: {len(failed)} of {len(self.checks)} checks; first: {failed[0].line()}"
        notes = sum(c.status == "warn" for c in self.checks)
        return f"PASSED: all {len(self.checks)} checks" + (
            f" ({notes} NOTE: reported, not failed)" if notes else ""
        )


def _run_plan(engine, plan) -> tuple[str, str | None]:
    """Run a plan that opens one run: (its uid, the first line of its error or None).
    A failed plan still leaves its run in the catalog, to replay."""
    uids: list[str] = []
    token = engine.subscribe(lambda name, doc: uids.append(doc["uid"]), "start")
    try:
        engine(plan, purpose="ophyd-pvcam check")
        failure = None
    except RunEngineInterrupted:
        raise
    except Exception as error:  # the plan failed: what it says, and replay the rest
        failure = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    finally:
        engine.unsubscribe(token)
    if not uids:
        raise RuntimeError(failure or "the plan opened no run")
    return uids[0], failure


def _first_line(stop: dict) -> str:
    return ((stop.get("reason") or "").splitlines() or [""])[0]


def _rates(records) -> tuple[float, float]:
    """(camera-clock fps, arrival fps) over frame records in order of frame number."""
    first, last = records[0], records[-1]
    arrival = (len(records) - 1) / max(1e-9, last.arrived - first.arrived)
    if last.eof > first.eof:
        return (last.number - first.number) / (last.eof - first.eof), arrival
    return arrival, arrival  # the camera gives no timestamps: the host's clock will do


def _wait_idle(cam, timeout: float = IDLE_TIMEOUT_S) -> None:
    """Until the device has stopped acquiring (a failed status can come first)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while cam.acquiring and time.monotonic() < deadline:
        pause.wait(0.01)
    if cam.acquiring:
        cam.stop()
        raise TimeoutError(f"{cam.name} was still acquiring {timeout:g} s after a scan")


def plot(report: dict[str, Any], path: Path) -> Path:
    """The one-page picture of a check (``check_figure``)."""
    from ._figures import check_figure

    return check_figure(report, Path(path))
