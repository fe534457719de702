"""The camera as an ophyd-async device: a count, then a fly scan collected while it runs.

Run as is on the simulator (OPHYD_PVCAM_SIM=1 is set below if no vendor PVCAM is
wanted); needs the 'async' extra: pip install 'ophyd-pvcam[async]'.
"""

import os

import bluesky.plan_stubs as bps
import bluesky.plans as bp
from ophyd_async.core import TriggerInfo, init_devices

from ophyd_pvcam.asyncio import PvcamDetector
from ophyd_pvcam.device import make_run_engine

os.environ.setdefault("OPHYD_PVCAM_SIM", "1")
RE, catalog = make_run_engine()
with init_devices():
    cam = PvcamDetector()


def fly(frames: int):
    """Every frame into one file; StreamDatums handed over while the camera runs."""
    yield from bps.stage(cam, wait=True)
    uid = yield from bps.open_run()
    yield from bps.prepare(cam, TriggerInfo(number_of_events=frames), wait=True)
    yield from bps.declare_stream(cam, name="primary")
    yield from bps.kickoff(cam, wait=True)
    yield from bps.collect_while_completing([cam], [cam], flush_period=0.5)
    yield from bps.close_run()
    yield from bps.unstage(cam, wait=True)
    return uid


try:
    RE(bps.mv(cam.roi, [768, 768, 512, 512], cam.exposure_time, 0.01))
    (uid,) = RE(bp.count([cam], num=3))
    print(f"count {uid[:8]}: images {catalog[uid]['primary']['cam_image'].read().shape}")
    (uid,) = RE(fly(400))
    stream = catalog[uid]["primary"]
    lost = int(stream["cam_lost_before"].read().sum())
    print(f"fly {uid[:8]}: {len(stream['cam_frame_number'].read())} frames, {lost} lost")
    print(cam.loss_summary() or "no frame lost")
finally:
    cam.close()
