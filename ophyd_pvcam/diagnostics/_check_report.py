"""The first-day check's report, row by row: what each check measured, against what it
expected, and whether that passes.

Every check (``_sdk_checks``, ``_device_checks``) gives back one :class:`Check` row;
the check run (``_check``) collects them, prints each as it comes and writes the
report; the figure (``check_figure``) redraws a saved report.  A row that is reported
but not failed (a camera still cooling down) is a note, ``"warn"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

WORDS = {"pass": "PASS", "fail": "FAIL", "warn": "NOTE"}  # a note is reported, not failed


@dataclass
class CheckOptions:
    """How much the first-day check measures, and what it accepts (the command line's
    options; the defaults take a few minutes on a Prime BSI)."""

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
    """One readout mode of the camera: port, speed and gain."""

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
