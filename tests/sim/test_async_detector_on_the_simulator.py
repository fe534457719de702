"""The ophyd-async face on the C simulator (the vendor's pyvcam on the simulated SDK):
plans end to end into the catalog, replayed in a new Python equal to the file; edge
triggers from the simulator's pulse input; one camera, one face at a time."""

from __future__ import annotations

import contextlib
import re
import threading

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import numpy as np
import pytest
from event_model import DocumentNames, schema_validators
from helpers import file_frames, read_run_in_new_process
from ophyd_async.core import (
    DetectorTrigger,
    StaticFilenameProvider,
    StaticPathProvider,
    TriggerInfo,
    init_devices,
)

import ophyd_pvcam.sim as sim
from ophyd_pvcam import CameraInUseError, PrimeBSI
from ophyd_pvcam.asyncio import PvcamDetector


@pytest.fixture
def acam(data_dir, request, RE):
    folder = data_dir / "frames" / re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    with init_devices():
        acam = PvcamDetector(
            sim=True, path_provider=StaticPathProvider(StaticFilenameProvider("acam"), folder)
        )
    RE(bps.mv(acam.roi, [0, 0, 128, 64], acam.exposure_time, 0.002))
    yield acam
    acam.close()


def valid(docs) -> None:
    for name, doc in docs:
        schema_validators[DocumentNames(name)].validate(doc)


def test_count_replays_in_a_new_process_equal_to_the_file(acam, RE, data_dir, tmp_path):
    (uid,) = RE(bp.count([acam], num=4))
    valid(RE.recorder.docs)
    images, info = read_run_in_new_process(
        data_dir / "catalog", uid, "primary", "acam_image", tmp_path
    )
    on_disk, _ = file_frames(acam.last_file)
    assert on_disk.shape == (4, 64, 128)
    assert np.array_equal(images.reshape(on_disk.shape), on_disk)
    assert info["stop"]["exit_status"] == "success"


def test_a_scan_of_several_exposures_per_collection_replays_grouped(acam, RE, data_dir, tmp_path):
    def scan():
        yield from bps.stage(acam, wait=True)
        uid = yield from bps.open_run()
        yield from bps.prepare(acam, TriggerInfo(exposures_per_collection=3), wait=True)
        for _ in range(2):
            yield from bps.trigger_and_read([acam])
        yield from bps.close_run()
        yield from bps.unstage(acam, wait=True)
        return uid

    (uid,) = RE(scan())
    valid(RE.recorder.docs)
    images, _ = read_run_in_new_process(
        data_dir / "catalog", uid, "primary", "acam_image", tmp_path
    )
    on_disk, records = file_frames(acam.last_file)
    assert images.shape == (2, 3, 64, 128)
    assert np.array_equal(images, on_disk.reshape(2, 3, 64, 128))
    assert list(records["frame_number"]) == sorted(set(records["frame_number"]))


def test_a_fly_scan_on_edge_triggers_replays_equal_to_the_file(acam, RE, data_dir, tmp_path):
    done = threading.Event()

    def pulses():  # a pulse generator on the camera's trigger input, until the scan ends
        while not done.wait(0.01):
            with contextlib.suppress(sim.SimulatorError):  # the camera is not armed yet
                sim.fire_edge(0)

    source = threading.Thread(target=pulses, daemon=True)

    def plan():
        yield from bps.stage(acam, wait=True)
        uid = yield from bps.open_run()
        info = TriggerInfo(number_of_events=12, trigger=DetectorTrigger.EXTERNAL_EDGE)
        yield from bps.prepare(acam, info, wait=True)
        yield from bps.declare_stream(acam, name="primary")
        yield from bps.kickoff(acam, wait=True)
        source.start()
        yield from bps.collect_while_completing([acam], [acam], flush_period=0.05)
        yield from bps.close_run()
        yield from bps.unstage(acam, wait=True)
        return uid

    try:
        (uid,) = RE(plan())
    finally:
        done.set()
        source.join(10)
    valid(RE.recorder.docs)
    images, _ = read_run_in_new_process(
        data_dir / "catalog", uid, "primary", "acam_image", tmp_path
    )
    on_disk, _ = file_frames(acam.last_file)
    assert on_disk.shape == (12, 64, 128)
    assert np.array_equal(images.reshape(on_disk.shape), on_disk)


def test_a_fly_scan_on_internal_triggers_replays_equal_to_the_file(acam, RE, data_dir, tmp_path):
    """The free-running camera, collected while it runs, every frame in order."""

    def plan():
        yield from bps.stage(acam, wait=True)
        uid = yield from bps.open_run()
        yield from bps.prepare(acam, TriggerInfo(number_of_events=200), wait=True)
        yield from bps.declare_stream(acam, name="primary")
        yield from bps.kickoff(acam, wait=True)
        yield from bps.collect_while_completing([acam], [acam], flush_period=0.05)
        yield from bps.close_run()
        yield from bps.unstage(acam, wait=True)
        return uid

    (uid,) = RE(plan())
    valid(RE.recorder.docs)
    images, _ = read_run_in_new_process(
        data_dir / "catalog", uid, "primary", "acam_image", tmp_path
    )
    on_disk, records = file_frames(acam.last_file)
    assert on_disk.shape == (200, 64, 128)
    assert np.array_equal(images.reshape(on_disk.shape), on_disk)
    assert list(records["frame_number"]) == sorted(set(records["frame_number"]))


def test_the_two_faces_cannot_hold_one_camera(cam, data_dir):
    with pytest.raises(CameraInUseError) as raised:
        PvcamDetector("acam", sim=True)
    assert "already in use by PrimeBSI 'cam'" in str(raised.value)
    assert "\n" not in str(raised.value)
    cam.close()
    acam = PvcamDetector("acam", sim=True)
    try:
        with pytest.raises(CameraInUseError, match="already in use by PvcamDetector 'acam'"):
            PrimeBSI("cam2", sim=True, write_path=data_dir / "frames" / "two-faces")
    finally:
        acam.close()
