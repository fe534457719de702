"""The seam between the device and a camera: what the owner thread may ask of one.

Two implementations: :class:`~ophyd_pvcam.hardware.PyvcamBackend` (the vendor's
pyvcam, on the real PVCAM or on our C simulator) and
:class:`~ophyd_pvcam.testing.FakeBackend` (pure Python, for unit tests that run in
milliseconds).  Every method is called from one thread only, the acquisition
layer's ``CameraOwner``; between :meth:`CameraBackend.start` and
:meth:`CameraBackend.stop` only the streaming calls (``poll``, ``trigger``,
``status``) are made: PVCAM cameras have been seen to stop delivering frames when
parameters are read while they stream.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Gain:
    """A gain of a readout speed: PVCAM's index, its name, and the bit depth it gives."""

    index: int
    name: str
    bit_depth: int


@dataclass(frozen=True)
class Speed:
    """A readout speed of a port: its index on the port, its name, the time per pixel
    and the gains it offers."""

    index: int
    name: str
    pixel_time_ns: int
    gains: tuple[Gain, ...]


@dataclass(frozen=True)
class Port:
    """A readout port: its name, PVCAM's value for it and the speeds it offers."""

    name: str
    value: int
    speeds: tuple[Speed, ...]


@dataclass(frozen=True)
class Capabilities:
    """What the opened camera reports about itself (read once, at open)."""

    name: str
    model: str
    serial_number: str
    firmware_version: str
    chip_name: str
    sensor_width: int
    sensor_height: int
    pixel_size_um: float
    ports: tuple[Port, ...]
    binnings: tuple[int, ...]
    trigger_modes: dict[str, int]
    expose_out_modes: dict[str, int]
    clear_modes: dict[str, int]
    fan_speeds: dict[str, int]
    exposure_resolutions: dict[str, int]
    max_exposure_s: float
    temperature_setpoint_range: tuple[float, float]
    simulated: bool
    has_metadata: bool = field(default=True)

    def port(self, name: str) -> Port:
        for port in self.ports:
            if port.name == name:
                return port
        raise KeyError(name)

    def table(self) -> list[dict[str, Any]]:
        """The port/speed/gain table as rows (for display and configuration)."""
        return [
            {
                "port": port.name,
                "speed_index": speed.index,
                "speed": speed.name,
                "pixel_time_ns": speed.pixel_time_ns,
                "gain_index": gain.index,
                "gain": gain.name,
                "bit_depth": gain.bit_depth,
            }
            for port in self.ports
            for speed in port.speeds
            for gain in speed.gains
        ]


class Mode(enum.Enum):
    """How frames are timed during one acquisition."""

    FREE = "free"  # the camera times itself, or follows its trigger input
    SOFTWARE = "software"  # one frame per software trigger
    SEQUENCE = "sequence"  # a fixed number of frames, then the camera stops


@dataclass(frozen=True)
class CameraSetup:
    """Everything the camera needs before it can start (validated settings)."""

    exposure_us: int
    roi: tuple[int, int, int, int]  # x, y, width, height in unbinned pixels
    binning: int
    readout_port: str
    speed_index: int
    gain_index: int
    clear_mode: str
    trigger_mode: str  # the vendor's name, e.g. "Software Trigger Edge"
    expose_out_mode: str
    temperature_setpoint: float
    fan_speed: str

    @property
    def image_shape(self) -> tuple[int, int]:
        _, _, width, height = self.roi
        return height // self.binning, width // self.binning


@dataclass(frozen=True)
class StreamSpec:
    """How the camera is to run when it starts: the timing mode, the frames (a
    sequence's length; 0 when continuous) and its circular buffer in frames."""

    mode: Mode
    frames: int  # a sequence's length; 0 for continuous acquisitions
    buffer_frames: int  # the camera's circular buffer, in frames


@dataclass(frozen=True)
class FrameInfo:
    """What the backend knows about a frame it copied out of the camera's buffer."""

    number: int  # the camera's frame number, from 1 in each acquisition
    bof: float  # camera clock, s since the acquisition started (nan if unknown)
    eof: float
    torn: bool = False  # overwritten in the camera's buffer while it was copied


@dataclass(frozen=True)
class Readings:
    """Values read from the camera while it was idle, and when."""

    temperature: float  # degC
    readout_time_s: float
    read_at: float  # wall clock


class CameraError(RuntimeError):
    """A streaming call failed; ``lost`` tells whether the camera vanished."""

    def __init__(self, message: str, *, lost: bool = False, readout_failed: bool = False):
        super().__init__(message)
        self.lost = lost
        self.readout_failed = readout_failed


@runtime_checkable
class CameraBackend(Protocol):
    """What the acquisition layer needs of a camera, and all it may ask of one.

    :class:`PyvcamBackend` implements it on the vendor's pyvcam (the real camera or the
    simulated SDK), :class:`~ophyd_pvcam.testing.FakeBackend` in pure Python for unit
    tests.  Only the owner thread calls it (docs/decisions/0006), so an implementation
    need not be thread-safe; ``capabilities`` is read once, when the camera is opened.
    """

    capabilities: Capabilities

    def apply(self, setup: CameraSetup) -> None:
        """Apply settings (idle only); only what changed is sent to the camera."""

    def read(self) -> Readings:
        """Read temperature and readout time (idle only)."""
        ...

    def start(self, spec: StreamSpec) -> None:
        """Start an acquisition with the applied settings."""

    def poll(self, timeout_s: float, out: np.ndarray) -> FrameInfo | None:
        """Copy the next frame into ``out``; None if none came within the timeout.
        Raises :class:`CameraError` if the camera failed."""
        ...

    def trigger(self) -> bool:
        """Send one software trigger; False if the camera ignored it (busy)."""
        ...

    def status(self) -> str:
        """The acquisition status as PVCAM names it (EXPOSURE_IN_PROGRESS,
        READOUT_COMPLETE, READOUT_FAILED...): a streaming call, safe while frames flow."""
        ...

    def stop(self) -> None:
        """End the acquisition (idempotent; never raises for a lost camera)."""

    def ensure_open(self) -> None:
        """Reopen a camera that was lost (idle only)."""

    def close(self) -> None:
        """Release the camera for good."""
