"""Teledyne Photometrics PVCAM cameras (Prime BSI) as Bluesky/ophyd devices.

The names below are loaded when first used, so that importing a lower layer
(``ophyd_pvcam.acquisition``, ``ophyd_pvcam.storage``) does not import ophyd,
bluesky or tiled.  ``OPHYD_PVCAM_SIM=1`` loads the simulated SDK when pyvcam is
first needed (``ophyd_pvcam.sim.load()`` does it at once).
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

import hdf5plugin  # noqa: F401  (frames are bitshuffle/LZ4: any reader here decodes them)

from ophyd_pvcam.errors import (
    AcquisitionInterrupted,
    CameraAcquisitionError,
    CameraInUseError,
    CameraLostError,
    CameraUnavailableError,
    DiskError,
    FrameStallError,
)

if TYPE_CHECKING:
    from ophyd_pvcam import sim
    from ophyd_pvcam.catalog import CatalogError, RunNotFound, find_run, open_catalog
    from ophyd_pvcam.device import FramesFolderCheck, PrimeBSI, StallGuard

# a library logs; the application (the profile, the CLI, a script) decides where to
logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "CatalogError": "ophyd_pvcam.catalog",
    "FramesFolderCheck": "ophyd_pvcam.device",
    "RunNotFound": "ophyd_pvcam.catalog",
    "find_run": "ophyd_pvcam.catalog",
    "open_catalog": "ophyd_pvcam.catalog",
    "PrimeBSI": "ophyd_pvcam.device",
    "StallGuard": "ophyd_pvcam.device",
}


def __getattr__(name: str) -> Any:
    if name == "sim":
        return importlib.import_module("ophyd_pvcam.sim")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ophyd_pvcam' has no attribute {name!r}")


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
