"""What a stall looks like: the simulated camera stops after frame 85.

The plan fails within the stall timeout with a diagnosis, the 85 frames are
on disk and in the catalog, and the next acquisition works.  Needs the
simulator (the fault is injected into it).
"""

import bluesky.plans as bp

import ophyd_pvcam.sim as sim
from ophyd_pvcam import FrameStallError
from ophyd_pvcam.device import make_camera, make_run_engine

RE, catalog = make_run_engine()
cam = make_camera("cam", simulated=True)
try:
    cam.roi.set((0, 0, 1024, 1024)).wait(10)
    cam.num_frames.set(500).wait(10)
    sim.inject_fault("stall", after_frames=85)  # what the other lab's camera did
    try:
        RE(bp.fly([cam]))
    except FrameStallError as stall:
        print("\nThe plan failed, as it should:\n" + str(stall))
    uid = list(catalog)[-1]
    run = catalog[uid]
    saved = run["cam"]["cam_frame_number"].read()
    print(
        f"\nrun {uid[:8]}: exit status {run.metadata['stop']['exit_status']!r}, "
        f"{len(saved)} frames saved (numbers {saved[0]}..{saved[-1]}), stalled={cam.stalled.get()}"
    )

    sim.clear_faults()  # the camera behaves again
    cam.num_frames.set(100).wait(10)
    (uid,) = RE(bp.fly([cam]))
    print(
        f"next run {uid[:8]}: {len(catalog[uid]['cam']['cam_frame_number'].read())} frames, "
        f"stalled={cam.stalled.get()}"
    )
finally:
    cam.close()
