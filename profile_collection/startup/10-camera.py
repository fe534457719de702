# The camera: the Prime BSI when the vendor PVCAM is installed, else the simulator
# (announced loudly).  OPHYD_PVCAM_SIM=1 forces the simulator.
# OPHYD_PVCAM_FACE=async gives the camera as an ophyd-async device instead
# (ophyd_pvcam.asyncio.PvcamDetector; needs the 'async' extra): prepare it with a
# TriggerInfo in fly plans; bp.count works as it is.
import os

from ophyd_pvcam import FrameStallError, sim  # noqa: F401

if os.environ.get("OPHYD_PVCAM_FACE", "ophyd") == "async":
    from ophyd_async.core import init_devices

    from ophyd_pvcam.asyncio import PvcamDetector

    with init_devices():
        cam = PvcamDetector()
    RE(cam.exposure_time.set(0.01))  # noqa: F821  (RE: 00-base.py)
else:
    from ophyd_pvcam.device import make_camera

    cam = make_camera("cam")
    cam.exposure_time.put(0.01)
