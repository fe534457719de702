"""Teledyne Photometrics PVCAM cameras (Prime BSI) as Bluesky/ophyd devices."""

from . import sim

if sim.requested_by_environment():
    sim.load()

from .camera import CameraInUseError, CameraUnavailableError
from .catalog import CatalogError, FramesFolderCheck, RunNotFound, find_run, open_catalog
from .device import PrimeBSI
from .stall import CameraAcquisitionError, FrameStallError, StallGuard

__all__ = [
    "CameraAcquisitionError",
    "CameraInUseError",
    "CameraUnavailableError",
    "CatalogError",
    "FrameStallError",
    "FramesFolderCheck",
    "PrimeBSI",
    "RunNotFound",
    "StallGuard",
    "find_run",
    "open_catalog",
    "sim",
]
