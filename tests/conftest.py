"""What every layer of the suite shares: a private data folder, the catalog in it and a
RunEngine that writes to it.  Nothing here loads the C simulator: ``tests/sim`` and
``tests/system`` load it in their own conftest (``simulated.py`` holds their fixtures);
``tests/unit`` fails if anything loads it.

Helpers for the tests live beside this file (``helpers.py``, ``servers.py``,
``simulated.py``); pytest puts this folder on ``sys.path``, so every layer imports
them by name."""

from __future__ import annotations

import os

import pytest

# the fault matrices' shared checks (fault_matrix.check) report what they compared
pytest.register_assert_rewrite("fault_matrix")

from helpers import Recorder  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A private data root for the session: frames and catalog never touch the
    user's folders.  One catalog serves every test (initialising one costs seconds)."""
    root = tmp_path_factory.mktemp("data")
    previous = os.environ.get("OPHYD_PVCAM_DATA")
    os.environ["OPHYD_PVCAM_DATA"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("OPHYD_PVCAM_DATA", None)
    else:
        os.environ["OPHYD_PVCAM_DATA"] = previous


@pytest.fixture(scope="session")
def catalog(data_dir):
    from ophyd_pvcam import open_catalog

    return open_catalog(data_dir / "catalog")


@pytest.fixture(scope="session")
def pvcam_initialized():
    """PVCAM initialised once for the session, as real test suites do (one definition
    for the layers that use the simulator: initialising twice is refused)."""
    from pyvcam import pvc  # the simulator was loaded by the layer's conftest

    pvc.init_pvcam()
    yield
    pvc.uninit_pvcam()


@pytest.fixture
def RE(catalog):
    """A RunEngine as the profile sets it up: catalog writer and stall guard."""
    from bluesky import RunEngine
    from bluesky_tiled_plugins import TiledWriter

    from ophyd_pvcam import StallGuard

    engine = RunEngine({}, call_returns_result=False)
    engine.subscribe(TiledWriter(catalog))
    engine.recorder = Recorder()
    engine.subscribe(engine.recorder)
    engine.preprocessors.append(StallGuard())
    yield engine
    if engine.state != "idle":
        engine.abort()
