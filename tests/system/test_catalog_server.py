"""The catalog server reads frames only from its --frames folders: a path that leaves them
is refused, and a camera writing elsewhere fails before it acquires, in one line."""

from __future__ import annotations

import urllib.error
import urllib.request

import bluesky.plans as bp
import numpy as np
import pytest
import servers
from bluesky_tiled_plugins import TiledWriter
from helpers import docs_run, frame_files, small_frame_file
from tiled.client.utils import ClientError

from ophyd_pvcam import CatalogError, FramesFolderCheck, open_catalog
from ophyd_pvcam.catalog import FRAMES_ROUTE, check_frames_folder, frames_folders

PG_BIN = servers.postgres_bin()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if PG_BIN is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    work = tmp_path_factory.mktemp("catalog-server")
    (work / "frames").mkdir()
    with (
        servers.postgres(PG_BIN) as database,
        servers.catalog_server(database, work / "frames", work) as catalog,
    ):
        yield catalog


@pytest.fixture
def client(server):
    return open_catalog(server.uri, api_key=servers.API_KEY)


def _write(client, docs):
    writer = TiledWriter(client)
    for name, doc in docs:
        writer(name, doc)


def test_the_server_refuses_paths_that_leave_its_frames_folders(server, client, tmp_path):
    frames = server.frames
    secret = small_frame_file(tmp_path / "secret" / "x.h5", value=99)

    with pytest.raises(ClientError, match=r"403.*leaves its folder"):
        _write(client, docs_run(files=[(frames, "../../secret/x.h5")]))
    with pytest.raises(ClientError, match=r"403.*outside the folders.*--frames"):
        _write(client, docs_run(files=[(secret.parent, "x.h5")]))

    good = small_frame_file(frames / "2026/01/02/d0c5e2a4-8e2b-4f7a-9a51-2f0c6f3f9b21/x.h5")
    docs = docs_run(files=[(frames, str(good.relative_to(frames)))], frames=2)
    _write(client, docs)
    run = client[docs[0][1]["uid"]]
    assert np.all(run["primary"]["img"].read() == 7)
    good.unlink()
    good.symlink_to(secret)  # swapped for a symlink out of the folder
    with pytest.raises(ClientError, match=r"403.*outside the folders"):
        run["primary"]["img"].read()


def test_a_camera_writing_where_the_server_cannot_read_fails_before_acquiring(server, client, cam):
    from bluesky import RunEngine

    assert frames_folders(client) == [server.frames.resolve()]
    check_frames_folder(client, server.frames / "beamline" / "frames")  # inside: fine
    RE = RunEngine({})
    RE.subscribe(TiledWriter(client))
    RE.preprocessors.append(FramesFolderCheck(client))
    cam.num_frames.set(10).wait(5)
    with pytest.raises(CatalogError) as raised:
        RE(bp.fly([cam]))
    message = str(raised.value)
    assert "\n" not in message
    assert f"cam writes to {cam.write_path}" in message
    assert f"reads frames only from {server.frames.resolve()}" in message
    assert f"--frames {cam.write_path}" in message
    assert frame_files(cam.write_path) == []  # nothing was acquired

    request = urllib.request.Request(server.uri + FRAMES_ROUTE)  # no key: no answer
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError, match="401"):
        opener.open(request, timeout=10)
