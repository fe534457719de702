"""Shared fixtures: every test runs the real pyvcam on the simulated SDK."""

from __future__ import annotations

import contextlib
import os
import re

import pytest

import ophyd_pvcam.sim as sim

sim.load()

from pyvcam import pvc  # noqa: E402  (must come after sim.load())
from pyvcam.camera import Camera  # noqa: E402


@pytest.fixture(scope="session")
def pvcam_initialized():
    """PVCAM initialised once for the session, as real test suites do."""
    pvc.init_pvcam()
    yield
    pvc.uninit_pvcam()


_clear_faults = sim.clear_faults


def _clear_but_watch_param_reads() -> None:
    """Clear the faults, then arm ``param_poll`` again: a camera whose parameters are
    read or written while frames stream stops delivering them, so any such access by
    the device fails the test (real cameras have stopped this way)."""
    _clear_faults()
    sim.inject_environment_faults()
    sim.inject_fault("param_poll")


@pytest.fixture(autouse=True)
def no_faults_left_behind(request, monkeypatch):
    """A test's injected faults never leak into the next test.  Every test but the
    simulator's own runs with ``param_poll`` armed, also after it clears its faults."""
    if request.module.__name__.startswith("test_sim_"):
        _clear_faults()
        sim.inject_environment_faults()
        yield
    else:
        monkeypatch.setattr(sim, "clear_faults", _clear_but_watch_param_reads)
        sim.clear_faults()
        yield
    _clear_faults()


@pytest.fixture
def camera(pvcam_initialized):
    """The first simulated camera, opened; stopped and closed afterwards."""
    cam = next(Camera.detect_camera())
    cam.open()
    yield cam
    if cam.is_open:
        # a disconnected camera refuses to abort; close works regardless
        with contextlib.suppress(RuntimeError):
            cam.finish()
        cam.close()


# ---- the device, the RunEngine and the catalog -----------------------------------


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


@pytest.fixture
def cam(data_dir, request):
    """The simulated camera as a device, writing into a folder of its own per test."""
    from ophyd_pvcam import PrimeBSI

    folder = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    device = PrimeBSI("cam", sim=True, write_path=data_dir / "frames" / folder)
    yield device
    device.close()


@pytest.fixture(scope="session")
def catalog(data_dir):
    from ophyd_pvcam import open_catalog

    return open_catalog(data_dir / "catalog")


class Recorder:
    """Every document the RunEngine emitted, in order."""

    def __init__(self):
        self.docs = []

    def __call__(self, name, doc):
        self.docs.append((name, doc))

    def of(self, name):
        """Documents of one kind; "event" includes the events of event pages."""
        from event_model import unpack_event_page

        found = []
        for n, doc in self.docs:
            if n == name:
                found.append(doc)
            elif name == "event" and n == "event_page":
                found.extend(unpack_event_page(doc))
        return found


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
