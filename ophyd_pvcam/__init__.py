"""Teledyne Photometrics PVCAM cameras (Prime BSI) as Bluesky/ophyd devices."""

import logging

import hdf5plugin  # noqa: F401  (frames are bitshuffle/LZ4: any reader here decodes them)

from . import sim

if sim.requested_by_environment():
    sim.load()

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
