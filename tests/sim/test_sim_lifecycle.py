"""Library lifetime, multiple cameras, and PVCAM-style errors for bad calls."""

from __future__ import annotations

import pytest
from pyvcam import constants as const
from pyvcam import pvc
from pyvcam.camera import Camera

import ophyd_pvcam.sim as sim


def test_init_twice_is_refused_and_init_uninit_can_repeat(pvcam_initialized):
    with pytest.raises(RuntimeError, match="already initialized"):
        pvc.init_pvcam()
    for _ in range(3):
        pvc.uninit_pvcam()
        pvc.init_pvcam()
        cam = next(Camera.detect_camera())
        cam.open()
        assert cam.get_frame(exp_time=1, timeout_ms=2000).shape == (2048, 2048)
        cam.close()


def test_uninit_stops_a_running_acquisition(pvcam_initialized):
    cam = next(Camera.detect_camera())
    cam.open()
    cam.start_live(exp_time=1)
    cam.poll_frame(timeout_ms=2000)
    pvc.uninit_pvcam()  # must not hang or leave a thread behind
    pvc.init_pvcam()
    with pytest.raises(RuntimeError):
        pvc.get_cam_fw_version(cam.handle)  # the handle died with the library


def test_open_close_reopen(camera):
    camera.close()
    camera.open()
    camera.close()
    camera.open()
    assert camera.is_open


def test_a_camera_opens_once(camera):
    other = Camera(camera.name)
    with pytest.raises(RuntimeError, match="Failed to open camera") as info:
        other.open()
    assert "already open" in str(info.value.__cause__)


# ---- bad calls get PVCAM-style errors, not crashes ----------------------------


def _region(s1, s2, sbin, p1, p2, pbin):
    roi = Camera.RegionOfInterest(0, 0, 1, 0, 0, 1)
    roi.s1, roi.s2, roi.sbin, roi.p1, roi.p2, roi.pbin = s1, s2, sbin, p1, p2, pbin
    return roi


@pytest.mark.parametrize(
    ("roi", "message"),
    [
        (_region(0, 2048, 1, 0, 99, 1), "outside the 2048x2048 sensor"),
        (_region(0, 2047, 3, 0, 2046, 3), "Binning 3x3 is not offered"),
        (_region(0, 2047, 2, 0, 2047, 1), "Binning 2x1 is not offered"),
        (_region(0, 100, 2, 0, 99, 2), "not a multiple of the binning"),
    ],
)
def test_bad_regions_are_refused(camera, roi, message):
    with pytest.raises(RuntimeError, match=message):
        pvc.start_live(camera.handle, [roi], 10, const.EXT_TRIG_INTERNAL, 16, None)


def test_bad_port_speed_gain_indices_are_refused(camera):
    with pytest.raises(RuntimeError, match="not offered"):
        pvc.set_param(camera.handle, const.PARAM_READOUT_PORT, 5)
    with pytest.raises(RuntimeError, match=r"outside 0\.\.0"):
        pvc.set_param(camera.handle, const.PARAM_SPDTAB_INDEX, 1)
    with pytest.raises(RuntimeError, match=r"outside 1\.\.2"):
        pvc.set_param(camera.handle, const.PARAM_GAIN_INDEX, 3)
    with pytest.raises(RuntimeError, match="read-only"):
        pvc.set_param(camera.handle, const.PARAM_SER_SIZE, 100)
    # pyvcam's own checks use the ranges the camera reports
    with pytest.raises(ValueError, match="speed entries"):
        camera.speed = 4
    with pytest.raises(ValueError, match="gain indices from 1 to 2"):
        camera.gain = 9


def test_unavailable_parameters_say_so(camera):
    assert camera.check_param(const.PARAM_PP_INDEX) is False
    with pytest.raises(AttributeError, match="not available"):
        camera.get_param(const.PARAM_PP_INDEX)


def test_starting_twice_is_refused(camera):
    camera.start_live(exp_time=1)
    try:
        with pytest.raises(RuntimeError, match="already running"):
            pvc.start_set_live(camera.handle)
    finally:
        camera.finish()


def test_polling_a_camera_that_is_not_acquiring(camera):
    with pytest.raises(RuntimeError, match="Acquisition not active"):
        camera.poll_frame(timeout_ms=100)


def test_loaded_library_is_the_simulator():
    assert sim.is_loaded()
    assert sim.library_path().name.startswith("_libpvcam")
