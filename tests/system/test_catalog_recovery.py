"""``kill -9`` mid-run, then ``ophyd-pvcam recover``: the run is closed and every frame
the file recorded before the kill replays, pixel for pixel.  A live run is never
closed.  Every step runs in its own process, as it would at a beamline."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from helpers import cli_env, kill_hard, run_cli, start_python, wait_for_frames

from ophyd_pvcam import open_catalog, sim
from ophyd_pvcam.catalog import open_runs
from ophyd_pvcam.storage import is_closed, lookup3, mark_closed

FLYER = """
import sys
import bluesky.plans as bp
from ophyd_pvcam import PrimeBSI, open_catalog
from ophyd_pvcam.device import make_run_engine
RE, catalog = make_run_engine(open_catalog(sys.argv[1]), progress_bar=False)
cam = PrimeBSI("cam", sim=True, write_path=sys.argv[2])
cam.roi.set((0, 0, 64, 32)).wait(5)
cam.exposure_time.set(0.005).wait(5)
cam.num_frames.set(1_000_000).wait(5)  # flies until killed
RE(bp.fly([cam]))
"""

# a step scan whose frame file carries the run uid: the run opens before the camera is
# staged (as every step scan will once files open at the first trigger)
STEPPER = """
import sys
import bluesky.plan_stubs as bps
from ophyd_pvcam import FramesFolderCheck, PrimeBSI, open_catalog
from ophyd_pvcam.device import make_run_engine
RE, catalog = make_run_engine(open_catalog(sys.argv[1]), progress_bar=False)
RE.preprocessors.append(FramesFolderCheck(catalog))  # learns the folder before acquiring
cam = PrimeBSI("cam", sim=True, write_path=sys.argv[2])
cam.roi.set((0, 0, 64, 32)).wait(5)
cam.exposure_time.set(0.002).wait(5)
cam.frames_per_point.set(3).wait(5)

def plan():
    yield from bps.open_run()
    yield from bps.stage(cam)
    while True:
        yield from bps.trigger_and_read([cam])

RE(plan())
"""

REPLAY = """
import json, sys
import numpy as np
from ophyd_pvcam import find_run, open_catalog
run = find_run(open_catalog(sys.argv[1]), sys.argv[2])
stream = run[sys.argv[3]]
np.save(sys.argv[4], stream["cam_image"].read())
print(json.dumps({"stop": run.metadata["stop"],
                  "numbers": stream["cam_frame_number"].read().tolist()}))
"""


def _replay(catalog, uid, stream, tmp_path, env):
    out = tmp_path / "images.npy"
    process = start_python(REPLAY, catalog, uid, stream, out, env=env)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    return np.load(out), json.loads(stdout.strip().splitlines()[-1])


def _file_rows(path, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``rows`` frames of a file and its recorded frame numbers (plain open:
    recovery has closed the file)."""
    with h5py.File(path, "r") as f:
        numbers = f["/entry/instrument/NDAttributes/frame_number"][()]
        return f["/entry/data/data"][:rows], numbers


