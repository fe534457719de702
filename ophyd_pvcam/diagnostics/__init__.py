"""Finding out why a real camera stops: the probe (``ophyd-pvcam probe``), the
doctor's controlled experiments and verdict, the first-day check
(``ophyd-pvcam check``), the bench that borrows the camera for them, and their
one-page figures.
"""

from ._bench import Bench
from ._check import FirstDayCheck
from ._check_figure import check_figure
from ._check_report import Check, CheckOptions
from ._experiments import NO_UNLOCK, OVERWRITE, UNLOCK, Run
from ._judging import Hypothesis
from ._probe import Probe, ProbeOptions, SdkResult
from ._probe_figure import probe_figure
from ._readout import full_frame_readout
from ._replay import Replayed, frame_rate, replay
from ._reports import report_writer

__all__ = [
    "NO_UNLOCK",
    "OVERWRITE",
    "UNLOCK",
    "Bench",
    "Check",
    "CheckOptions",
    "FirstDayCheck",
    "Hypothesis",
    "Probe",
    "ProbeOptions",
    "Replayed",
    "Run",
    "SdkResult",
    "check_figure",
    "frame_rate",
    "full_frame_readout",
    "probe_figure",
    "replay",
    "report_writer",
]
