"""A fly scan: the camera free-runs and every frame becomes an event.

Run as is: uses the real camera when PVCAM is installed, else the simulator.
"""

import bluesky.plans as bp

from ophyd_pvcam.device import make_camera, make_run_engine

RE, catalog = make_run_engine()
cam = make_camera("cam")
try:
    cam.roi.set((768, 768, 512, 512)).wait(10)  # x, y, width, height (unbinned pixels)
    cam.exposure_time.set(0.01).wait(10)
    cam.num_frames.set(400).wait(10)  # 0 would mean: until complete() is called
    (uid,) = RE(bp.fly([cam]))

    frames = catalog[uid]["cam"]
    numbers = frames["cam_frame_number"].read()
    lost = int(frames["cam_lost_before"].read().sum())
    times = frames["cam_frame_time"].read()  # the camera's clock, as wall time
    rate = (len(numbers) - 1) / (times[-1] - times[0])
    print(
        f"{uid[:8]}: {len(numbers)} frames, numbers {numbers[0]}..{numbers[-1]}, "
        f"{lost} lost, {rate:.1f} frames/s by the camera's clock"
    )
finally:
    cam.close()
