"""The embedded catalog never reads a file whose path leaves its frames folder; runs are
found by uid prefix.  (That it reads every run wherever its camera wrote:
``tests/sim/test_catalog_any_folder.py``.)"""

from __future__ import annotations

import os

import numpy as np
import pytest
from bluesky_tiled_plugins import TiledWriter
from helpers import docs_run, small_frame_file
from tiled.client.utils import ClientError

from ophyd_pvcam import RunNotFound, find_run, open_catalog


def _write(catalog, docs):
    writer = TiledWriter(catalog)
    for name, doc in docs:
        writer(name, doc)


def test_paths_that_climb_out_of_the_frames_folder_are_refused(catalog, data_dir, tmp_path):
    frames, secret = tmp_path / "frames", tmp_path / "secret"
    small_frame_file(secret / "x.h5", value=99)
    small_frame_file(frames / "2026/01/02/fine/x.h5")  # the folder exists

    # registering '..' fails the run's write, with a message naming the path
    docs = docs_run(files=[(frames, "2026/01/02/fine/../../../../secret/x.h5")])
    with pytest.raises(ClientError, match=r"403.*leaves its folder"):
        _write(catalog, docs)

    # a run registered by a writer that did not check (an older ophyd-pvcam, plain
    # tiled): the '..' entry in the database is refused when read
    from tiled.catalog import from_uri
    from tiled.client import Context, from_context
    from tiled.server.app import build_app

    folder = data_dir / "catalog"
    plain = from_uri(
        f"sqlite:///{folder / 'catalog.db'}",
        writable_storage=[str(folder / "data"), f"sqlite:///{folder / 'tables.sqlite'}"],
        readable_storage=[str(frames)],
    )
    old_docs = docs_run(files=[(frames, "../secret/x.h5")])
    _write(from_context(Context.from_app(build_app(plain))), old_docs)
    uid = old_docs[0][1]["uid"]
    run = open_catalog(folder)[uid]
    with pytest.raises(ClientError, match=r"403.*leaves its folder"):
        run["primary"]["img"].read()


def test_symlinks_out_of_the_frames_folder_are_refused(catalog, tmp_path):
    frames, secret = tmp_path / "frames", tmp_path / "secret"
    target = small_frame_file(secret / "x.h5", value=99)
    run_folder = frames / "2026/01/02/d0c5e2a4-8e2b-4f7a-9a51-2f0c6f3f9b11"

    # a file in the camera's layout that is a symlink to a file elsewhere
    run_folder.mkdir(parents=True)
    (run_folder / "cam_fly.h5").symlink_to(target)
    docs = docs_run(files=[(frames, f"{run_folder.relative_to(frames)}/cam_fly.h5")])
    with pytest.raises(ClientError, match=r"403.*symlink leads out"):
        _write(catalog, docs)

    # a day folder that is a symlink to a folder elsewhere
    (frames / "2026/01/03").symlink_to(secret)
    docs = docs_run(files=[(frames, "2026/01/03/d0c5e2a4-8e2b-4f7a-9a51-2f0c6f3f9b12/x.h5")])
    (secret / "d0c5e2a4-8e2b-4f7a-9a51-2f0c6f3f9b12").mkdir()
    with pytest.raises(ClientError, match=r"403.*symlink leads out"):
        _write(catalog, docs)

    # a legitimate file, registered and read, then swapped for a symlink: refused on read
    good = small_frame_file(frames / "2026/01/04/d0c5e2a4-8e2b-4f7a-9a51-2f0c6f3f9b13/x.h5")
    docs = docs_run(files=[(frames, str(good.relative_to(frames)))], frames=2)
    _write(catalog, docs)
    run = catalog[docs[0][1]["uid"]]
    assert np.all(run["primary"]["img"].read() == 7)
    good.unlink()
    good.symlink_to(target)
    with pytest.raises(ClientError, match=r"403.*outside the folders"):
        run["primary"]["img"].read()


def test_find_run_takes_a_uid_or_a_unique_prefix(catalog):
    uids = ["5e55a000-0000-4000-8000-000000000001", "5e55a000-0000-4000-8000-000000000002"]
    for uid in uids:
        _write(catalog, docs_run(uid))
    assert find_run(catalog, uids[0]).metadata["start"]["uid"] == uids[0]
    assert find_run(catalog, uids[1][:-1] + "2").metadata["start"]["uid"] == uids[1]
    assert (
        find_run(catalog, "5E55A000-0000-4000-8000-00000000000" + "1").metadata["start"]["uid"]
        == uids[0]
    )
    with pytest.raises(RunNotFound, match="matches 2 runs; give more of the uid"):
        find_run(catalog, "5e55a000")
    with pytest.raises(KeyError, match="no run 'ffffffff0'"):
        find_run(catalog, "ffffffff0")
    with pytest.raises(RunNotFound, match="no run"):
        find_run(catalog, "not%a_uid")
    for not_a_run in ("", "   ", f"{uids[0]}/primary"):  # the catalog, a stream: not runs
        with pytest.raises(RunNotFound, match="no run"):
            find_run(catalog, not_a_run)
    assert os.environ["OPHYD_PVCAM_DATA"]  # the session's data folder, not the user's
