"""Beyond one machine: the catalog on a tiled server (PostgreSQL), and the queue server.

The servers are real and listen on 127.0.0.1 only; they are skipped, with the
reason, only where PostgreSQL or Redis is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import servers

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profile_collection" / "startup"
PG_BIN = servers.postgres_bin()
needs_postgres = pytest.mark.skipif(
    PG_BIN is None, reason="PostgreSQL is not installed (apt-get install postgresql)"
)
needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="Redis is not installed (apt-get install redis-server; .ci/run does)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """PostgreSQL and the ophyd-pvcam catalog server, for every test of this module."""
    if PG_BIN is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    work = tmp_path_factory.mktemp("server")
    frames = work / "frames"
    frames.mkdir()
    with (
        servers.postgres(PG_BIN) as database,
        servers.catalog_server(database, frames, work) as catalog,
    ):
        catalog.database = database
        yield catalog


def client_env(server, tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPHYD_PVCAM")}
    env.update(
        OPHYD_PVCAM_CATALOG=server.uri,
        TILED_API_KEY=servers.API_KEY,
        OPHYD_PVCAM_DATA=str(server.frames / tmp_path.name),  # frames the server may read
        **extra,
    )
    return env


WRITER = """
import json, sys
import bluesky.plans as bp
from ophyd_pvcam import PrimeBSI
from ophyd_pvcam.device import make_run_engine
RE, catalog = make_run_engine(progress_bar=False)  # OPHYD_PVCAM_CATALOG: the server
cam = PrimeBSI("cam", sim=True, write_path=sys.argv[1])
cam.roi.set((0, 0, 128, 64)).wait(5)
cam.exposure_time.set(0.002).wait(5)
cam.num_frames.set(30).wait(5)
uids = []
for i in range(10):
    plan = bp.count([cam], num=3) if i % 2 else bp.fly([cam])
    uids.extend(RE(plan))
cam.close()
print(json.dumps(uids))
"""

READER = """
import json, sys
import h5py, numpy as np
from ophyd_pvcam import open_catalog
catalog = open_catalog()
report = []
for uid in json.loads(sys.argv[1]):
    run = catalog[uid]
    stream = "cam" if "cam" in run else "primary"
    images = run[stream]["cam_image"].read()
    frames = images.reshape(-1, *images.shape[-2:])
    path = run[stream]["cam_image"].data_sources()[0].assets[0].data_uri.split("localhost")[-1]
    with h5py.File(path, "r") as f:
        on_disk = f["/entry/data/data"][()]
    report.append({"uid": uid, "frames": len(frames), "same": bool(np.array_equal(frames, on_disk)),
                   "exit": run.metadata["stop"]["exit_status"]})
