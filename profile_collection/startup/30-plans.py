# Plans, imported by name (the queue server offers every plan in this namespace).
from bluesky.plans import count, fly, scan  # noqa: F401

from ophyd_pvcam.device import count_frames, dark_series, fly_frames, stall_probe  # noqa: F401
