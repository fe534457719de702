"""The Prime BSI as an ophyd device: a triggerable detector and a flyer.

Signals and delegation only.  Settings are signals, checked when set; everything the
camera does is :class:`~ophyd_pvcam.acquisition.CameraController`'s, which is handed
the settings with each call and reports back through one callback.

Step scans (``count``, ``scan``): ``stage`` checks and applies the settings; each
``trigger`` takes ``frames_per_point`` fresh frames, every one exposed after the call,
and completes once they are on disk; ``read`` gives the datum and cheap statistics.
Fly scans: ``kickoff`` starts the camera free-running for ``num_frames`` frames (0:
until ``complete``), ``complete`` finishes once all are on disk, ``collect`` gives one
event per frame.  A stall monitor watches every acquisition: when frames stop it
sets ``stalled``, stops the camera and fails what waits on it with
:class:`~ophyd_pvcam.errors.FrameStallError`, a diagnosis.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import math
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device

from ophyd_pvcam.acquisition import HARDWARE_TRIGGER_MODES, CameraController, Settings
from ophyd_pvcam.hardware import CameraBackend
from ophyd_pvcam.paths import default_write_path

from ._preprocessors import announce_failure
from ._runs import current_run
from ._signals import (
    CameraStatus,
    ImageSignal,
    LiveSignal,
    ProgressStatus,
    ReadOnlySignal,
    SettingSignal,
)

log = logging.getLogger(__name__)

SETTINGS = tuple(field.name for field in dataclasses.fields(Settings))
# settings that may change while the camera runs (they do not touch the camera's setup)
FREE_WHILE_ACQUIRING = {"stall_timeout", "num_frames", "temperature_setpoint", "fan_speed"}
_open_devices: weakref.WeakSet = weakref.WeakSet()


class PrimeBSI(Device):
    """A Teledyne Photometrics Prime BSI camera (or its simulation) for Bluesky.

    ``sim=True`` uses the simulated camera, ``sim=False`` the vendor PVCAM, ``None``
    the simulator only if ``OPHYD_PVCAM_SIM=1``.  ``camera_name`` picks one of several
    cameras (default: the first).  Frames are written under ``write_path`` (default:
    a per-user data folder).  ``backend``: a factory for another camera backend (the
    pure-Python :class:`~ophyd_pvcam.testing.FakeBackend` in unit tests).
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
    temperature_setpoint = Cpt(SettingSignal, value=-20.0, kind="config", doc="degC")
    fan_speed = Cpt(SettingSignal, value="", kind="config")
    stall_timeout = Cpt(SettingSignal, value=0.0, kind="config", doc="seconds; 0: automatic")
    memory_buffer = Cpt(
        SettingSignal, value=0, kind="config", doc="MiB of frames waiting for the disk; 0: auto"
    )
    compression = Cpt(
        SettingSignal, value="bslz4", kind="config", doc='"bslz4" (bitshuffle + LZ4) or "none"'
    )
    # what the camera reports (read while it is idle; see CameraController.readings)
    temperature = Cpt(LiveSignal, value=math.nan, kind="config", doc="degC")
    readout_time = Cpt(LiveSignal, value=0.0, kind="config", doc="seconds")
    stall_timeout_in_force = Cpt(ReadOnlySignal, value=1.0, kind="config", doc="seconds")
    speed_name = Cpt(ReadOnlySignal, value="", kind="config")
    gain_name = Cpt(ReadOnlySignal, value="", kind="config")
    bit_depth = Cpt(ReadOnlySignal, value=16, kind="config")
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
        write_path: str | os.PathLike | None = None,
        backend: Callable[[], CameraBackend] | None = None,
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.write_path = Path(write_path or default_write_path()).expanduser().resolve()
        if backend is None:
            from ophyd_pvcam.hardware import PyvcamBackend

            def pyvcam_backend() -> CameraBackend:
                return PyvcamBackend(f"PrimeBSI {name!r}", camera_name, sim)

            backend = pyvcam_backend

        self._controller = CameraController(
            name,
            backend,
            self.write_path,
            report=self._show,
            find_run=current_run,
            announce=lambda error: announce_failure(self, error),
        )
        self._checks = _SettingsCheck(self, self._controller)
        for attr in SETTINGS:
            getattr(self, attr).checker = self._checks
        self.image.describer = self.image_description
        self.temperature.reader = self._reading("temperature")
        self.readout_time.reader = self._readout_time
        self._initial_settings()
        _open_devices.add(self)

    @property
    def capabilities(self):
        """What the camera offers (read once, when it was opened)."""
        return self._controller.capabilities

    @capabilities.setter
    def capabilities(self, capabilities) -> None:
        """Narrow what the camera offers (to try a camera without software triggers)."""
        self._controller.capabilities = capabilities
        self._controller.checker = type(self._controller.checker)(capabilities)

    # ---- settings ---------------------------------------------------------------------

    def _initial_settings(self) -> None:
        caps = self.capabilities
        port = caps.ports[0]
        values = {
            "roi": (0, 0, caps.sensor_width, caps.sensor_height),
            "readout_port": port.name,
            "speed_index": port.speeds[0].index,
            "gain_index": port.speeds[0].gains[0].index,
            "clear_mode": next(iter(caps.clear_modes), ""),
            "trigger_mode": "Internal Trigger"
            if "Internal Trigger" in caps.trigger_modes
            else next(iter(caps.trigger_modes)),
            "expose_out_mode": next(iter(caps.expose_out_modes), ""),
            "fan_speed": next(iter(caps.fan_speeds), ""),
            "temperature_setpoint": min(
                max(-20.0, caps.temperature_setpoint_range[0]), caps.temperature_setpoint_range[1]
            ),
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
        ):
            getattr(self, attr).update(value)
        self.derive()

    def settings(self) -> Settings:
        """The current settings, as one object."""
        return Settings(**{attr: getattr(self, attr).get() for attr in SETTINGS})

    def derive(self) -> None:
        """Names, bit depth, frame period and the automatic stall timeout follow the settings."""
        s = self.settings()
        try:
            speed = self.capabilities.port(s.readout_port).speeds[s.speed_index]
            gain = next(g for g in speed.gains if g.index == s.gain_index)
        except (KeyError, IndexError, StopIteration):
            return  # mid-change of port, speed and gain
        self.speed_name.update(speed.name)
        self.gain_name.update(gain.name)
        self.bit_depth.update(gain.bit_depth)
        # from the readout model: the new ROI's period at once, no camera call mid-stream
        self.frame_period.update(self._controller.frame_period(s))
        timeout = s.stall_timeout or self._controller.auto_stall_timeout(s)
        self.stall_timeout_in_force.update(timeout)
        if self.acquiring:
            self._controller.set_stall_timeout(timeout)

    def _readout_time(self) -> tuple[float, float | None]:
        """The readout time of the current settings (the readout model), else the camera's
        last reading with its time."""
        try:
            readout = self._controller.readout_time(self.settings())
        except (KeyError, ValueError):  # mid-change of port, speed and gain
            readout = None
        if readout is not None:
            return readout, None
        return self._reading("readout_time_s")()

    def _reading(self, field: str) -> Callable[[], tuple[Any, float | None]]:
        def read() -> tuple[Any, float | None]:
            readings = self._controller.readings()
            if readings is None:
                return math.nan, None  # nothing read yet: stamped now
            return getattr(readings, field), readings.read_at

        return read

    # ---- state -----------------------------------------------------------------------

    @property
    def acquiring(self) -> bool:
        """True while the camera runs (a fly scan, or a step scan's live camera)."""
        return self._controller.acquiring

    @property
    def stall_error(self):
        """The stall of the latest acquisition, if it stalled (the stall guard reads it)."""
        return self._controller.stall_error

    def _show(self, controller: CameraController) -> None:
        """The controller's report: the status signals follow the latest session."""
        session = controller.last
        if session is None:
            return
        # an acquisition that stopped has taught the readout model its row time
        self.frame_period.update(self._controller.frame_period(self.settings()))
        self.frames_acquired.update(len(session.ledger.numbers))
        self.dropped_frames.update(session.ledger.lost.total)
        self.stalled.update(session.stall is not None)
        point = controller.read_point()
        if point:
            self.image.update(point["datum_id"])
            self.mean.update(point["mean"])
            self.max.update(point["max"])
            self.frame_number.update(point["frame_number"])

    @property
    def last_file(self) -> Path | None:
        """The frame file of the latest acquisition (its rows are what the run holds)."""
        session = self._controller.last
        return None if session is None else session.path

    def loss_summary(self) -> str | None:
        """The latest acquisition's one-line summary if it lost frames, else None."""
        session = self._controller.last
        return session.summary_line() if session is not None and session.had_losses else None

    def image_description(self) -> dict[str, Any]:
        s = self.settings()
        rows, columns = s.image_shape
        return {
            "dtype": "array",
            "dtype_numpy": np.dtype(np.uint16).str,
            "shape": [s.frames_per_point, rows, columns],
            "external": "FILESTORE:",
        }

    # ---- the detector face -------------------------------------------------------------

    def stage(self) -> list[Any]:
        self._controller.stage(self.settings())
        try:
            return super().stage()
        except BaseException:
            self.unstage()
            raise

    def trigger(self) -> ProgressStatus:
        s = self.settings()
        status = ProgressStatus(self, s.frames_per_point, f"{self.name} frames")
        self._controller.trigger(s, status)
        return status

    def unstage(self) -> list[Any]:
        self._controller.unstage()
        return super().unstage()

    def collect_asset_docs(self):
        step = self._controller.step
        if step is not None:
            yield from step.docs.take()
        yield from self._controller.collect_asset_docs()

    # ---- the flyer face -------------------------------------------------------------------

    def kickoff(self) -> CameraStatus:
        status = CameraStatus(self)
        self._controller.kickoff(self.settings(), status)
        return status

    def complete(self) -> ProgressStatus:
        s = self.settings()
        status = ProgressStatus(self, s.num_frames or None, f"{self.name} frames")
        self._controller.complete(status)
        return status

    def describe_collect(self) -> dict[str, dict]:
        s = self.settings()
        rows, columns = s.image_shape
        source = f"PVCAM:{self.capabilities.name}"
        mode = self._controller.describe_collect_mode()

        def key(dtype: str, numpy_dtype, shape: list, **extra) -> dict:
            return {"source": source, "dtype": dtype, "dtype_numpy": np.dtype(numpy_dtype).str,
                    "shape": shape, **extra}  # fmt: skip

        name = self.name
        keys = {
            f"{name}_image": key("array", np.uint16, [1, rows, columns]),
            f"{name}_frame_number": key("integer", np.int64, []),
            f"{name}_frame_time": key("number", np.float64, [], units="s",
                                      doc="end of the frame: the camera's clock as wall time"),
            f"{name}_lost_before": key("integer", np.int64, [],
                                       doc="frames lost just before this one"),
        }  # fmt: skip
        if mode == "stream":  # a declared stream: every key read from the file
            for description in keys.values():
                description["external"] = "STREAM:"
            return keys
        keys[f"{name}_image"]["external"] = "FILESTORE:"  # a Datum per frame, in the events
        keys[f"{name}_lost_after"] = key(
            "integer", np.int64, [], doc="frames lost after this one: only on the last frame"
        )
        return {name: keys}

    @property
    def collect_pages(self):
        """Event pages of the frames handed over since the last collect.

        Only when the plan did not declare the camera's stream (bare ``bp.fly`` on a
        RunEngine without the stall guard): a declared stream reads everything from the
        file, and bluesky must then not see this device as page-collectable, so the
        attribute is absent."""
        if not self._controller.collects_pages:
            raise AttributeError("collect_pages")  # a declared stream has no events
        return self._controller.collect_pages

    # ---- looking without recording --------------------------------------------------------

    def snap(self, timeout: float | None = None) -> np.ndarray:
        """One fresh frame with the current settings, as an array: no run, no file."""
        return self._controller.snap(self.settings(), timeout)

    def live(self, on_frame=None):
        """Stream without recording (for a viewer) until the returned stream's ``stop()``;
        see ``LiveStream``.  Settings that change the camera's
        setup need the stream stopped first."""
        return self._controller.live(self.settings(), on_frame)

    # ---- stopping -------------------------------------------------------------------------

    def stop(self, *, success: bool = False) -> None:
        """Stop whatever the camera is doing; files keep what was acquired."""
        self._controller.stop()

    def pause(self) -> None:
        """The RunEngine pauses: the camera stops (see README, "Pausing")."""
        self._controller.pause()

    def resume(self) -> None:
        """The RunEngine resumes: a paused fly scan's camera starts again for the frames
        still missing; a step scan's next trigger starts it (see README, "Pausing")."""
        self._controller.resume()

    def close(self) -> None:
        """Stop any acquisition, close its files and release the camera."""
        self._controller.close()
        _open_devices.discard(self)

    def destroy(self) -> None:
        self.close()
        super().destroy()


