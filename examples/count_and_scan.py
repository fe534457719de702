"""A count and a motor scan with the camera, recorded in the catalog.

Run as is: uses the real camera when PVCAM is installed, else the simulator.
"""

import bluesky.plans as bp
from ophyd.sim import SynAxis

from ophyd_pvcam.device import make_camera, make_run_engine

RE, catalog = make_run_engine()
cam = make_camera("cam")
motor = SynAxis(name="motor")
try:
    cam.roi.set((768, 768, 512, 512)).wait(10)  # x, y, width, height (unbinned pixels)
    cam.binning.set(2).wait(10)
    cam.exposure_time.set(0.02).wait(10)  # seconds

    (count_uid,) = RE(bp.count([cam], num=5))
    cam.frames_per_point.set(3).wait(10)  # three frames at every motor position
    (scan_uid,) = RE(bp.scan([cam], motor, -1, 1, 5))

    for uid in (count_uid, scan_uid):
        primary = catalog[uid]["primary"]
        images = primary["cam_image"].read()
        print(
            f"{uid[:8]} {catalog[uid].metadata['start']['plan_name']}: images {images.shape}, "
            f"mean per point {[round(float(m)) for m in primary['cam_mean'].read()]}"
        )
finally:
    cam.close()
