"""The Prime BSI as a triggerable detector in count and scan plans."""

from __future__ import annotations

import contextlib
import dataclasses
import threading

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import numpy as np
import pytest
from bluesky.protocols import Flyable, Readable, Triggerable, WritesExternalAssets
from helpers import file_frames, frame_files, read_run_in_new_process
from ophyd.sim import det, motor

import ophyd_pvcam.sim as sim
from ophyd_pvcam import CameraAcquisitionError, CameraInUseError, PrimeBSI


def small(cam, width=256, height=128, exposure=0.002):
    cam.roi.set((0, 0, width, height)).wait(5)
    cam.exposure_time.set(exposure).wait(5)


def stamps(images: np.ndarray) -> list[list[int]]:
    return [[sim.frame_number(frame) for frame in point] for point in images]


def test_the_device_meets_the_bluesky_protocols(cam):
    for protocol in (Readable, Triggerable, Flyable, WritesExternalAssets):
        assert isinstance(cam, protocol)


def test_count_replays_pixel_for_pixel_in_a_new_process(cam, RE, data_dir, tmp_path):
    small(cam)
    (uid,) = RE(bp.count([cam], num=5))
    images, info = read_run_in_new_process(
        data_dir / "catalog", uid, "primary", "cam_image", tmp_path
    )
    assert images.shape == (5, 1, 128, 256)
    assert images.dtype == np.uint16
    (path,) = frame_files(cam.write_path)
    on_disk, records = file_frames(path)
    assert np.array_equal(images.reshape(on_disk.shape), on_disk)
    assert stamps(images) == [[1], [2], [3], [4], [5]]
    assert list(records["frame_number"]) == [1, 2, 3, 4, 5]
    assert info["stop"]["exit_status"] == "success"
    config = info["configuration"]["cam"]["data"]
    assert config["cam_exposure_time"] == 0.002
    assert config["cam_roi"] == [0, 0, 256, 128]
    assert config["cam_readout_port"] == "Sensitivity"
    assert config["cam_gain_name"] == "HDR"
    assert config["cam_bit_depth"] == 16
    assert config["cam_simulated"] is True
    assert config["cam_model"] == "Prime BSI"
    assert config["cam_serial_number"].startswith("SIM-")
    assert -30 < config["cam_temperature"] < 30


def test_read_gives_the_datum_and_point_statistics(cam, RE):
    small(cam)
    RE(bp.count([cam], num=2))
    event = RE.recorder.of("event")[-1]
    data = event["data"]
    assert data["cam_image"].count("/") == 1  # a datum id
    assert data["cam_frame_number"] == 2
    assert 0 < data["cam_mean"] < 65535
    assert data["cam_mean"] < data["cam_max"] <= 65535
    assert data["cam_frames_acquired"] == 2
    assert data["cam_dropped_frames"] == 0
    assert data["cam_stalled"] is False
    (descriptor,) = RE.recorder.of("descriptor")
    image_key = descriptor["data_keys"]["cam_image"]
    assert image_key["shape"] == [1, 128, 256]
    assert image_key["external"] == "FILESTORE:"
    assert image_key["dtype_numpy"] == "<u2"
    (resource,) = RE.recorder.of("resource")
    assert resource["spec"] == "AD_HDF5"
    assert resource["resource_kwargs"] == {"frame_per_point": 1}


def test_scan_with_a_motor_and_several_frames_per_point(cam, RE, catalog):
    small(cam)
    cam.frames_per_point.set(3).wait(5)
    (uid,) = RE(bp.scan([cam, det], motor, -1, 1, 4))
    primary = catalog[uid]["primary"]
    images = primary["cam_image"].read()
    assert images.shape == (4, 3, 128, 256)
    assert stamps(images) == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]
    assert list(primary["motor"].read()) == pytest.approx([-1, -1 / 3, 1 / 3, 1])