print(json.dumps(report))
"""


@needs_postgres
def test_two_writers_at_once_and_a_reader_over_http(server, tmp_path):
    env = client_env(server, tmp_path)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(server.frames / f"writer{n}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    uids = []
    for writer in writers:
        out, err = writer.communicate(timeout=240)
        assert writer.returncode == 0, err
        uids += json.loads(out.strip().splitlines()[-1])
    assert len(set(uids)) == 20
    reader = subprocess.run(
        [sys.executable, "-c", READER, json.dumps(uids)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert reader.returncode == 0, reader.stderr
    report = json.loads(reader.stdout.strip().splitlines()[-1])
    assert [r["uid"] for r in report] == uids
    assert all(r["same"] and r["exit"] == "success" for r in report)
    assert sorted({r["frames"] for r in report}) == [3, 30]


@needs_postgres
def test_a_wrong_or_missing_api_key_gets_a_clear_error(server, tmp_path):
    from ophyd_pvcam import CatalogError, open_catalog

    with pytest.raises(CatalogError, match="refused the API key"):
        open_catalog(server.uri, api_key="wrongkey123")
    env = client_env(server, tmp_path)
    env.pop("TILED_API_KEY")
    result = subprocess.run(
        [sys.executable, "-m", "ophyd_pvcam.cli", "runs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 4
    assert result.stderr.strip().startswith("ophyd-pvcam: error:")
    assert "needs an API key" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "ophyd_pvcam.cli", "runs"],
        env=dict(env, TILED_API_KEY="wrongkey123"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 4 and "refused the API key" in result.stderr


@needs_postgres
def test_the_server_listens_on_loopback_only_and_never_shows_its_key(server):
    assert servers.listening_addresses({server.process.pid}) == {"127.0.0.1"}
    log = (server.frames.parent / "catalog-server.log").read_text()
    assert servers.API_KEY not in log
    cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
    assert servers.API_KEY.encode() not in cmdline


def test_the_catalog_server_refuses_to_start_without_a_proper_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TILED_API_KEY",)}
    command = [
        sys.executable,
        "-m",
        "ophyd_pvcam.cli",
        "catalog-server",
        "--database",
        "postgresql://postgres@127.0.0.1:1/none",
        "--storage",
        str(tmp_path),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "needs an API key" in result.stderr
    result = subprocess.run(
        command, env=dict(env, TILED_API_KEY="my-key_1"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "letters and digits" in result.stderr
    assert "my-key_1" not in result.stderr + result.stdout


def test_the_profile_lists_its_plans_and_devices_for_the_queue_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPHYD_PVCAM")}
    env["OPHYD_PVCAM_DATA"] = str(tmp_path / "data")
    result = subprocess.run(
        ["qserver-list-plans-devices", "--startup-dir", str(PROFILE), "--file-dir",
         str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    listing = (tmp_path / "existing_plans_and_devices.yaml").read_text()
    for name in (
        "cam:",
        "m1:",
        "m2:",
        "count:",
        "scan:",
        "fly:",
        "count_frames:",
        "fly_frames:",
        "dark_series:",
        "stall_probe:",
    ):
        assert f"\n  {name}" in listing, name


@needs_postgres
@needs_redis
def test_queued_plans_run_by_name_and_a_stall_is_named_in_the_history(server, tmp_path):
    from bluesky_queueserver_api import BPlan

    from ophyd_pvcam import open_catalog

    env = client_env(server, tmp_path, OPHYD_PVCAM_SIM_FAULTS="stall:after=30,times=1")
    with (
        servers.redis(tmp_path) as redis_address,
        servers.queue_manager(PROFILE, redis_address, tmp_path, env) as manager,
    ):
        manager.environment_open()
        manager.wait_for_idle(timeout=120)
        assert manager.status()["worker_environment_exists"], manager.log.read_text()[-3000:]

        manager.item_add(BPlan("fly_frames", "cam", num_frames=100))
        manager.queue_start()
        manager.wait_for_idle(timeout=120)
        failed = manager.history_get()["items"][-1]["result"]
        assert failed["exit_status"] == "failed"
        assert "FrameStallError" in failed["traceback"] or "frames stopped" in failed["msg"]
        assert "frames stopped" in failed["traceback"]

        manager.item_remove(pos="front")  # the failed item stays first in the queue
        manager.item_add(BPlan("count", ["cam"], num=3))
        manager.item_add(BPlan("fly_frames", "cam", num_frames=50))
        manager.queue_start()
        manager.wait_for_idle(timeout=120)
        done = manager.history_get()["items"][-2:]
        assert [item["result"]["exit_status"] for item in done] == ["completed", "completed"]
        assert servers.listening_addresses({manager.process.pid}) == {"127.0.0.1"}

    catalog = open_catalog(server.uri, api_key=servers.API_KEY)
    stalled_uid = failed["run_uids"][0]
    assert catalog[stalled_uid].metadata["stop"]["exit_status"] == "fail"
    assert len(catalog[stalled_uid]["cam"]["cam_frame_number"].read()) == 30
    count_uid, fly_uid = (item["result"]["run_uids"][0] for item in done)
    assert catalog[count_uid]["primary"]["cam_image"].read().shape[0] == 3
    numbers = catalog[fly_uid]["cam"]["cam_frame_number"].read()
    assert list(numbers) == list(range(1, 51))
