"""The ophyd face: the ``PrimeBSI`` device, its signals, the RunEngine
preprocessors (``StallGuard``, ``FramesFolderCheck``), plans, and the setup the
profile, CLI and examples share (``make_run_engine``, ``make_camera``).
"""

from ._plans import count_frames, dark_series, fly_frames, fly_table, format_table, stall_probe
from ._preprocessors import FramesFolderCheck, StallGuard
from ._prime_bsi import PrimeBSI
from ._runs import current_run
from ._setup import log_to_file, make_camera, make_run_engine, summaries_hidden
from ._signals import CameraStatus, ProgressStatus

__all__ = [
    "CameraStatus",
    "FramesFolderCheck",
    "PrimeBSI",
    "ProgressStatus",
    "StallGuard",
    "count_frames",
    "current_run",
    "dark_series",
    "fly_frames",
    "fly_table",
    "format_table",
    "log_to_file",
    "make_camera",
    "make_run_engine",
    "stall_probe",
    "summaries_hidden",
]