def test_kill_9_mid_fly_then_recover_replays_every_recorded_frame(tmp_path):
    env = cli_env(tmp_path / "data")
    catalog, frames = tmp_path / "catalog", tmp_path / "data" / "frames"  # the default folder
    flyer = start_python(FLYER, catalog, frames, env={**env, "OPHYD_PVCAM_SIM": "1"})
    try:
        path, _ = wait_for_frames(flyer, frames, "*/*/*/*/cam_fly.h5", 200)
        uid = path.parent.name

        # while it flies, recover leaves it alone, and refuses it when named
        (found,) = open_runs(open_catalog(catalog))
        assert (found.uid, found.state) == (uid, "live")
        assert found.detail.startswith(f"being recorded by pid {flyer.pid} on ")
        refused = run_cli(catalog, "recover", uid[:8], env=env)
        assert refused.returncode == 2, refused.stderr
        assert f"is still open: being recorded by pid {flyer.pid}" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        kill_hard(flyer)
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        recorded = f["/entry/instrument/NDAttributes/frame_number"].shape[0]
    assert not is_closed(path)

    runs = run_cli(catalog, "runs", env=env)
    assert f"{uid[:8]}" in runs.stdout and "left open" in runs.stdout
    assert "'ophyd-pvcam recover' closes them" in runs.stdout
    recovered = run_cli(catalog, "recover", env=env)
    assert recovered.returncode == 0, recovered.stderr
    assert f"closed {uid[:8]}: {recorded} frames reachable (cam_fly.h5)" in recovered.stdout
    assert is_closed(path)  # as h5clear -s leaves it: any HDF5 reader opens it again

    images, info = _replay(catalog, uid[:10], "cam", tmp_path, env)
    assert info["stop"]["exit_status"] == "abort"
    assert info["stop"]["reason"].startswith("interrupted: the process recording this run")
    assert len(images) >= 0.9 * recorded and len(images) == recorded
    on_disk, numbers = _file_rows(path, len(images))
    assert np.array_equal(images[:, 0], on_disk)  # pixel-identical
    assert info["numbers"] == numbers.tolist()[: len(images)]
    assert [sim.frame_number(f) for f in images[:, 0]] == info["numbers"]


def test_kill_9_mid_step_scan_then_recover_replays_the_complete_points(tmp_path):
    env = cli_env(tmp_path / "data")
    catalog, frames = tmp_path / "catalog", tmp_path / "elsewhere"  # a folder of its own
    stepper = start_python(STEPPER, catalog, frames, env={**env, "OPHYD_PVCAM_SIM": "1"})
    try:
        path, _ = wait_for_frames(stepper, frames, "*/*/*/*/cam_step.h5", 60)
    finally:
        kill_hard(stepper)
    uid = path.parent.name
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        recorded = f["/entry/instrument/NDAttributes/frame_number"].shape[0]

    recovered = run_cli(catalog, "recover", env=env)
    assert recovered.returncode == 0, recovered.stderr
    points = recorded // 3
    assert f"closed {uid[:8]}: {points * 3} frames reachable (cam_step.h5)" in recovered.stdout

    images, info = _replay(catalog, uid, "primary", tmp_path, env)
    assert info["stop"]["num_events"] == {"primary": points}
    assert images.shape == (points, 3, 32, 64)
    on_disk, numbers = _file_rows(path, points * 3)
    assert np.array_equal(images.reshape(-1, 32, 64), on_disk)
    assert info["numbers"] == numbers[2 : points * 3 : 3].tolist()  # the point's last frame


def test_closing_a_file_whose_writer_died_is_what_h5clear_does(tmp_path):
    path = tmp_path / "open.h5"
    f = h5py.File(path, "w", libver="latest")
    f.create_dataset("/entry/data/data", data=np.arange(32, dtype=np.uint16).reshape(2, 4, 4))
    f.swmr_mode = True
    f.flush()
    crashed = tmp_path / "crashed.h5"
    crashed.write_bytes(path.read_bytes())  # the file as a killed writer leaves it
    f.close()
    head = crashed.read_bytes()[:48]
    assert lookup3(head[:44]) == int.from_bytes(head[44:48], "little")  # HDF5's checksum
    broken = bytearray(crashed.read_bytes())
    broken[44] ^= 0xFF
    (tmp_path / "broken.h5").write_bytes(bytes(broken))
    assert not is_closed(crashed)
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(crashed, "r")
    assert mark_closed(crashed) and is_closed(crashed)
    with h5py.File(crashed, "r") as g:
        assert g["/entry/data/data"][1, 3, 3] == 31
    assert not mark_closed(crashed)  # nothing left to do
    with pytest.raises(ValueError, match="checksum mismatch"):
        mark_closed(tmp_path / "broken.h5")  # not a superblock this code understands
