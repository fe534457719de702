"""The Prime BSI as an ophyd device: a triggerable detector and a flyer.

Step scans (``count``, ``scan``): ``stage`` applies the settings, opens an
HDF5 file and starts the camera waiting for software triggers; each
``trigger`` asks for ``frames_per_point`` new frames, every one exposed after
the call, and completes once they are on disk; ``read`` gives the datum and
cheap statistics.  Fly scans: ``kickoff`` starts the camera free-running for
``num_frames`` frames (0: until ``complete``), ``complete`` finishes once all
are on disk, ``collect`` gives one event per frame.

A stall monitor watches every acquisition: when frames stop it sets
``stalled``, stops the camera, closes the file and fails the pending status
with :class:`~ophyd_pvcam.stall.FrameStallError`, a diagnosis.
"""

from __future__ import annotations

import array
import atexit
import dataclasses
import logging
import math
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device

from .acquisition import Acquisition, Batch, Frame, Mode
from .camera import close_camera, open_camera
from .diagnosis import StallSnapshot, describe_stall
from .paths import default_write_path
from .settings import Settings, SettingsChecker
from .signals import (
    CameraStatus,
    ImageSignal,
    LiveSignal,
    ProgressStatus,
    ReadOnlySignal,
    SettingSignal,
)
from .stall import FrameStallError, StallMonitor, announce_stall
from .writer import FrameWriter

log = logging.getLogger(__name__)

SOFTWARE_EDGE = "Software Trigger Edge"
SOFTWARE_FIRST = "Software Trigger First"
HARDWARE_TRIGGER_MODES = {"Edge Trigger", "Trigger First"}
STOP_TIMEOUT_S = 10.0
_SETTINGS_FIELDS = tuple(field.name for field in dataclasses.fields(Settings))
_FREE_WHILE_ACQUIRING = {"stall_timeout", "temperature_setpoint", "fan_speed", "num_frames"}
_open_devices: weakref.WeakSet = weakref.WeakSet()


def _read_temperature(device: PrimeBSI) -> float:
    try:
        return float(device._camera.temp) if device._camera is not None else math.nan
    except RuntimeError:  # a disconnected camera: nothing to read
        return math.nan


class _Fly:
    """What one fly scan has produced so far (compact: memory stays flat)."""

    def __init__(self, writer: FrameWriter):
        self.writer = writer
        self.numbers = array.array("q")
        self.times = array.array("d")
        self.lost_before = array.array("q")
        self.pending_lost = 0
        self.datums_emitted = 0
        self.events_emitted = 0
        self.complete_requested = False
        self.complete_status: ProgressStatus | None = None


