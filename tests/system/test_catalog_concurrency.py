"""Several processes on one embedded catalog: creating it at once, writing runs at once;
no run is lost."""

from __future__ import annotations

import json

from helpers import cli_env, start_python

CREATE_AND_WRITE = """
import json, sys
from bluesky_tiled_plugins import TiledWriter
from helpers import docs_run
from ophyd_pvcam import open_catalog
print("ready", flush=True)
sys.stdin.readline()  # the starting gun: both processes create the catalog together
catalog = open_catalog(sys.argv[1])
docs = docs_run()
writer = TiledWriter(catalog)
for name, doc in docs:
    writer(name, doc)
print(json.dumps(docs[0][1]["uid"]))
"""

WRITER = """
import json, sys
import bluesky.plans as bp
from ophyd_pvcam import PrimeBSI, open_catalog
from ophyd_pvcam.device import make_run_engine
RE, catalog = make_run_engine(open_catalog(sys.argv[1]), progress_bar=False)
cam = PrimeBSI("cam", sim=True, write_path=sys.argv[2])
cam.roi.set((0, 0, 64, 32)).wait(5)
cam.exposure_time.set(0.002).wait(5)
cam.num_frames.set(20).wait(5)
uids = []
for i in range(int(sys.argv[3])):
    uids.extend(RE(bp.fly([cam]) if i % 2 else bp.count([cam], num=3)))
cam.close()
print(json.dumps(uids))
"""

READER = """
import json, sys
import h5py, numpy as np
from ophyd_pvcam import open_catalog
catalog = open_catalog(sys.argv[1])
report = []
for uid in json.loads(sys.argv[2]):
    run = catalog[uid]
    stream = "cam" if "cam" in run else "primary"
    images = run[stream]["cam_image"].read()
    frames = images.reshape(-1, *images.shape[-2:])
    (path,) = [p for p in run[stream]["cam_image"].data_sources()[0].assets]
    with h5py.File(path.data_uri.split("localhost", 1)[1], "r") as f:
        same = bool(np.array_equal(frames, f["/entry/data/data"][()]))
    stop = run.metadata["stop"]
    report.append({"frames": len(frames), "same": same, "exit": stop["exit_status"]})
print(json.dumps(report))
"""


def _finish(process, timeout: float):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_two_processes_create_one_catalog_at_once(tmp_path):
    import subprocess
    import sys

    from ophyd_pvcam import open_catalog

    env = cli_env(tmp_path / "data", PYTHONPATH=_pythonpath())
    command = [sys.executable, "-c", CREATE_AND_WRITE, str(tmp_path / "catalog")]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    processes = [subprocess.Popen(command, env=env, text=True, **pipes) for _ in range(2)]
    for process in processes:  # both have imported everything
        assert process.stdout.readline().strip() == "ready", process.stderr.read()
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    uids = [_finish(p, 120) for p in processes]
    assert len(set(uids)) == 2
    assert sorted(open_catalog(tmp_path / "catalog")) == sorted(uids)


RUNS_EACH = 6  # counts and fly scans in turn, each a few catalog writes


def test_three_processes_write_six_runs_each_and_every_run_reads_back(tmp_path):
    env = cli_env(tmp_path / "data", PYTHONPATH=_pythonpath())
    catalog = tmp_path / "catalog"  # created by whichever writer gets there first
    sim = {**env, "OPHYD_PVCAM_SIM": "1"}
    writers = [
        start_python(WRITER, catalog, tmp_path / f"frames{n}", RUNS_EACH, env=sim) for n in range(3)
    ]
    uids = [uid for writer in writers for uid in _finish(writer, 300)]
    assert len(set(uids)) == 3 * RUNS_EACH
    report = _finish(start_python(READER, catalog, json.dumps(uids), env=env), 300)
    assert all(r["same"] and r["exit"] == "success" for r in report), report
    half = 3 * RUNS_EACH // 2
    assert sorted(r["frames"] for r in report) == [3] * half + [20] * half


def _pythonpath() -> str:
    """Our tests folder (for ``helpers``) ahead of whatever the session uses."""
    import os
    from pathlib import Path

    here = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)


READ_TABLES = """
import json, sys
from ophyd_pvcam import open_catalog
catalog = open_catalog(sys.argv[1])
print(json.dumps({uid: catalog[uid]["primary"]["x"].read().tolist() for uid in catalog}))
"""


def test_opening_a_catalog_again_in_one_process_loses_no_write(tmp_path):
    from bluesky_tiled_plugins import TiledWriter
    from helpers import docs_run

    from ophyd_pvcam import open_catalog

    first = open_catalog(tmp_path / "catalog")
    writer = TiledWriter(first)
    uids = []
    for opened_again in (False, True):
        if opened_again:  # e.g. make_run_engine() opened it, then a replay opens it again
            second = open_catalog(tmp_path / "catalog")
            assert sorted(second) == uids
        docs = docs_run()
        for name, doc in docs:
            writer(name, doc)
        uids.append(docs[0][1]["uid"])
    env = cli_env(tmp_path / "data", PYTHONPATH=_pythonpath())
    tables = _finish(start_python(READ_TABLES, tmp_path / "catalog", env=env), 120)
    assert tables == {uid: [1.0] for uid in uids}  # the second run's table is on disk
