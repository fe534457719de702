"""Checking camera settings against what the camera offers.

Every check names the value and what is allowed, so a scientist can fix the
call without reading code; they run when a setting is set and again, as a
whole, before an acquisition starts (before any file is created).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ophyd_pvcam.hardware import CameraSetup, Capabilities
from ophyd_pvcam.storage import COMPRESSIONS

MAX_SEQUENCE_FRAMES = 65535  # PVCAM counts sequence exposures in 16 bits
MAX_BUFFER_BYTES = 2**32 - 1  # PVCAM's circular buffer is addressed with 32 bits
MAX_FLY_FRAMES = 2**31 - 1  # PVCAM numbers frames with a signed 32-bit integer
MAX_STALL_TIMEOUT_S = 86400.0
MIN_MEMORY_BUFFER_MIB = 16
AUTO_MEMORY_BUFFER_MAX_MIB = 4096


@dataclass
class Settings:
    """A complete set of acquisition settings, in engineering units."""

    exposure_time: float  # s
    roi: tuple[int, int, int, int]  # x, y, width, height in unbinned pixels
    binning: int
    readout_port: str
    speed_index: int
    gain_index: int
    clear_mode: str
    trigger_mode: str
    expose_out_mode: str
    frames_per_point: int
    num_frames: int
    buffer_frames: int  # 0: chosen from the frame size
    temperature_setpoint: float  # degC
    fan_speed: str
    stall_timeout: float  # s; 0: automatic
    memory_buffer: int  # MiB of frames between the camera and the disk
    compression: str  # of the frames in the file: "none" or "bslz4"

    @property
    def image_shape(self) -> tuple[int, int]:
        """(rows, columns) of a binned frame."""
        _, _, width, height = self.roi
        return height // self.binning, width // self.binning

    @property
    def exposure_us(self) -> int:
        return round(self.exposure_time * 1e6)

    @property
    def frame_bytes(self) -> int:
        rows, columns = self.image_shape
        return rows * columns * 2

    def camera_setup(self, trigger_mode: str) -> CameraSetup:
        """What the camera needs, with the trigger mode the acquisition uses."""
        x, y, width, height = self.roi  # a tuple, whatever sequence the signal held
        return CameraSetup(
            exposure_us=self.exposure_us,
            roi=(x, y, width, height),
            binning=self.binning,
            readout_port=self.readout_port,
            speed_index=self.speed_index,
            gain_index=self.gain_index,
            clear_mode=self.clear_mode,
            trigger_mode=trigger_mode,
            expose_out_mode=self.expose_out_mode,
            temperature_setpoint=self.temperature_setpoint,
            fan_speed=self.fan_speed,
        )


def _choice(name: str, value, options: Mapping[str, int]) -> str:
    """Accept an option by name or by its PVCAM value; return the name."""
    if isinstance(value, str) and value in options:
        return value
    for option, code in options.items():
        if not isinstance(value, (str, bool)) and value == code:
            return option
    allowed = ", ".join(f"{n!r} ({v})" for n, v in options.items())
    raise ValueError(f"{name}={value!r} is not offered by this camera; choose one of {allowed}")


def _integer(name: str, value, low: int, high: int, unit: str = "") -> int:
    bounds = f"{low}..{high}{unit}"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise ValueError(f"{name}={value!r} must be an integer in the range {bounds}")
    value = int(value)
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is outside the allowed range {bounds}")
    return value


def _number(name: str, value, low: float, high: float, unit: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ValueError(
            f"{name}={value!r} {unit} is outside the allowed range {low:g}..{high:g} {unit}"
        )
    return float(value)


class SettingsChecker:
    """Validates settings for one camera's :class:`~ophyd_pvcam.hardware.Capabilities`."""

    def __init__(self, capabilities: Capabilities):
        self.caps = capabilities

    # one setting at a time, given the others -----------------------------------

    def exposure_time(self, value) -> float:
        high = self.caps.max_exposure_s
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.integer, np.floating))
            or not math.isfinite(value)
            or value <= 0
            or value > high
        ):
            raise ValueError(
                f"exposure_time={value!r} s is outside the allowed range: more than 0 and "
                f"at most {high:g} s"
            )
        if round(value * 1e6) < 1:
            raise ValueError(f"exposure_time={value!r} s is shorter than 1 us, the resolution")
        return float(value)

    def roi(self, value, binning: int) -> tuple[int, int, int, int]:
        width_max, height_max = self.caps.sensor_width, self.caps.sensor_height
        try:
            x, y, width, height = (int(v) for v in value)
            if any(int(v) != v for v in value):
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise ValueError(
                f"roi={value!r} must be four integers (x, y, width, height) in unbinned pixels"
            ) from None
        if x < 0 or y < 0 or width < 1 or height < 1:
            raise ValueError(f"roi={value!r}: x and y must be >= 0, width and height >= 1")
        if x + width > width_max or y + height > height_max:
            raise ValueError(
                f"roi={value!r} extends beyond the {width_max} x {height_max} sensor: "
                f"x + width must be <= {width_max} and y + height <= {height_max}"
            )
        if width % binning or height % binning:
            raise ValueError(
                f"roi={value!r} is not aligned to the binning {binning}: width and height "
                f"must be multiples of {binning}"
            )
        return x, y, width, height

    def binning(self, value, roi: tuple[int, int, int, int]) -> int:
        allowed = self.caps.binnings
        if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
            value = value[0]
        if isinstance(value, bool) or value not in allowed:
            raise ValueError(
                f"binning={value!r} is not offered by this camera; choose one of "
                f"{list(allowed)} (the same in x and y)"
            )
        _, _, width, height = roi
        if width % value or height % value:
            raise ValueError(
                f"binning={value} does not divide the ROI {width} x {height}; set a roi whose "
                f"width and height are multiples of {value} first"
            )
        return int(value)

    def readout_port(self, value) -> str:
        ports = {port.name: port.value for port in self.caps.ports}
        return _choice("readout_port", value, ports)

    def speed_index(self, value, port: str) -> int:
        speeds = self.caps.port(port).speeds
        index = _integer("speed_index", value, 0, 2**15)
        if index >= len(speeds):
            table = ", ".join(f"{s.index} ({s.name})" for s in speeds)
            raise ValueError(
                f"speed_index={index} is not offered on readout port {port!r}; allowed: {table}"
            )
        return index

    def gain_index(self, value, port: str, speed: int) -> int:
        gains = self.caps.port(port).speeds[speed].gains
        index = _integer("gain_index", value, 0, 2**15)
        if index not in [g.index for g in gains]:
            table = ", ".join(f"{g.index} ({g.name}, {g.bit_depth}-bit)" for g in gains)
            raise ValueError(
                f"gain_index={index} is not offered on port {port!r} at speed {speed}; "
                f"allowed: {table}"
            )
        return index

    def clear_mode(self, value) -> str:
        return _choice("clear_mode", value, self.caps.clear_modes)

    def trigger_mode(self, value) -> str:
        return _choice("trigger_mode", value, self.caps.trigger_modes)

    def expose_out_mode(self, value) -> str:
        return _choice("expose_out_mode", value, self.caps.expose_out_modes)

    def fan_speed(self, value) -> str:
        return _choice("fan_speed", value, self.caps.fan_speeds)

    def temperature_setpoint(self, value) -> float:
        low, high = self.caps.temperature_setpoint_range
        return _number("temperature_setpoint", value, low, high, "degC")

    def frames_per_point(self, value) -> int:
        return _integer("frames_per_point", value, 1, MAX_SEQUENCE_FRAMES)

    def num_frames(self, value) -> int:
        return _integer("num_frames", value, 0, MAX_FLY_FRAMES)

    def buffer_frames(self, value, frame_bytes: int) -> int:
        most = max(2, MAX_BUFFER_BYTES // frame_bytes)
        value = _integer("buffer_frames", value, 0, most)
        if value == 1:
            raise ValueError("buffer_frames=1 is too small: use 0 (automatic) or 2.." + str(most))
        return value

    def stall_timeout(self, value) -> float:
        if value is None:
            return 0.0
        return _number("stall_timeout", value, 0, MAX_STALL_TIMEOUT_S, "s (0: automatic)")

    def compression(self, value) -> str:
        if value not in COMPRESSIONS:
            raise ValueError(
                f"compression={value!r} is not offered; choose one of "
                + ", ".join(repr(choice) for choice in COMPRESSIONS)
                + " (bitshuffle + LZ4, HDF5 filter 32008)"
            )
        return value

    def memory_buffer(self, value, frame_bytes: int = 0) -> int:
        """MiB of memory for frames waiting for the disk (0: automatic): at most half the
        memory available now, so the machine never swaps for it."""
        most = max(MIN_MEMORY_BUFFER_MIB, available_memory_mib() // 2)
        if value == 0 and not isinstance(value, bool):
            return 0
        value = _integer("memory_buffer", value, MIN_MEMORY_BUFFER_MIB, most, " MiB")
        value_or_auto = f"memory_buffer={value} MiB (0: automatic)"
        if frame_bytes and (value << 20) < 2 * frame_bytes:
            raise ValueError(
                f"{value_or_auto} cannot hold two {frame_bytes / 2**20:.1f} MiB frames"
            )
        return value

    # everything together --------------------------------------------------------

    def check_all(self, s: Settings) -> None:
        """Check a complete set of settings (they may have been set in any order)."""
        self.exposure_time(s.exposure_time)
        self.binning(s.binning, s.roi)
        self.roi(s.roi, s.binning)
        self.readout_port(s.readout_port)
        self.speed_index(s.speed_index, s.readout_port)
        self.gain_index(s.gain_index, s.readout_port, s.speed_index)
        self.clear_mode(s.clear_mode)
        self.trigger_mode(s.trigger_mode)
        self.expose_out_mode(s.expose_out_mode)
        self.frames_per_point(s.frames_per_point)
        self.num_frames(s.num_frames)
        self.buffer_frames(s.buffer_frames, s.frame_bytes)
        self.temperature_setpoint(s.temperature_setpoint)
        self.fan_speed(s.fan_speed)
        self.stall_timeout(s.stall_timeout)
        self.memory_buffer(s.memory_buffer, s.frame_bytes)
        self.compression(s.compression)


def available_memory_mib() -> int:
    """Memory the kernel could give us now (MemAvailable), in MiB."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


def automatic_memory_buffer_mib() -> int:
    """A quarter of the memory available now, at most 4 GiB: ~25 s of the fastest full
    frames over a disk half as fast, on a beamline workstation; less on a laptop."""
    quarter = available_memory_mib() // 4
    return int(min(AUTO_MEMORY_BUFFER_MAX_MIB, max(MIN_MEMORY_BUFFER_MIB, quarter)))
