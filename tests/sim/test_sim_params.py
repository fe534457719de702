"""Every parameter pyvcam's Camera reads answers as a Prime BSI's would."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pyvcam import constants as const
from pyvcam.camera import Camera

from ophyd_pvcam.hardware.sdk import (
    CIRC_OVERWRITE,
    PL_CALLBACK_BOF,
    PL_CALLBACK_EOF,
    FrameCounter,
    Region,
    Sdk,
)

# pyvcam properties whose parameter a Prime BSI does not have (pyvcam raises its
# "not available" AttributeError), and why the simulator says so.
UNAVAILABLE = {
    # Variable Timed Mode: the camera lists only the extended trigger modes
    "vtm_exp_time": const.PARAM_EXP_TIME,
    # Centroids (PrimeLocate): not modelled; public reports on the Prime BSI disagree
    "centroids_mode": const.PARAM_CENTROIDS_MODE,
    # Programmable scan mode: a public hardware survey of a Prime BSI found none
    "prog_scan_mode": const.PARAM_SCAN_MODE,
    "prog_scan_dir": const.PARAM_SCAN_DIRECTION,
    "prog_scan_dir_reset": const.PARAM_SCAN_DIRECTION_RESET,
    "prog_scan_line_delay": const.PARAM_SCAN_LINE_DELAY,
    "prog_scan_line_time": const.PARAM_SCAN_LINE_TIME,
    "scan_line_time": const.PARAM_SCAN_LINE_TIME,
    "prog_scan_width": const.PARAM_SCAN_WIDTH,
}


def _properties() -> list[str]:
    return [name for name, value in vars(Camera).items() if isinstance(value, property)]


def test_every_pyvcam_property_answers_on_an_open_camera(camera):
    assert len(_properties()) > 60  # pyvcam 2.3.2 has 69
    refused = {}
    for name in _properties():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # bin_x, scan_line_time, ...
            try:
                getattr(camera, name)
            except AttributeError as error:
                refused[name] = str(error)
    assert set(refused) == set(UNAVAILABLE)
    assert all("is not available" in text for text in refused.values())
    for param in UNAVAILABLE.values():
        assert camera.check_param(param) is False


def test_property_values_of_the_modelled_camera(camera):
    assert camera.driver_version == "3.1.0"
    assert camera.bit_depth_host == camera.bit_depth == 16  # no PARAM_BIT_DEPTH_HOST
    assert camera.live_roi == {"s1": 0, "s2": 2047, "sbin": 1, "p1": 0, "p2": 2047, "pbin": 1}
    assert camera.trigger_table["Readout Time"].startswith("21278.72")
    assert camera.smart_stream_mode_enabled is False
    assert camera.smart_stream_mode == const.SMTMODE_ARBITRARY_ALL
    assert camera.smart_stream_exp_params == []
    assert camera.metadata_enabled is False


def test_parameters_pyvcam_examples_read(camera):
    """stream_to_disk.py reads PARAM_IMAGE_FORMAT after finish(); live_mode.py
    checks PARAM_COLOR_MODE (a mono camera reports it unavailable, pvcam.h)."""
    assert camera.get_param(const.PARAM_IMAGE_FORMAT) == const.PL_IMAGE_FORMAT_MONO16
    assert camera.get_param(const.PARAM_IMAGE_COMPRESSION) == const.PL_IMAGE_COMPRESSION_NONE
    assert camera.get_param(const.PARAM_CAM_INTERFACE_TYPE) == const.PL_CAM_IFC_TYPE_USB_3_0
    assert camera.get_param(const.PARAM_CAM_INTERFACE_MODE) == const.PL_CAM_IFC_MODE_IMAGING
    assert camera.read_enum(const.PARAM_CAM_INTERFACE_TYPE) == {
        "USB 3.0": const.PL_CAM_IFC_TYPE_USB_3_0
    }
    for param in (const.PARAM_COLOR_MODE, const.PARAM_BIT_DEPTH_HOST, const.PARAM_PP_INDEX):
        assert camera.check_param(param) is False


def test_frame_buffer_size_describes_the_last_setup(camera):
    assert camera.check_param(const.PARAM_FRAME_BUFFER_SIZE) is False  # before any setup
    camera.set_roi(0, 0, 256, 128)
    frame_bytes = 256 * 128 * 2
    camera.start_seq(exp_time=1, num_frames=5)
    camera.finish()
    assert camera.get_param(const.PARAM_FRAME_BUFFER_SIZE) == 5 * frame_bytes
    camera.start_live(exp_time=1)
    camera.finish()
    size = camera.get_param
    assert size(const.PARAM_FRAME_BUFFER_SIZE, const.ATTR_DEFAULT) == 16 * frame_bytes
    assert size(const.PARAM_FRAME_BUFFER_SIZE, const.ATTR_MIN) == frame_bytes
    assert size(const.PARAM_FRAME_BUFFER_SIZE, const.ATTR_MAX) < 2**32
    assert camera.live_roi == {"s1": 0, "s2": 255, "sbin": 1, "p1": 0, "p2": 127, "pbin": 1}


# ---- S.M.A.R.T. streaming --------------------------------------------------------


def _frame_records(camera, count: int) -> list[tuple[int, int, int]]:
    """(FrameNr, TimeStampBOF, TimeStamp) of the first frames, 0.1 ms units."""
    sdk = Sdk()
    region = Region.of(0, 0, 64, 64)  # readout 64 x 10.39 us = 0.66 ms
    frame_bytes = sdk.setup_cont(camera.handle, region, 1, CIRC_OVERWRITE)
    buffer = np.zeros(frame_bytes * 8 // 2, dtype=np.uint16)
    counter, records = FrameCounter(), []

    def on_eof(info):
        records.append((info.FrameNr, info.TimeStampBOF, info.TimeStamp))
        counter(info)

    sdk.on_frame(camera.handle, PL_CALLBACK_EOF, on_eof)
    sdk.start_cont(camera.handle, buffer)
    try:
        assert counter.wait_beyond(count - 1, timeout=10)
    finally:
        sdk.abort(camera.handle)
        sdk.clear_callback(camera.handle, PL_CALLBACK_EOF)
    return records[:count]


def test_smart_streaming_applies_its_exposures_frame_by_frame(camera):
    camera.smart_stream_exp_params = [5, 10, 20]
    camera.smart_stream_mode_enabled = True
    assert camera.smart_stream_exp_params == [5, 10, 20]
    assert camera.get_param(const.PARAM_SMART_STREAM_EXP_PARAMS, const.ATTR_COUNT) == 3
    records = _frame_records(camera, 7)
    assert [r[0] for r in records] == list(range(1, 8))
    exposures = [r[2] - r[1] - 7 for r in records]  # minus the 0.66 ms readout
    assert [round(e, -1) for e in exposures] == [50, 100, 200, 50, 100, 200, 50]
    steps = np.diff([r[1] for r in records])
    assert all(abs(s - e) <= 1 for s, e in zip(steps, [50, 100, 200, 50, 100, 200], strict=True))


def test_smart_streaming_disabled_uses_the_setup_exposure(camera):
    camera.smart_stream_exp_params = [5, 10, 20]  # uploaded, but not enabled
    records = _frame_records(camera, 4)
    assert all(r[2] - r[1] in {16, 17} for r in records)  # 1 ms + 0.66 ms


def test_smart_streaming_limits(camera):
    limit = camera.get_param(const.PARAM_SMART_STREAM_EXP_PARAMS, const.ATTR_MAX)
    assert limit == [0] * 16  # pyvcam lists ATTR_MAX as that many zeroes
    with pytest.raises(RuntimeError, match="takes up to 16"):
        camera.smart_stream_exp_params = list(range(1, 18))
    camera.smart_stream_exp_params = [3]
    camera.smart_stream_mode_enabled = True
    with pytest.raises(RuntimeError, match="must not be 0"):
        camera.start_live(exp_time=0)  # pvcam.h: the setup's exposure must be non-zero
    camera.finish()


def test_bof_callbacks_follow_smart_exposures_too(camera):
    camera.smart_stream_exp_params = [2, 4]
    camera.smart_stream_mode_enabled = True
    sdk = Sdk()
    frame_bytes = sdk.setup_cont(camera.handle, Region.of(0, 0, 64, 64), 1, CIRC_OVERWRITE)
    buffer = np.zeros(frame_bytes * 8 // 2, dtype=np.uint16)
    bofs, counter = [], FrameCounter()

    def on_bof(info):
        bofs.append(info.TimeStampBOF)
        counter(info)

    sdk.on_frame(camera.handle, PL_CALLBACK_BOF, on_bof)
    sdk.start_cont(camera.handle, buffer)
    try:
        assert counter.wait_beyond(4, timeout=10)
    finally:
        sdk.abort(camera.handle)
        sdk.clear_callback(camera.handle, PL_CALLBACK_BOF)
    steps = np.diff(bofs[:5])
    assert all(abs(s - e) <= 1 for s, e in zip(steps, [20, 40, 20, 40], strict=True))
