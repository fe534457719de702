"""A disk that really fills, whoever fills it (issue 19): the plan fails with one line
naming the folder, the frame file is closed and replays exactly, the run has its stop
document (also when the catalog is on the same disk), and the next plan works once
space is freed -- in the same process, with no file handle left open.

The camera is the fake one (frames every 2 ms); the disk is a small tmpfs that
another writer fills while a fly scan runs."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import bluesky.plans as bp
import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import FailedStatus
from bluesky_tiled_plugins import TiledWriter
from helpers import read_run_in_new_process, small_disk

from ophyd_pvcam import DiskError, PrimeBSI, open_catalog
from ophyd_pvcam.storage import DATA_PATH
from ophyd_pvcam.testing import FakeBackend

DEADLINE = 30.0


@pytest.fixture
def disk(tmp_path):
    with small_disk(tmp_path / "disk", "96m") as folder:
        yield folder


def fill_when(folder, condition) -> threading.Thread:
    """Another writer fills the disk once ``condition()`` holds, and stops when it is
    full; returns its thread."""

    def hog():
        deadline = time.monotonic() + DEADLINE
        while not condition():
            assert time.monotonic() < deadline, "the scan never got going"
            threading.Event().wait(0.005)
        with open(folder / "hog", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass  # full

    thread = threading.Thread(target=hog, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("catalog_on_the_disk", [False, True])
def test_a_disk_filled_by_another_writer_fails_the_fly_cleanly(disk, tmp_path, catalog_on_the_disk):
    catalog_dir = (disk if catalog_on_the_disk else tmp_path) / "catalog"
    catalog = open_catalog(catalog_dir)
    fake = FakeBackend(period_s=0.002)
    cam = PrimeBSI("cam", backend=lambda: fake, write_path=disk / "frames")
    try:
        cam.roi.put((0, 0, 64, 64))
        cam.compression.put("none")
        cam.num_frames.put(5000)  # the disk could hold them, had nobody else written
        RE = RunEngine({})
        stops = []
        RE.subscribe(lambda name, doc: stops.append(doc), "stop")
        RE.subscribe(TiledWriter(catalog))
        hog = fill_when(disk, lambda: fake.frames_made >= 50)
        with pytest.raises(FailedStatus) as failed:
            RE(bp.fly([cam]))
        hog.join(DEADLINE)
        cause = failed.value.__cause__
        assert isinstance(cause, DiskError)
        assert str(cause).startswith(f"cannot write frames to {disk / 'frames'}")
        # full, or nearly (the writer stopped short of it): one line either way
        assert "the disk is" in str(cause) and "full" in str(cause) and "\n" not in str(cause)
        (stop,) = stops
        assert stop["exit_status"] == "fail" and stop["reason"] == str(cause)
        assert not cam.acquiring
        # the file is closed, readable by a plain open, and holds what the run references
        with h5py.File(cam.last_file, "r") as f:
            pixels = f[DATA_PATH][()]
        assert pixels.shape[0] >= 50
        assert not list(cam.last_file.parent.glob("*.reserve"))  # the space held is given back
        (disk / "hog").unlink()
        # replayed next week, in a fresh Python: exactly the file's rows, and the failure
        images, info = read_run_in_new_process(
            catalog_dir, stop["run_start"], "cam", "cam_image", tmp_path
        )
        assert info["stop"]["exit_status"] == "fail"
        assert np.array_equal(images.reshape(pixels.shape), pixels)
        cam.num_frames.put(30)
        RE(bp.fly([cam]))  # the next plan works, in the same process
        assert stops[-1]["exit_status"] == "success"
    finally:
        cam.close()
    # no frame file is left open (the catalog, when it is on the disk, keeps its own open)
    assert [path for path in open_files() if path.startswith(str(disk / "frames"))] == []


def open_files() -> list[str]:
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile (listdir's own)
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
    return paths
