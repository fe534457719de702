"""Runs out of the catalog: documents for databroker (filled by area-detector-handlers,
pixel-identical, with no SWMR clash against tiled), tiled's own ``run.documents()``,
TIFF stacks for Fiji, and the frame files ``show`` names."""

from __future__ import annotations

import json
from pathlib import Path

import bluesky.plans as bp
import h5py
import numpy as np
import pytest
from helpers import cli_env, run_cli, start_python

DATABROKER = """
import json, sys
import databroker, numpy as np
from event_model import DocumentNames, schema_validators
from ophyd_pvcam import open_catalog
from ophyd_pvcam.catalog import documents
from ophyd_pvcam.sim import frame_number
catalog = open_catalog(sys.argv[1])
db = databroker.temp()
report = {}
for uid, stream in json.loads(sys.argv[2]):
    run = catalog[uid]
    names = []
    for name, doc in documents(run):
        schema_validators[getattr(DocumentNames, name)].validate(doc)  # again, here
        db.v1.insert(name, doc)
        names.append(name)
    # databroker first: area-detector-handlers opens the file and keeps it open ...
    filled = np.stack(list(db.v1[uid].table(stream, fill=True)["cam_image"]))
    # ... then tiled reads the same file in the same process
    tiled = run[stream]["cam_image"].read()
    tiled_docs = [name for name, _ in run.documents()]
    numbers = [frame_number(frame) for frame in tiled.reshape(-1, *tiled.shape[-2:])]
    report[uid] = {"names": sorted(set(names)), "same": bool(np.array_equal(filled, tiled)),
                   "shape": list(tiled.shape), "tiled_docs": [tiled_docs[0], tiled_docs[-1]],
                   "numbers": numbers}
print(json.dumps(report))
"""


FLY_BATCH = 5  # frames per HDF5 chunk in the fly scan: 12 frames make 5 + 5 + 2


@pytest.fixture
def two_runs(RE, cam, monkeypatch):
    from ophyd_pvcam.storage import _writer

    # small frames of a fly scan share chunks (ADR 0012); five to a chunk here, so the
    # run ends in a partly filled one
    monkeypatch.setattr(_writer, "BATCH_CHUNK_BYTES", FLY_BATCH * 64 * 32 * 2)
    cam.roi.set((0, 0, 64, 32)).wait(5)
    cam.exposure_time.set(0.002).wait(5)
    cam.frames_per_point.set(2).wait(5)
    (count_uid,) = RE(bp.count([cam], num=3))
    cam.num_frames.set(12).wait(5)
    (fly_uid,) = RE(bp.fly([cam]))
    return [(count_uid, "primary"), (fly_uid, "cam")]


def test_documents_round_trip_through_databroker_with_pixel_identical_images(two_runs, data_dir):
    env = cli_env(data_dir)
    process = start_python(DATABROKER, data_dir / "catalog", json.dumps(two_runs), env=env)
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    (count_uid, _), (fly_uid, _) = two_runs
    assert report[count_uid]["shape"] == [3, 2, 32, 64]
    assert report[fly_uid]["shape"] == [12, 1, 32, 64]
    assert report[fly_uid]["numbers"] == list(range(1, 13))  # every frame, in order
    (fly_file,) = data_dir.rglob(f"{fly_uid}/cam_fly.h5")
    with h5py.File(fly_file, "r") as f:
        assert f["entry/data/data"].chunks == (FLY_BATCH, 32, 64)  # batched, and read back
    for result in report.values():
        assert result["same"]
        assert result["names"] == ["datum", "descriptor", "event", "resource", "start", "stop"]
        assert result["tiled_docs"] == ["start", "stop"]  # tiled's own route works too
    assert "SWMR" not in err


def test_export_tiff_and_show_name_the_frame_files(two_runs, data_dir, tmp_path):
    import tifffile

    from ophyd_pvcam import open_catalog
    from ophyd_pvcam.sim import frame_number

    env = cli_env(data_dir)
    (count_uid, _), (fly_uid, _) = two_runs
    show = run_cli(data_dir / "catalog", "show", fly_uid[:8], env=env)
    assert show.returncode == 0, show.stderr
    (line,) = [x for x in show.stdout.splitlines() if x.startswith("files ")]
    path = line.split(": ", 1)[1]
    assert path.endswith(f"/{fly_uid}/cam_fly.h5")
    assert Path(path).read_bytes()[:4] == b"\x89HDF"

    exported = run_cli(data_dir / "catalog", "export", count_uid[:8], "--tiff", tmp_path, env=env)
    assert exported.returncode == 0, exported.stderr
    (tiff,) = tmp_path.glob("*.tif")
    assert tiff.name == f"{count_uid[:8]}_primary_cam_image.tif"
    with tifffile.TiffFile(tiff) as f:
        assert f.is_imagej and f.series[0].axes == "TYX"
        stack = f.asarray()
    images = open_catalog(data_dir / "catalog")[count_uid]["primary"]["cam_image"].read()
    assert np.array_equal(stack, images.reshape(-1, 32, 64))  # 3 points x 2 frames, in order

    # the fly scan's frames share chunks (ADR 0012); the export (what the command above
    # calls, here in this process: a second command would cost seconds) reads them all
    from ophyd_pvcam.catalog import export_tiff

    fly_run = open_catalog(data_dir / "catalog")[fly_uid]
    (tiff,) = export_tiff(fly_run, tmp_path / "fly", stream="cam")
    with tifffile.TiffFile(tiff) as f:
        stack = f.asarray()
    images = fly_run["cam"]["cam_image"].read()
    assert np.array_equal(stack, images.reshape(-1, 32, 64))
    assert [frame_number(frame) for frame in stack] == list(range(1, 13))


def test_every_data_key_declares_the_dtype_of_its_data(two_runs, catalog):
    from ophyd_pvcam.catalog import documents

    for uid, _ in two_runs:
        run = catalog[uid]
        docs = list(documents(run))
        keys = {}
        for name, doc in docs:
            if name == "descriptor":
                keys.update(doc["data_keys"])
        expected = {"integer": (int,), "number": (int, float), "boolean": (bool,)}
        for name, doc in docs:
            if name != "event":
                continue
            for key, value in doc["data"].items():
                kinds = expected.get(keys[key]["dtype"])
                if kinds is not None:
                    assert type(value) in kinds, (key, keys[key]["dtype"], value)
