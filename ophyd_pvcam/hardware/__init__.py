"""The camera itself: the seam every camera call goes through.

``CameraBackend`` is the Protocol the acquisition layer drives (from its owner
thread only); ``PyvcamBackend`` implements it on the vendor's pyvcam (the only
importer of pyvcam), ``ophyd_pvcam.testing.FakeBackend`` in pure Python.
``ophyd_pvcam.hardware.sdk`` binds the few PVCAM calls pyvcam does not expose,
for the diagnostics.  Imports nothing above it.
"""

from ._backend import (
    CameraBackend,
    CameraError,
    CameraSetup,
    Capabilities,
    FrameInfo,
    Gain,
    Mode,
    Port,
    Readings,
    Speed,
    StreamSpec,
)
from ._pyvcam import PyvcamBackend, import_pyvcam, simulator_wanted, vendor_pvcam_available

__all__ = [
    "CameraBackend",
    "CameraError",
    "CameraSetup",
    "Capabilities",
    "FrameInfo",
    "Gain",
    "Mode",
    "Port",
    "PyvcamBackend",
    "Readings",
    "Speed",
    "StreamSpec",
    "import_pyvcam",
    "simulator_wanted",
    "vendor_pvcam_available",
]