class PrimeBSI(Device):
    """A Teledyne Photometrics Prime BSI camera (or its simulation) for Bluesky.

    ``sim=True`` uses the simulated camera, ``sim=False`` the vendor PVCAM,
    ``None`` the simulator only if ``OPHYD_PVCAM_SIM=1``.  ``camera_name``
    picks one of several cameras (default: the first).  Frames are written
    under ``write_path`` (default: a per-user data folder).
    """

    # settings, in engineering units
    exposure_time = Cpt(SettingSignal, value=0.01, kind="config", doc="seconds")
    roi = Cpt(SettingSignal, value=(0, 0, 1, 1), kind="config",
              doc="x, y, width, height in unbinned pixels")  # fmt: skip
    binning = Cpt(SettingSignal, value=1, kind="config")
    readout_port = Cpt(SettingSignal, value="", kind="config")
    speed_index = Cpt(SettingSignal, value=0, kind="config")
    gain_index = Cpt(SettingSignal, value=1, kind="config")
    clear_mode = Cpt(SettingSignal, value="", kind="config")
    trigger_mode = Cpt(SettingSignal, value="", kind="config")
    expose_out_mode = Cpt(SettingSignal, value="", kind="config")
    frames_per_point = Cpt(SettingSignal, value=1, kind="config")
    num_frames = Cpt(
        SettingSignal, value=100, kind="config", doc="fly scan frames; 0: until complete"
    )
    buffer_frames = Cpt(SettingSignal, value=0, kind="config", doc="circular buffer; 0: automatic")
    stall_timeout = Cpt(SettingSignal, value=1.0, kind="config", doc="seconds; 0: automatic")
    temperature_setpoint = Cpt(SettingSignal, value=-20.0, kind="config", doc="degC")
    fan_speed = Cpt(SettingSignal, value="", kind="config")
    # what the camera reports
    temperature = Cpt(LiveSignal, reader=_read_temperature, kind="config", doc="degC")
    speed_name = Cpt(ReadOnlySignal, value="", kind="config")
    gain_name = Cpt(ReadOnlySignal, value="", kind="config")
    bit_depth = Cpt(ReadOnlySignal, value=16, kind="config")
    readout_time = Cpt(ReadOnlySignal, value=0.0, kind="config", doc="seconds")
    frame_period = Cpt(ReadOnlySignal, value=0.0, kind="config", doc="seconds")
    port_speed_gain_table = Cpt(ReadOnlySignal, value="", kind="omitted")
    model = Cpt(ReadOnlySignal, value="", kind="config")
    serial_number = Cpt(ReadOnlySignal, value="", kind="config")
    firmware_version = Cpt(ReadOnlySignal, value="", kind="config")
    camera_name = Cpt(ReadOnlySignal, value="", kind="config")
    simulated = Cpt(ReadOnlySignal, value=False, kind="config")
    # per point
    image = Cpt(ImageSignal, value="", kind="normal")
    mean = Cpt(ReadOnlySignal, value=0.0, kind="hinted")
    max = Cpt(ReadOnlySignal, value=0, kind="normal")
    frame_number = Cpt(ReadOnlySignal, value=0, kind="normal", doc="of the point's last frame")
    # status
    frames_acquired = Cpt(ReadOnlySignal, value=0, kind="normal")
    dropped_frames = Cpt(ReadOnlySignal, value=0, kind="normal")
    stalled = Cpt(ReadOnlySignal, value=False, kind="normal")

    def __init__(
        self,
        name: str,
        *,
        sim: bool | None = None,
        camera_name: str | None = None,
        write_path: str | Path | None = None,
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.write_path = Path(write_path or default_write_path()).expanduser().resolve()
        self._lock = threading.RLock()
        self._camera, self.capabilities = open_camera(
            f"PrimeBSI {name!r}", camera_name=camera_name, use_simulator=sim
        )
        self._checker = SettingsChecker(self.capabilities)
        self._stall_timeout_auto = True
        self._applied: dict[str, Any] = {}
        self._staged_writer: FrameWriter | None = None
        self._step: Acquisition | None = None
        self._point: ProgressStatus | None = None
        self._point_stats = [0.0, 0, 0]  # sum of means, max, frames
        self._fly: _Fly | None = None
        self._fly_acquisition: Acquisition | None = None
        self._step_settings: tuple[Settings, str] | None = None
        self._monitor: StallMonitor | None = None
        self.stall_error: FrameStallError | None = None
        self._initial_settings()
        _open_devices.add(self)

    # ---- settings ---------------------------------------------------------------

    def _initial_settings(self) -> None:
        caps, cam = self.capabilities, self._camera
        port = caps.ports[0]
        values = {
            "roi": (0, 0, caps.sensor_width, caps.sensor_height),
            "readout_port": port.name,
            "speed_index": port.speeds[0].index,
            "gain_index": port.speeds[0].gains[0].index,
            "clear_mode": next(
                (n for n, v in caps.clear_modes.items() if v == cam.clear_mode),
                next(iter(caps.clear_modes), ""),
            ),
            "trigger_mode": "Internal Trigger"
            if "Internal Trigger" in caps.trigger_modes
            else next(iter(caps.trigger_modes)),
            "expose_out_mode": next(iter(caps.expose_out_modes), ""),
            "temperature_setpoint": cam.temp_setpoint,
            "fan_speed": next((n for n, v in caps.fan_speeds.items() if v == cam.fan_speed), ""),
        }
        for attr, value in values.items():
            getattr(self, attr).put(value, force=True)
        for attr, value in (
            ("model", caps.model),
            ("serial_number", caps.serial_number),
            ("firmware_version", caps.firmware_version),
            ("camera_name", caps.name),
            ("simulated", caps.simulated),
            ("port_speed_gain_table", repr(caps.table())),
            ("readout_time", float(cam.readout_time) * 1e-6),
        ):
            getattr(self, attr).update(value)
        self._update_derived()

    def settings(self) -> Settings:
        """The current settings, as one object."""
        return Settings(**{attr: getattr(self, attr).get() for attr in _SETTINGS_FIELDS})

    def _check_setting(self, attr: str, value: Any) -> Any:
        """Called by every SettingSignal on set/put: validate (and normalise) the value."""
        if self.acquiring and attr not in _FREE_WHILE_ACQUIRING:
            raise RuntimeError(
                f"{self.name}.{attr} cannot change while the camera is acquiring; "
                "wait for the acquisition to finish or stop it"
            )
        c, s = self._checker, self.settings()
        if attr == "roi":
            value = c.roi(value, s.binning)
        elif attr == "binning":
            value = c.binning(value, s.roi)
        elif attr == "speed_index":
            value = c.speed_index(value, s.readout_port)
        elif attr == "gain_index":
            value = c.gain_index(value, s.readout_port, s.speed_index)
        elif attr == "readout_port":
            value = c.readout_port(value)
            self._fit_speed_and_gain(value, s)
        elif attr == "buffer_frames":
            rows, columns = s.image_shape
            value = c.buffer_frames(value, rows * columns * 2)
        elif attr == "stall_timeout":
            value = c.stall_timeout(value)
            self._stall_timeout_auto = value == 0
            if self._stall_timeout_auto:
                value = self._auto_stall_timeout()
            elif self._monitor is not None:
                self._monitor.set_timeout(value)
        elif attr in ("temperature_setpoint", "fan_speed"):
            value = getattr(c, attr)(value)
            self._apply_environment(attr, value)
        else:
            value = getattr(c, attr)(value)
        return value

    def _fit_speed_and_gain(self, port: str, s: Settings) -> None:
        """A new readout port keeps speed and gain if it offers them, else takes its first."""
        speeds = self.capabilities.port(port).speeds
        if s.speed_index >= len(speeds):
            self.speed_index.put(0, force=True)
        speed = speeds[min(s.speed_index, len(speeds) - 1)]
        if s.gain_index not in [g.index for g in speed.gains]:
            self.gain_index.put(speed.gains[0].index, force=True)

    def _setting_changed(self, attr: str) -> None:
        """Called by a SettingSignal once its new value is stored."""
        self._update_derived()

    def _update_derived(self) -> None:
        s = self.settings()
        try:
            speed = self.capabilities.port(s.readout_port).speeds[s.speed_index]
            gain = next(g for g in speed.gains if g.index == s.gain_index)
        except (KeyError, IndexError, StopIteration):
            return  # mid-change of port, speed and gain
        self.speed_name.update(speed.name)
        self.gain_name.update(gain.name)
        self.bit_depth.update(gain.bit_depth)
        self.frame_period.update(max(s.exposure_time, self.readout_time.get()))
        if self._stall_timeout_auto:
            self.stall_timeout.put(self._auto_stall_timeout(), force=True)

    def _auto_stall_timeout(self, period: float | None = None) -> float:
        """Several frame periods, never less than a second; longer for hardware triggers."""
        if period is None:
            period = max(self.exposure_time.get(), self.readout_time.get())
        timeout = max(1.0, 2.0 * period + 0.5)
        if self.trigger_mode.get() in HARDWARE_TRIGGER_MODES:
            timeout = max(timeout, 10.0)
        return round(timeout, 3)

    def _apply_environment(self, attr: str, value: Any) -> None:
        """Temperature setpoint and fan speed take effect at once when idle."""
        if self.acquiring or self._camera is None:
            return
        if attr == "temperature_setpoint":
            self._camera.temp_setpoint = value
        else:
            self._camera.fan_speed = self.capabilities.fan_speeds[value]

    # ---- state ------------------------------------------------------------------------

    @property
    def acquiring(self) -> bool:
        """True while an acquisition runs (a fly scan, or a trigger being served)."""
        fly = self._fly_acquisition
        return (fly is not None and not fly.done.is_set()) or (
            self._point is not None and not self._point.done
        )

    def _ensure_open(self) -> None:
        if self._camera is None or not self._camera.is_open:
            log.info("%s: reopening camera %s", self.name, self.capabilities.name)
            self._camera, _ = open_camera(
                f"PrimeBSI {self.name!r}",
                camera_name=self.capabilities.name,
                use_simulator=self.capabilities.simulated,
            )
            self._applied.clear()

    def _reopen_if_lost(self, acquisition: Acquisition) -> None:
        if acquisition.camera_lost and self._camera is not None:
            log.warning("%s: closing the lost camera; it is reopened on next use", self.name)
            close_camera(self._camera)
            self._camera = None

    def close(self) -> None:
        """Stop any acquisition and release the camera (another device may then open it)."""
        self.stop()
        with self._lock:
            if self._camera is not None:
                close_camera(self._camera)
                self._camera = None
        _open_devices.discard(self)

    def destroy(self) -> None:
        self.close()
        super().destroy()

    # ---- applying settings to the camera ---------------------------------------------

    def _prepare(self, trigger_mode: str) -> Settings:
        """Check the settings as a whole and apply them; nothing starts before this."""
        s = self.settings()
        self._checker.check_all(s)
        self._ensure_open()
        cam, caps = self._camera, self.capabilities
        if caps.has_metadata:
            cam.metadata_enabled = True
        if "One Microsecond" not in caps.exposure_resolutions:
            raise ValueError(f"{caps.name} offers no microsecond exposure resolution")
        cam.exp_res = caps.exposure_resolutions["One Microsecond"]
        port = caps.port(s.readout_port)
        wanted = {
            "readout": (port.value, s.speed_index, s.gain_index),
            "clear_mode": caps.clear_modes[s.clear_mode],
            "roi": (s.roi, s.binning),
            "modes": (caps.trigger_modes[trigger_mode], caps.expose_out_modes[s.expose_out_mode]),
            "environment": (self.temperature_setpoint.get(), self.fan_speed.get()),
        }
        if self._applied.get("readout") != wanted["readout"]:
            cam.readout_port = port.value
            cam.speed = s.speed_index
            cam.gain = s.gain_index
        if self._applied.get("clear_mode") != wanted["clear_mode"]:
            cam.clear_mode = wanted["clear_mode"]
        if self._applied.get("roi") != wanted["roi"]:
            x, y, width, height = s.roi
            cam.binning = (s.binning, s.binning)
            cam.set_roi(x, y, width, height)
        if self._applied.get("modes") != wanted["modes"]:
            cam.exp_mode, cam.exp_out_mode = wanted["modes"]  # each sets up a tiny sequence
        if self._applied.get("environment") != wanted["environment"]:
            cam.temp_setpoint = wanted["environment"][0]
            cam.fan_speed = caps.fan_speeds[wanted["environment"][1]]
        self._applied = wanted
        return s

    def _buffer_frames(self, s: Settings, period: float) -> int:
        if s.buffer_frames:
            return s.buffer_frames
        rows, columns = s.image_shape
        most = max(16, (256 << 20) // (rows * columns * 2))  # at most 256 MiB
        return int(min(most, max(16, math.ceil(0.25 / max(period, 1e-6)))))

    def _attributes(self, s: Settings, mode: str) -> dict[str, Any]:
        caps = self.capabilities
        return {
            "camera": caps.name,
            "model": caps.model,
            "serial_number": caps.serial_number,
            "simulated": caps.simulated,
            "mode": mode,
            **vars(s),
        }

    def _new_monitor(self, acquisition_name: str) -> StallMonitor:
        timeout = self.stall_timeout.get() or self._auto_stall_timeout()
        return StallMonitor(timeout, self._on_stall, name=acquisition_name)

    def _started(self, acquisition: Acquisition) -> None:
        """The camera runs: now its readout time, and so the frame period, are known."""
        if acquisition.readout_time_s is not None:
            self.readout_time.update(acquisition.readout_time_s)
        period = acquisition.expected_period_s
        self.frame_period.update(period)
        if self._stall_timeout_auto:
            timeout = self._auto_stall_timeout(period)
            self.stall_timeout.put(timeout, force=True)
            if self._monitor is not None:
                self._monitor.set_timeout(timeout)

    # ---- the detector face: stage / trigger / read / unstage ------------------------

    def stage(self) -> list[Any]:
        self._settle()
        with self._lock:
            if self._fly_acquisition is not None and not self._fly_acquisition.done.is_set():
                raise RuntimeError(f"{self.name} is flying; complete the fly scan before staging")
            caps = self.capabilities
            software = SOFTWARE_EDGE in caps.trigger_modes
            user_mode = self.trigger_mode.get()
            hardware = user_mode in HARDWARE_TRIGGER_MODES
            camera_mode = user_mode if hardware or not software else SOFTWARE_EDGE
            s = self._prepare(camera_mode)
            writer = FrameWriter(
                self.write_path, s.image_shape, s.frames_per_point,
                attributes=self._attributes(s, "step"), device=self.name, kind="step",
            )  # fmt: skip
            writer.open()
            self._staged_writer = writer
            self._step_settings = (s, camera_mode)
            self._reset_status()
            if software or hardware:
                self._step = self._new_step_acquisition(
                    s, Mode.SOFTWARE if not hardware else Mode.FREE
                )
                self._step.start()
        try:
            return super().stage()
        except BaseException:
            self.unstage()
            raise

    def _new_step_acquisition(self, s: Settings, mode: Mode, frames: int = 0) -> Acquisition:
        self._monitor = None
        return Acquisition(
            self._camera,
            name=self.name,
            mode=mode,
            exposure=s.exposure_us,
            frames=frames,
            buffer_frames=s.buffer_frames or 16,
            sink=self._write_point_frame,
            on_lost=self._point_frames_lost,
            on_frame=self._heartbeat,
            on_progress=self._point_progress,
            on_started=self._started,
            on_done=self._step_ended,
            metadata=self.capabilities.has_metadata,
            batched=mode is not Mode.SEQUENCE,
        )

    def _reset_status(self) -> None:
        self.stall_error = None
        self.stalled.update(False)
        self.frames_acquired.update(0)
        self.dropped_frames.update(0)

    def trigger(self) -> ProgressStatus:
        with self._lock:
            writer = self._staged_writer
            if writer is None:
                raise RuntimeError(f"{self.name} must be staged before it is triggered")
            s = self.settings()
            status = ProgressStatus(self, s.frames_per_point, f"{self.name} frames")
            if self.stall_error is not None or (
                self._step is not None and self._step.done.is_set()
            ):
                status.set_exception(
                    self.stall_error
                    or (self._step.error if self._step else None)
                    or RuntimeError(f"{self.name}: the camera stopped; unstage and stage again")
                )
                return status
            changed = self._step_settings_changed(s)
            if changed:
                status.set_exception(changed)
                return status
            self._point = status
            self._point_stats = [0.0, 0, 0]
            monitor = self._new_monitor(f"{self.name}-point")
            self._monitor = monitor
            monitor.start()
            if self._step is None:  # no software triggers: one sequence per point
                self._step = self._new_step_acquisition(s, Mode.SEQUENCE, s.frames_per_point)
                self._step.start()
            else:
                self._step.request(s.frames_per_point, self._point_done)
            return status

    def _step_settings_changed(self, s: Settings) -> RuntimeError | None:
        """Settings changed since stage: the frame layout cannot (the file is open);
        anything else restarts the camera with the new settings."""
        staged, camera_mode = self._step_settings
        if s == staged:
            return None
        if (s.image_shape, s.frames_per_point) != (staged.image_shape, staged.frames_per_point):
            return RuntimeError(
                f"{self.name}: roi, binning and frames_per_point cannot change while staged "
                "(the open file has a fixed frame layout); unstage, change, stage again"
            )
        step = self._step
        if step is not None:
            step.stop(drain=False)
            step.wait(STOP_TIMEOUT_S)
        self._step = None
        s = self._prepare(camera_mode)
        self._step_settings = (s, camera_mode)
        if step is not None:
            self._step = self._new_step_acquisition(s, step.mode)
            self._step.start()
        return None

    def _heartbeat(self) -> None:
        monitor = self._monitor
        if monitor is not None:
            monitor.feed()

    def _write_point_frame(self, frame: Frame) -> None:
        writer = self._staged_writer
        if writer is None:
            return
        writer.append(frame.pixels, frame.number, frame.bof, frame.eof)
        stats = self._point_stats
        pixels = frame.pixels
        stats[0] += int(pixels.sum(dtype=np.uint64)) / pixels.size  # exact, no float copy
        stats[1] = max(stats[1], int(pixels.max()))
        stats[2] += 1
        self.frame_number.update(frame.number)
        self.frames_acquired.update(self.frames_acquired.get() + 1)

    def _point_frames_lost(self, numbers: list[int]) -> None:
        writer = self._staged_writer
        if writer is not None:
            for number in numbers:
                writer.append_placeholder(number)
        self.dropped_frames.update(self.dropped_frames.get() + len(numbers))

    def _point_progress(self, acquisition: Acquisition) -> None:
        point = self._point
        if point is not None and not point.done:
            point.update(self._point_stats[2])

    def _point_done(self, batch: Batch) -> None:
        self._finish_point(batch.error)

    def _finish_point(self, error: BaseException | None) -> None:
        with self._lock:
            monitor, self._monitor = self._monitor, None
            point = self._point
        if monitor is not None:
            monitor.stop()
        if point is None or point.done:
            return
        writer = self._staged_writer
        if error is None and writer is not None:
            try:
                self.image.put(writer.add_point(), force=True)
                writer.flush()
                total, biggest, frames = self._point_stats
                self.mean.update(total / frames if frames else math.nan)
                self.max.update(biggest)
                point.update(self.settings().frames_per_point)
            except Exception as exc:
                error = exc
        if error is None:
            point.set_finished()
        else:
            point.set_exception(error)

    def _step_ended(self, acquisition: Acquisition) -> None:
        """The step-scan acquisition stopped (unstage, a stall, a failure, or a sequence end)."""
        self._reopen_if_lost(acquisition)
        if acquisition.mode is Mode.SEQUENCE and acquisition.error is None:
            with self._lock:
                self._step = None
            self._finish_point(None)
            return
        if acquisition.error is not None:
            self._finish_point(acquisition.error)
            writer = self._staged_writer
            if writer is not None:
                writer.close()  # everything up to the failure, readable

    def unstage(self) -> list[Any]:
        with self._lock:
            step, self._step = self._step, None
            writer, self._staged_writer = self._staged_writer, None
            monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.stop()
        if step is not None:
            step.stop(drain=False)
            if not step.wait(STOP_TIMEOUT_S):
                log.error(
                    "%s: the acquisition thread did not stop within %s s", self.name, STOP_TIMEOUT_S
                )
        point = self._point
        if point is not None and not point.done:
            point.set_exception(RuntimeError(f"{self.name} was unstaged mid-trigger"))
        if writer is not None:
            writer.close()
        return super().unstage()

    def _image_description(self) -> dict[str, Any]:
        s = self.settings()
        rows, columns = s.image_shape
        return {
            "dtype": "array",
            "dtype_numpy": np.dtype(np.uint16).str,
            "shape": [s.frames_per_point, rows, columns],
            "external": "FILESTORE:",
        }

    def collect_asset_docs(self):
        writer = self._staged_writer
        if writer is not None:
            yield from writer.collect_asset_docs()
        self._stop_if_abandoned()
        fly = self._fly
        if fly is not None:
            written = len(fly.numbers)
            while fly.datums_emitted < written:
                fly.writer.add_point()
                fly.datums_emitted += 1
            yield from fly.writer.collect_asset_docs()

    # ---- the flyer face: kickoff / complete / collect -----------------------------

    def _settle(self) -> None:
        """An acquisition that is already stopping (after a stall, say) finishes first."""
        for acquisition in (self._fly_acquisition, self._step):
            if acquisition is not None and acquisition.stopping:
                acquisition.wait(STOP_TIMEOUT_S)

    def kickoff(self) -> CameraStatus:
        self._settle()
        with self._lock:
            if self.acquiring or self._staged_writer is not None:
                raise RuntimeError(
                    f"{self.name} is busy (acquiring or staged for a step scan); "
                    "a fly scan needs it idle"
                )
            self._collect_leftovers()
            user_mode = self.trigger_mode.get()
            software = user_mode in (SOFTWARE_EDGE, SOFTWARE_FIRST)
            camera_mode = SOFTWARE_FIRST if software else user_mode
            s = self._prepare(camera_mode)
            period = max(s.exposure_time, self.readout_time.get())
            writer = FrameWriter(
                self.write_path, s.image_shape, 1, attributes=self._attributes(s, "fly"),
                device=self.name, kind="fly",
            )  # fmt: skip
            writer.open()
            self._reset_status()
            fly = _Fly(writer)
            self._fly = fly
            status = CameraStatus(self)
            acquisition = Acquisition(
                self._camera,
                name=self.name,
                mode=Mode.FREE,
                exposure=s.exposure_us,
                frames=s.num_frames,
                buffer_frames=self._buffer_frames(s, period),
                sink=lambda frame: self._write_fly_frame(fly, frame),
                on_lost=lambda numbers: self._fly_frames_lost(fly, numbers),
                on_frame=self._heartbeat,
                on_progress=lambda acq: self._fly_progress(fly, acq),
                on_started=lambda acq: self._fly_started(acq, status),
                on_done=lambda acq: self._fly_ended(fly, acq, status),
                metadata=self.capabilities.has_metadata,
                software_first=software,
            )
            self._fly_acquisition = acquisition
            self._monitor = self._new_monitor(f"{self.name}-fly")
            self._monitor.start()
            acquisition.start()
            log.info(
                "%s: fly scan of %s frames into %s",
                self.name,
                s.num_frames or "unbounded",
                writer.path,
            )
            return status

    def _fly_started(self, acquisition: Acquisition, kickoff: CameraStatus) -> None:
        self._started(acquisition)
        kickoff.set_finished()

    def _write_fly_frame(self, fly: _Fly, frame: Frame) -> None:
        fly.writer.append(frame.pixels, frame.number, frame.bof, frame.eof)
        fly.numbers.append(frame.number)
        fly.times.append(frame.time)
        fly.lost_before.append(fly.pending_lost)
        fly.pending_lost = 0

    def _fly_frames_lost(self, fly: _Fly, numbers: list[int]) -> None:
        fly.pending_lost += len(numbers)
        fly.writer.record_lost(numbers)
        self.dropped_frames.update(self.dropped_frames.get() + len(numbers))

    def _fly_progress(self, fly: _Fly, acquisition: Acquisition) -> None:
        self.frames_acquired.update(acquisition.received)
        status = fly.complete_status
        if status is not None and not status.done:
            status.update(acquisition.received + len(acquisition.lost))

    def _fly_ended(self, fly: _Fly, acquisition: Acquisition, kickoff: CameraStatus) -> None:
        with self._lock:
            monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.stop()
        self._reopen_if_lost(acquisition)
        fly.writer.close()
        self.frames_acquired.update(acquisition.received)
        error = self.stall_error or acquisition.error
        if not kickoff.done:
            kickoff.set_exception(error or RuntimeError(f"{self.name}: the camera did not start"))
        status = fly.complete_status
        if status is not None and not status.done:
            if error is None:
                status.set_finished()
            else:
                status.set_exception(error)

    def complete(self) -> ProgressStatus:
        with self._lock:
            fly, acquisition = self._fly, self._fly_acquisition
            if fly is None or acquisition is None:
                raise RuntimeError(f"{self.name}: complete() without a kickoff()")
            target = acquisition.frames or None
            status = ProgressStatus(self, target, f"{self.name} frames")
            fly.complete_status = status
            fly.complete_requested = True
            if not acquisition.frames:
                acquisition.stop(drain=True)  # unbounded: complete() means "stop now"
            if acquisition.done.is_set():
                error = self.stall_error or acquisition.error
                if error is None:
                    status.set_finished()
                else:
                    status.set_exception(error)
            return status

    def describe_collect(self) -> dict[str, dict]:
        s = self.settings()
        rows, columns = s.image_shape
        source = f"PVCAM:{self.capabilities.name}"
        return {
            self.name: {
                f"{self.name}_image": {
                    "source": source,
                    "dtype": "array",
                    "dtype_numpy": np.dtype(np.uint16).str,
                    "shape": [1, rows, columns],
                    "external": "FILESTORE:",
                },
                f"{self.name}_frame_number": {"source": source, "dtype": "integer", "shape": []},
                f"{self.name}_frame_time": {
                    "source": source,
                    "dtype": "number",
                    "shape": [],
                    "units": "s",
                    "doc": "end of the frame: the camera's clock mapped to wall time",
                },
                f"{self.name}_lost_before": {
                    "source": source,
                    "dtype": "integer",
                    "shape": [],
                    "doc": "frames lost just before this one",
                },
                f"{self.name}_lost_after": {
                    "source": source,
                    "dtype": "integer",
                    "shape": [],
                    "doc": "frames lost after this one: non-zero only on the last frame",
                },
            }
        }

    def collect(self):
        self._stop_if_abandoned()
        fly, acquisition = self._fly, self._fly_acquisition
        if fly is None:
            return
        name = self.name
        key = f"{name}_image"
        written = min(len(fly.numbers), fly.datums_emitted)
        finished = acquisition is None or acquisition.done.is_set()
        last = len(fly.numbers) - 1
        for row in range(fly.events_emitted, written):
            t = fly.times[row]  # the camera's clock, mapped to wall time
            data = {
                key: fly.writer.datum_id(row),
                f"{name}_frame_number": fly.numbers[row],
                f"{name}_frame_time": t,
                f"{name}_lost_before": fly.lost_before[row],
                # frames lost after the last one have no later frame to report them
                f"{name}_lost_after": fly.pending_lost if finished and row == last else 0,
            }
            yield {
                "time": t,
                "data": data,
                "timestamps": dict.fromkeys(data, t),
                "filled": {key: False},
            }
        fly.events_emitted = written
        if acquisition is None or acquisition.done.is_set():
            self._fly = None  # everything handed over

    def _stop_if_abandoned(self) -> None:
        """Collecting a fly scan that was never completed is the RunEngine cleaning up
        after a failed or aborted plan: stop the camera, then hand over what was written."""
        fly, acquisition = self._fly, self._fly_acquisition
        if fly is None or acquisition is None or fly.complete_requested:
            return
        if not acquisition.done.is_set():
            acquisition.stop(drain=False)
            acquisition.wait(STOP_TIMEOUT_S)

    def _collect_leftovers(self) -> None:
        """A fly scan whose run ended without collecting is dropped from memory (its file is
        complete on disk)."""
        acquisition = self._fly_acquisition
        if self._fly is not None and acquisition is not None and acquisition.done.is_set():
            self._fly = None

    # ---- stopping and stalls ----------------------------------------------------------

    def stop(self, *, success: bool = False) -> None:
        """Stop whatever the camera is doing (used by the RunEngine and by hand)."""
        with self._lock:
            fly = self._fly_acquisition
            step = self._step
        for acquisition in (fly, step):
            if acquisition is not None and not acquisition.done.is_set():
                acquisition.stop(drain=success)
                if threading.current_thread() is not acquisition.thread:
                    acquisition.wait(STOP_TIMEOUT_S)

    def pause(self) -> None:
        """A paused plan keeps the camera running: frames keep being written."""

    def resume(self) -> None:
        """Nothing to do: the camera kept running through the pause."""

    def _on_stall(self, silent_for: float) -> None:
        with self._lock:
            fly = self._fly_acquisition
            if fly is not None and fly.done.is_set():
                fly = None
            acquisition = fly or self._step
            if acquisition is None or self.stall_error is not None:
                return
            error = FrameStallError(self._diagnose(acquisition, silent_for, fly is not None))
            self.stall_error = error
        self.stalled.update(True)
        log.error("%s", error)
        acquisition.fail(error)
        if fly is None:
            self._finish_point(error)
        elif self._fly is not None and self._fly.complete_status is not None:
            status = self._fly.complete_status
            if not status.done:
                status.set_exception(error)
        announce_stall(self, error)

    def _diagnose(self, acquisition: Acquisition, silent_for: float, flying: bool) -> str:
        s = self.settings()
        caps = self.capabilities
        x, y, width, height = s.roi
        writer = self._fly.writer if flying and self._fly else self._staged_writer
        monitor = self._monitor
        snapshot = StallSnapshot(
            camera=self.name,
            camera_id=f"{caps.name} ({caps.model}, serial {caps.serial_number})",
            activity="fly scan" if flying else "trigger (step-scan point)",
            silent_for_s=silent_for,
            timeout_s=monitor.timeout if monitor else self.stall_timeout.get(),
            received=acquisition.received,
            expected=acquisition.frames if flying else s.frames_per_point,
            last_number=acquisition.last_number,
            last_frame_time=acquisition.last_frame_time,
            expected_period_s=acquisition.expected_period_s,
            camera_status=acquisition.camera_status,
            settings=(
                f"exposure {s.exposure_time * 1e3:g} ms, ROI {width}x{height} at ({x}, {y}), "
                f"binning {s.binning}x{s.binning}, port {s.readout_port}, speed {s.speed_index} "
                f"({self.speed_name.get()}), gain {s.gain_index} ({self.gain_name.get()}, "
                f"{self.bit_depth.get()}-bit), trigger mode {s.trigger_mode}"
            ),
            buffer_frames=acquisition.buffer_frames,
            lost=len(acquisition.lost),
            data_file=str(writer.path) if writer else None,
            frames_in_file=writer.frames_written if writer else 0,
            hardware_triggered=s.trigger_mode in HARDWARE_TRIGGER_MODES,
        )
        return describe_stall(snapshot)


@atexit.register
def _close_all() -> None:
    for device in list(_open_devices):
        try:
            device.close()
        except Exception:  # interpreter shutdown: report, never hang
            log.exception("closing %s at exit failed", device.name)
