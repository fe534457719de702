"""The simulated PVCAM SDK: a Prime BSI that the unmodified pyvcam runs on.

Load it before pyvcam is imported: ``load()``, or ``OPHYD_PVCAM_SIM=1`` and
ophyd-pvcam loads it when it first needs pyvcam.  Environment variables:

- ``OPHYD_PVCAM_SIM=1``: use the simulator instead of the vendor library.
- ``OPHYD_PVCAM_SIM_CAMERAS=N``: number of simulated cameras (default 1, max 8).
- ``OPHYD_PVCAM_SIM_SEED=N``: seed of the image noise.
- ``OPHYD_PVCAM_SIM_FAULTS=...``: faults to inject at load, see :func:`parse_fault_spec`.
- ``OPHYD_PVCAM_SIM_LIBRARY=PATH``: load this build of the library instead
  (the AddressSanitizer job uses it).
"""

from ._control import (
    FAULT_KINDS,
    Fault,
    FaultSpecError,
    SimStats,
    active_fault_count,
    buffer_full,
    clear_faults,
    fire_edge,
    frames_dropped,
    frames_generated,
    inject_environment_faults,
    inject_fault,
    last_param_mid_stream,
    load,
    param_calls_mid_stream,
    parse_fault_spec,
    set_seed,
    stats,
)
from ._loader import SimulatorError, is_loaded, library_path, requested_by_environment
from ._pixels import frame_number

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "FaultSpecError",
    "SimStats",
    "SimulatorError",
    "active_fault_count",
    "buffer_full",
    "clear_faults",
    "fire_edge",
    "frame_number",
    "frames_dropped",
    "frames_generated",
    "inject_environment_faults",
    "inject_fault",
    "is_loaded",
    "last_param_mid_stream",
    "library_path",
    "load",
    "param_calls_mid_stream",
    "parse_fault_spec",
    "requested_by_environment",
    "set_seed",
    "stats",
]
