"""The simulated Prime BSI as pyvcam sees it: identity, tables and settings."""

from __future__ import annotations

import pytest
from pyvcam import constants as const
from pyvcam.camera import Camera

FULL_ROWS = 2048
ROW_TIME_16BIT_US = 10.39  # modelled line time: 2048 rows -> ~47 fps
ROW_TIME_11BIT_US = 5.195


def test_detect_camera_finds_one_prime_bsi(pvcam_initialized):
    names = Camera.get_available_camera_names()
    assert names == ["pvcamSim_0"]
    cam = next(Camera.detect_camera())
    cam.open()
    try:
        assert cam.get_param(const.PARAM_PRODUCT_NAME) == "Prime BSI"
        assert cam.get_param(const.PARAM_VENDOR_NAME) == "Teledyne Photometrics"
        assert cam.chip_name == "GSENSE2020BSI"
        assert cam.serial_no.startswith("SIM-")
        assert cam.cam_fw == "1.9"
    finally:
        cam.close()


def test_sensor_geometry(camera):
    assert camera.sensor_size == (2048, 2048)
    for param in (const.PARAM_PIX_SER_SIZE, const.PARAM_PIX_PAR_SIZE):
        assert camera.get_param(param) == 6500  # nm
    assert camera.shape() == (2048, 2048)


def test_port_speed_gain_table_as_modelled(camera):
    table = camera.port_speed_gain_table
    assert set(table) == {"Sensitivity", "Speed"}
    hdr = table["Sensitivity"]["100 MHz"]
    assert hdr["pixel_time"] == 10
    assert hdr["HDR"] == {"gain_index": 1, "bit_depth": 16}
    assert hdr["CMS"] == {"gain_index": 2, "bit_depth": 12}
    fast = table["Speed"]["200 MHz"]
    assert fast["pixel_time"] == 5
    assert fast["gain_range"] == [1, 2, 3]
    assert {fast[name]["bit_depth"] for name in ("Full well", "Balanced", "Sensitivity")} == {11}
    # pyvcam leaves the camera on port 0, speed 0, gain 1 after learning the table
    assert (camera.readout_port, camera.speed, camera.gain) == (0, 0, 1)
    assert camera.bit_depth == 16


def test_vendor_enumerations_are_listed_by_name(camera):
    assert camera.exp_modes == {
        "Internal Trigger": const.EXT_TRIG_INTERNAL,
        "Trigger First": const.EXT_TRIG_TRIG_FIRST,
        "Edge Trigger": const.EXT_TRIG_EDGE_RISING,
        "Software Trigger First": const.EXT_TRIG_SOFTWARE_FIRST,
        "Software Trigger Edge": const.EXT_TRIG_SOFTWARE_EDGE,
    }
    assert camera.exp_out_modes["Rolling Shutter"] == const.EXPOSE_OUT_ROLLING_SHUTTER
    assert "Pre-Sequence" in camera.clear_modes
    assert set(camera.fan_speeds) == {"High", "Medium", "Low", "Off"}
    assert set(camera.exp_resolutions) == {"One Millisecond", "One Microsecond"}
    assert camera.binnings == [(1, 1), (2, 2), (4, 4)]


def test_readout_time_follows_rows_and_speed(camera):
    camera.exp_time = 1
    assert camera.readout_time == pytest.approx(FULL_ROWS * ROW_TIME_16BIT_US, rel=1e-3)
    camera.set_roi(0, 0, 2048, 512)
    camera.get_frame(timeout_ms=2000)  # readout time reflects the last setup
    assert camera.readout_time == pytest.approx(512 * ROW_TIME_16BIT_US, rel=1e-3)
    camera.readout_port = "Speed"
    camera.get_frame(timeout_ms=2000)
    assert camera.readout_time == pytest.approx(512 * ROW_TIME_11BIT_US, rel=1e-3)
    assert camera.bit_depth == 11


def test_temperature_and_setpoint(camera):
    assert camera.temp_setpoint == -20.0
    assert -20.0 <= camera.temp <= 25.0
    camera.temp_setpoint = -10.0
    assert camera.temp_setpoint == -10.0
    with pytest.raises(ValueError, match="Valid temps"):
        camera.temp_setpoint = -40.0
    camera.fan_speed = "Low"
    assert camera.fan_speed == camera.fan_speeds["Low"]


def test_roi_and_binning_change_the_frame_shape(camera):
    camera.set_roi(100, 200, 512, 256)
    assert camera.get_frame(exp_time=1, timeout_ms=2000).shape == (256, 512)
    camera.binning = 2
    assert camera.get_frame(exp_time=1, timeout_ms=2000).shape == (128, 256)
    camera.binning = 4
    assert camera.get_frame(exp_time=1, timeout_ms=2000).shape == (64, 128)


def test_pixels_respect_the_bit_depth_and_are_not_flat(camera):
    camera.set_roi(0, 0, 512, 512)
    for port, bits in (("Sensitivity", 16), ("Speed", 11)):
        camera.readout_port = port
        frame = camera.get_frame(exp_time=1, timeout_ms=2000)
        assert int(frame.max()) <= 2**bits - 1
        assert frame[2:].std() > 0.01 * 2**bits  # a scene, not a constant


def test_pixels_are_reproducible_and_differ_between_frames(camera):
    camera.set_roi(0, 0, 256, 256)
    first = camera.get_sequence(3, exp_time=1, timeout_ms=2000)
    again = camera.get_sequence(3, exp_time=1, timeout_ms=2000)
    # get_sequence takes single-frame sequences, so every frame is FrameNr 1
    assert (first == again).all()
    camera.start_seq(exp_time=1, num_frames=2)
    a, _, _ = camera.poll_frame(timeout_ms=2000)
    b, _, _ = camera.poll_frame(timeout_ms=2000)
    camera.finish()
    assert not (a["pixel_data"][1:] == b["pixel_data"][1:]).all()