def test_each_point_is_exposed_after_its_trigger_and_never_reused(cam, RE):
    """Frame numbers are contiguous and unique across points, and every point's
    exposure begins (camera clock) after the previous point had been read out:
    the camera waits for each trigger instead of free-running."""
    small(cam)
    cam.frames_per_point.set(2).wait(5)
    made_before = sim.frames_generated(0)
    RE(bp.count([cam], num=4, delay=0.2))
    (path,) = frame_files(cam.write_path)
    _, records = file_frames(path)
    assert list(records["frame_number"]) == list(range(1, 9))
    bof, eof = records["timestamp_bof"], records["timestamp_eof"]
    for point in range(1, 4):
        first = 2 * point
        assert bof[first] > eof[first - 1]  # began after the last point ended
    # the camera idled through the plan's delays instead of free-running: it made
    # exactly the 8 frames that were asked for
    assert sim.frames_generated(0) - made_before == 8


def test_databroker_fills_the_same_pixels_through_ad_hdf5(cam, RE):
    import databroker

    small(cam)
    RE(bp.count([cam], num=3))
    broker = databroker.temp()
    for name, doc in RE.recorder.docs:
        broker.insert(name, doc)
    uid = RE.recorder.of("start")[0]["uid"]
    filled = broker.v2[uid]["primary"]["data"]["cam_image"].read()
    (path,) = frame_files(cam.write_path)
    on_disk, _ = file_frames(path)
    assert np.array_equal(np.asarray(filled).reshape(on_disk.shape), on_disk)


@pytest.mark.parametrize(
    ("settings", "shape", "bits"),
    [
        ({"roi": (0, 0, 512, 256)}, (256, 512), 16),
        ({"roi": (0, 0, 512, 256), "binning": 2}, (128, 256), 16),
        ({"binning": 4}, (512, 512), 16),
        ({"roi": (0, 0, 512, 256), "readout_port": "Speed"}, (256, 512), 11),
        ({"roi": (0, 0, 512, 256), "gain_index": 2}, (256, 512), 12),
    ],
)
def test_settings_show_in_shape_dtype_and_bit_depth(cam, RE, catalog, settings, shape, bits):
    for attr, value in settings.items():
        getattr(cam, attr).set(value).wait(5)
    cam.exposure_time.set(0.001).wait(5)
    (uid,) = RE(bp.count([cam], num=2))
    images = catalog[uid]["primary"]["cam_image"].read()
    assert images.shape == (2, 1, *shape)
    assert images.dtype == np.uint16
    assert int(images.max()) <= 2**bits - 1
    assert cam.bit_depth.get() == bits


def test_exposure_port_and_roi_set_the_frame_period(cam):
    cam.exposure_time.set(0.001).wait(5)
    cam.kickoff().wait(10)  # the camera reports its readout time once it runs
    cam.complete().wait(30)
    list(cam.collect_pages())
    full_16 = cam.frame_period.get()
    cam.readout_port.set("Speed").wait(5)
    cam.kickoff().wait(10)
    cam.complete().wait(30)
    list(cam.collect_pages())
    full_11 = cam.frame_period.get()
    cam.roi.set((0, 0, 2048, 512)).wait(5)
    cam.kickoff().wait(10)
    cam.complete().wait(30)
    list(cam.collect_pages())
    quarter_11 = cam.frame_period.get()
    cam.exposure_time.set(0.05).wait(5)
    assert full_16 == pytest.approx(0.02128, rel=0.01)  # ~47 fps
    assert full_11 == pytest.approx(full_16 / 2, rel=0.01)  # ~94 fps
    assert quarter_11 == pytest.approx(full_11 / 4, rel=0.01)
    assert cam.frame_period.get() == pytest.approx(0.05)  # exposure-limited