class _SettingsCheck:
    """The checker injected into the device's setting signals."""

    def __init__(self, device: PrimeBSI, controller: CameraController):
        self._device = device
        self._controller = controller

    def check(self, attr: str, value: Any) -> Any:
        device = self._device
        checker = self._controller.checker
        if device.acquiring and attr not in FREE_WHILE_ACQUIRING:
            raise RuntimeError(
                f"{device.name}.{attr} cannot change while the camera is acquiring; "
                "wait for the acquisition to finish or stop it"
            )
        s = device.settings()
        if attr == "roi":
            return checker.roi(value, s.binning)
        if attr == "binning":
            return checker.binning(value, s.roi)
        if attr == "speed_index":
            return checker.speed_index(value, s.readout_port)
        if attr == "gain_index":
            return checker.gain_index(value, s.readout_port, s.speed_index)
        if attr == "buffer_frames":
            return checker.buffer_frames(value, s.frame_bytes)
        if attr == "memory_buffer":
            return checker.memory_buffer(value, s.frame_bytes)
        return getattr(checker, attr)(value)

    def changed(self, attr: str) -> None:
        device = self._device
        if attr == "readout_port":
            self._fit_speed_and_gain()
        if attr in ("temperature_setpoint", "fan_speed"):
            self._controller.apply_environment(device.settings())
        device.derive()

    def _fit_speed_and_gain(self) -> None:
        """A new readout port keeps speed and gain if it offers them, else takes its first."""
        device = self._device
        s = device.settings()
        speeds = device.capabilities.port(s.readout_port).speeds
        if s.speed_index >= len(speeds):
            device.speed_index.put(0, force=True)
        speed = speeds[min(s.speed_index, len(speeds) - 1)]
        if s.gain_index not in [g.index for g in speed.gains]:
            device.gain_index.put(speed.gains[0].index, force=True)


@atexit.register
def _close_all() -> None:
    for device in list(_open_devices):
        try:
            device.close()
        except Exception:  # interpreter shutdown: report, never hang
            log.exception("closing %s at exit failed", device.name)


__all__ = ["HARDWARE_TRIGGER_MODES", "PrimeBSI"]
