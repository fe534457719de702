# The camera: the Prime BSI when the vendor PVCAM is installed, else the simulator
# (announced loudly).  OPHYD_PVCAM_SIM=1 forces the simulator.
from ophyd_pvcam import FrameStallError, sim  # noqa: F401
from ophyd_pvcam.device import make_camera

cam = make_camera("cam")
cam.exposure_time.put(0.01)