@pytest.mark.parametrize(
    ("attr", "value", "message"),
    [
        ("exposure_time", 0, r"exposure_time=0 s is outside .* more than 0 and at most 3600 s"),
        ("exposure_time", -0.5, "exposure_time=-0.5 s is outside"),
        ("exposure_time", 5000, "at most 3600 s"),
        ("roi", (0, 0, 4096, 10), r"extends beyond the 2048 x 2048 sensor"),
        ("roi", (2000, 0, 100, 10), r"x \+ width must be <= 2048"),
        ("roi", (0, 0, 10), "four integers"),
        ("binning", 3, r"binning=3 is not offered .* \[1, 2, 4\]"),
        ("readout_port", "Turbo", r"'Turbo' is not offered .* 'Sensitivity' \(0\), 'Speed' \(1\)"),
        ("speed_index", 1, r"speed_index=1 is not offered on readout port 'Sensitivity'"),
        ("gain_index", 7, r"gain_index=7 is not offered .* 1 \(HDR, 16-bit\), 2 \(CMS, 12-bit\)"),
        ("trigger_mode", "Timed", "'Internal Trigger'"),
        ("frames_per_point", 0, r"outside the allowed range 1\.\.65535"),
        ("temperature_setpoint", -80, r"outside the allowed range -25\.\.25 degC"),
    ],
)
def test_bad_settings_are_refused_when_set_and_nothing_is_written(cam, attr, value, message):
    before = getattr(cam, attr).get()
    with pytest.raises(ValueError, match=message):
        getattr(cam, attr).set(value)
    with pytest.raises(ValueError, match=message):
        getattr(cam, attr).put(value)
    assert getattr(cam, attr).get() == before
    assert frame_files(cam.write_path) == []


def test_roi_must_align_with_the_binning(cam):
    cam.binning.set(4).wait(5)
    with pytest.raises(ValueError, match=r"not aligned to the binning 4"):
        cam.roi.set((0, 0, 102, 100))
    cam.binning.set(1).wait(5)
    cam.roi.set((0, 0, 102, 100)).wait(5)
    with pytest.raises(ValueError, match="does not divide the ROI 102 x 100"):
        cam.binning.set(4)


def test_a_bad_combination_is_refused_at_stage_before_any_file(cam, RE):
    cam.gain_index.put(3, force=True)  # as if set behind the device's back
    with pytest.raises(ValueError, match="gain_index=3 is not offered"):
        RE(bp.count([cam], num=1))
    assert frame_files(cam.write_path) == []
    cam.gain_index.set(1).wait(5)
    small(cam)
    RE(bp.count([cam], num=1))


def test_changing_port_keeps_speed_and_gain_valid(cam):
    cam.readout_port.set("Speed").wait(5)
    cam.speed_index.set(1).wait(5)
    cam.readout_port.set("Sensitivity").wait(5)
    assert (cam.speed_index.get(), cam.gain_index.get()) == (0, 1)
    assert cam.speed_name.get() == "100 MHz"


class Boom(Exception):
    pass


def test_a_failing_device_mid_plan_leaves_a_closed_file_and_a_usable_camera(cam, RE, catalog):
    small(cam)

    def plan():
        yield from bps.open_run()
        yield from bps.stage(cam)
        for point in range(3):
            yield from bps.trigger_and_read([cam])
            if point == 1:
                raise Boom("another device failed")
        yield from bps.unstage(cam)
        yield from bps.close_run()

    with pytest.raises(Boom):
        RE(plan())
    assert not cam.acquiring
    (path,) = frame_files(cam.write_path)
    on_disk, _ = file_frames(path)  # opens: the file was closed
    assert on_disk.shape[0] == 2
    assert RE.recorder.of("stop")[-1]["exit_status"] == "fail"
    (uid,) = RE(bp.count([cam], num=2))
    assert catalog[uid]["primary"]["cam_image"].read().shape == (2, 1, 128, 256)


def test_abort_of_a_paused_plan_leaves_a_closed_file_and_a_usable_camera(cam, RE):
    small(cam)

    def plan():
        yield from bps.open_run()
        yield from bps.stage(cam)
        yield from bps.trigger_and_read([cam])
        yield from bps.checkpoint()
        yield from bps.pause()
        yield from bps.trigger_and_read([cam])
        yield from bps.unstage(cam)
        yield from bps.close_run()

    from bluesky.utils import RunEngineInterrupted

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    RE.abort("operator aborted")
    assert RE.recorder.of("stop")[-1]["exit_status"] == "abort"
    assert not cam.acquiring
    (path,) = frame_files(cam.write_path)
    assert file_frames(path)[0].shape[0] == 1
    RE(bp.count([cam], num=1))


def test_a_readout_failure_fails_the_plan_cleanly(cam, RE, catalog):
    small(cam)
    sim.inject_fault("readout_failure", after_frames=2, times=1)
    with pytest.raises(CameraAcquisitionError, match="readout failure after frame 2"):
        RE(bp.count([cam], num=5))
    stop = RE.recorder.of("stop")[-1]
    assert stop["exit_status"] == "fail"
    assert "readout failure" in stop["reason"]
    (path,) = frame_files(cam.write_path)
    assert file_frames(path)[0].shape[0] == 2
    (uid,) = RE(bp.count([cam], num=3))
    assert stamps(catalog[uid]["primary"]["cam_image"].read()) == [[1], [2], [3]]


