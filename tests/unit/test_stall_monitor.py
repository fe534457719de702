"""The stall monitor alone: it fires once, and only when frames stop (the device's stalls
on the simulator: ``tests/sim/test_stall.py``)."""

from __future__ import annotations

import threading
import time

from ophyd_pvcam.acquisition import StallMonitor


def test_the_monitor_fires_once_and_only_when_frames_stop():
    fired = []
    done = threading.Event()

    def on_stall(token, age):
        fired.append(age)
        done.set()

    monitor = StallMonitor(name="test")
    monitor.arm(0.3, on_stall)
    try:
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:  # frames keep coming: no stall
            monitor.feed()
            assert not done.wait(0.05)
        assert done.wait(5)
        assert len(fired) == 1 and fired[0] >= 0.3
        assert not threading.Event().wait(0.4) and len(fired) == 1
    finally:
        monitor.close()
