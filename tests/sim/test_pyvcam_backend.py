"""The pyvcam backend on the simulator: what only pyvcam's own behaviour can show."""

from __future__ import annotations

import numpy as np
import pytest
from pyvcam import constants as const
from pyvcam import pvc

import ophyd_pvcam.sim as sim
from ophyd_pvcam.hardware import CameraError, CameraSetup, Mode, PyvcamBackend, StreamSpec

SETUP = CameraSetup(
    exposure_us=1000,
    roi=(0, 0, 128, 64),
    binning=1,
    readout_port="Sensitivity",
    speed_index=0,
    gain_index=1,
    clear_mode="Pre-Sequence",
    trigger_mode="Internal Trigger",
    expose_out_mode="First Row",
    temperature_setpoint=-20.0,
    fan_speed="High",
)


@pytest.fixture
def backend(pvcam_initialized):
    camera = PyvcamBackend("test", None, True)
    yield camera
    camera.stop()
    camera.close()


def test_a_refused_start_leaves_no_frame_callback_registered(backend, monkeypatch):
    """pyvcam registers its EOF callback before starting and only finish() removes it;
    registering it again without that makes real cameras stop calling it after a few
    frames (the simulator's callback_reregister fault models that report)."""
    sim.inject_fault("callback_reregister", after_frames=5)
    backend.apply(SETUP)
    # bare TIMED_MODE, which pyvcam's setter refuses but a driver can still send: the
    # start fails with error 185, as reported from real hardware (after pyvcam has
    # registered its callback)
    start_live = pvc.start_live

    def in_bare_timed_mode(handle, rois, exposure, mode, *rest):
        return start_live(handle, rois, exposure, const.TIMED_MODE, *rest)

    with monkeypatch.context() as patch:
        patch.setattr(pvc, "start_live", in_bare_timed_mode)
        with pytest.raises(CameraError, match=r"refused to start.*185"):
            backend.start(StreamSpec(Mode.FREE, 0, 16))
    backend.start(StreamSpec(Mode.FREE, 0, 16))
    frame = np.empty((64, 128), np.uint16)
    numbers = []
    for _ in range(200):
        info = backend.poll(1.0, frame)
        if info is None:
            break
        numbers.append(info.number)
        if len(numbers) == 30:
            break
    assert numbers == list(range(1, 31))  # callbacks did not die after 5 frames
