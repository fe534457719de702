"""The camera as Bluesky uses it, without ophyd: one owner thread that makes every
camera call, the frame ledger, step and fly sessions, the stall watchdog and its
diagnosis, the settings checker and the controller that ties them together.

Work is reported through :class:`Completion` and :class:`Progress` objects the face
hands in, and runs are known through :class:`RunLink` (see ``_seams``; :class:`EngineRun`
is the one over a RunEngine, for both faces): the ophyd device and the ophyd-async
detector drive the same core.  Imports no ophyd, bluesky or tiled.
"""

from ._controller import HARDWARE_TRIGGER_MODES, CameraController
from ._ledger import GAP, INTERRUPTED, MEMORY, RETAKEN, TORN, WRITE, FrameLedger, Placement
from ._readout import ReadoutModel
from ._runs import EngineRun, engine_run
from ._seams import Completion, Pending, Progress, RunLink
from ._settings import Settings, SettingsChecker
from ._states import FLY_RULES, STEP_RULES, Call, Phase, Rule, Verdict, as_markdown, missing_cells
from ._watchdog import StallMonitor

__all__ = [
    "FLY_RULES",
    "GAP",
    "HARDWARE_TRIGGER_MODES",
    "INTERRUPTED",
    "MEMORY",
    "RETAKEN",
    "STEP_RULES",
    "TORN",
    "WRITE",
    "Call",
    "CameraController",
    "Completion",
    "EngineRun",
    "FrameLedger",
    "Pending",
    "Phase",
    "Placement",
    "Progress",
    "ReadoutModel",
    "Rule",
    "RunLink",
    "Settings",
    "SettingsChecker",
    "StallMonitor",
    "Verdict",
    "as_markdown",
    "engine_run",
    "missing_cells",
]
