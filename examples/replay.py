"""Replay a past run from the catalog: save one frame and a time series as PNG.

python replay.py            # the newest run holding camera images
python replay.py 1a2b3c4d   # a run by (the start of) its uid
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ophyd_pvcam import open_catalog

catalog = open_catalog()
if len(sys.argv) > 1:
    uid = next(key for key in catalog if key.startswith(sys.argv[1]))
else:
    uid = next(
        key
        for key in reversed(list(catalog))
        if "cam_image" in {k for stream in catalog[key] for k in catalog[key][stream]}
    )
run = catalog[uid]
stream = next(s for s in run if "cam_image" in run[s])
images = run[stream]["cam_image"].read()  # (events, frames per event, rows, columns)
frames = images.reshape(-1, *images.shape[-2:])
# fly scans carry each frame's time from the camera's clock; step scans the event time
time_key = "cam_frame_time" if "cam_frame_time" in run[stream] else "time"
times = np.repeat(run[stream][time_key].read(), images.shape[1])
print(
    f"run {uid[:8]} ({run.metadata['start']['plan_name']}): {len(frames)} frames "
    f"{frames.shape[2]}x{frames.shape[1]} {frames.dtype}"
)

figure, axes = plt.subplots(figsize=(6.4, 5.4), constrained_layout=True)
shown = axes.imshow(frames[-1], cmap="gray", interpolation="nearest")
axes.set(title=f"run {uid[:8]}, last frame", xlabel="x (binned pixel)", ylabel="y (binned pixel)")
figure.colorbar(shown, ax=axes, label="intensity (ADU)")
figure.savefig("replay_frame.png", dpi=100)

figure, axes = plt.subplots(figsize=(7, 4), constrained_layout=True)
elapsed = times - times[0]
axes.plot(elapsed, frames.reshape(len(frames), -1).mean(axis=1), marker=".", linewidth=0.8)
axes.set(
    title=f"run {uid[:8]}: mean intensity per frame",
    xlabel="time since first frame (s)",
    ylabel="mean intensity (ADU)",
)
axes.grid(alpha=0.3)
figure.savefig("replay_timeseries.png", dpi=100)
print("wrote replay_frame.png and replay_timeseries.png")
