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


def test_a_disarmed_monitor_armed_again_watches_the_new_timeout():
    """Disarming does not wake the thread (it notices at the deadline it sleeps to); an
    arming that must be looked at sooner than that deadline does wake it."""
    fired = []
    done = threading.Event()

    def on_stall(token, age):
        fired.append((token, age))
        done.set()

    monitor = StallMonitor(name="test")
    try:
        first = monitor.arm(3600.0, on_stall)  # the thread sleeps towards an hour from now
        for _ in range(50):  # a step scan's points: armed, disarmed, armed again
            monitor.disarm(first)
            first = monitor.arm(3600.0, on_stall)
        monitor.disarm(first)
        second = monitor.arm(0.05, on_stall)
        assert done.wait(10), "the shorter timeout was not watched"
        assert fired[0][0] == second and fired[0][1] >= 0.05
        monitor.disarm(second)
    finally:
        monitor.close()