def test_several_runs_in_one_process(cam, RE, catalog):
    small(cam)
    uids = [RE(bp.count([cam], num=n))[0] for n in (1, 2, 3)]
    assert [catalog[u]["primary"]["cam_image"].read().shape[0] for u in uids] == [1, 2, 3]
    assert len(frame_files(cam.write_path)) == 3


def test_a_second_device_for_the_same_camera_is_told_it_is_in_use(cam):
    with pytest.raises(CameraInUseError, match=r"already in use by PrimeBSI 'cam'"):
        PrimeBSI("other", sim=True, write_path=cam.write_path)
    cam.close()
    other = PrimeBSI("other", sim=True, write_path=cam.write_path)
    try:
        assert other.camera_name.get() == "pvcamSim_0"
    finally:
        other.close()


def test_hardware_edge_triggers_drive_a_step_scan(cam, RE, catalog):
    """In "Edge Trigger" mode each trigger() takes the next frames from the trigger
    input; edges that come while no trigger() waits are not kept."""
    small(cam)
    cam.trigger_mode.set("Edge Trigger").wait(5)
    pulses = threading.Event()

    def trigger_source():  # a pulse generator, firing until the scan is over
        while not pulses.wait(0.02):
            with contextlib.suppress(sim.SimulatorError):  # into a camera not yet started
                sim.fire_edge(0)

    source = threading.Thread(target=trigger_source, daemon=True)

    def plan():
        yield from bps.open_run()
        yield from bps.stage(cam)
        source.start()
        for _ in range(3):
            yield from bps.trigger_and_read([cam])
            yield from bps.sleep(0.1)  # edges keep coming: these frames are not kept
        yield from bps.unstage(cam)
        return (yield from bps.close_run())

    try:
        (uid,) = RE(plan())
    finally:
        pulses.set()
        source.join(5)
    numbers = [e["data"]["cam_frame_number"] for e in RE.recorder.of("event")]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    assert numbers[-1] > 3  # frames between points came and were let go
    assert catalog[uid]["primary"]["cam_image"].read().shape == (3, 1, 128, 256)


def test_without_software_triggers_each_point_is_a_sequence(cam, RE, catalog):
    """A camera that lists no software trigger mode still step-scans: one sequence
    per point, so the camera's frame counter starts again at every point."""
    cam.capabilities = dataclasses.replace(
        cam.capabilities,
        trigger_modes={
            k: v for k, v in cam.capabilities.trigger_modes.items() if "Software" not in k
        },
    )
    small(cam)
    cam.frames_per_point.set(2).wait(5)
    (uid,) = RE(bp.count([cam], num=3))
    assert stamps(catalog[uid]["primary"]["cam_image"].read()) == [[1, 2], [1, 2], [1, 2]]


def test_settings_may_change_between_points_but_not_the_frame_layout(cam, RE, catalog):
    small(cam)

    def plan():
        yield from bps.open_run()
        yield from bps.stage(cam)
        yield from bps.trigger_and_read([cam])
        yield from bps.mv(cam.exposure_time, 0.02)  # the camera restarts with it
        yield from bps.trigger_and_read([cam])
        yield from bps.unstage(cam)
        return (yield from bps.close_run())

    RE(plan())
    (path,) = frame_files(cam.write_path)
    _, records = file_frames(path)
    exposures = records["timestamp_eof"] - records["timestamp_bof"] - 128 * 10.39e-6
    assert exposures == pytest.approx([0.002, 0.02], abs=1e-4)

    def bad_plan():
        yield from bps.open_run()
        yield from bps.stage(cam)
        yield from bps.trigger_and_read([cam])
        yield from bps.mv(cam.roi, (0, 0, 64, 64))
        yield from bps.trigger_and_read([cam])
        yield from bps.unstage(cam)
        yield from bps.close_run()

    with pytest.raises(RuntimeError, match="cannot change while staged"):
        RE(bad_plan())
