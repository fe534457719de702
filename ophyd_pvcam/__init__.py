"""Teledyne Photometrics PVCAM cameras (Prime BSI) as Bluesky/ophyd devices."""

from . import sim

if sim.requested_by_environment():
    sim.load()

from .camera import CameraInUseError, CameraUnavailableError
from .catalog import CatalogError, open_catalog
from .device import PrimeBSI
from .stall import CameraAcquisitionError, FrameStallError, StallGuard

__all__ = [
    "CameraAcquisitionError",
    "CameraInUseError",
    "CameraUnavailableError",
    "CatalogError",
    "FrameStallError",
    "PrimeBSI",
    "StallGuard",
    "open_catalog",
    "sim",
]
