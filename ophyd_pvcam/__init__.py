"""Teledyne Photometrics PVCAM cameras (Prime BSI) as Bluesky/ophyd devices."""

import logging
import sys

import hdf5plugin  # noqa: F401  (frames are bitshuffle/LZ4: any reader here decodes them)

from . import sim

if sim.requested_by_environment():
    try:
        sim.load()
    except sim.SimulatorError as error:
        # The ophyd-pvcam command reports this in one line like any other bad setting,
        # even though it happens while the package is imported; everyone else gets the
        # exception.  (While `python -m ophyd_pvcam.cli` imports this package,
        # sys.argv[0] is still "-m".)
        if sys.argv[:1] != ["-m"] and not sys.argv[0].endswith("ophyd-pvcam"):
            raise
        from .sim._control import FaultSpecError

        print(f"ophyd-pvcam: error: {error}", file=sys.stderr)
        raise SystemExit(2 if isinstance(error, FaultSpecError) else 3) from None

from .catalog import CatalogError, FramesFolderCheck, RunNotFound, find_run, open_catalog
from .device import PrimeBSI
from .errors import (
    AcquisitionInterrupted,
    CameraAcquisitionError,
    CameraInUseError,
    CameraLostError,
    CameraUnavailableError,
    DiskError,
    FrameStallError,
)
from .stall import StallGuard

# a library logs; the application (the profile, the CLI, a script) decides where to
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AcquisitionInterrupted",
    "CameraAcquisitionError",
    "CameraInUseError",
    "CameraLostError",
    "CameraUnavailableError",
    "CatalogError",
    "DiskError",
    "FrameStallError",
    "FramesFolderCheck",
    "PrimeBSI",
    "RunNotFound",
    "StallGuard",
    "find_run",
    "open_catalog",
    "sim",
]
