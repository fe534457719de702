"""Fixtures of the layers that run the real pyvcam on the C simulator (``tests/sim``,
``tests/system``): their conftest loads the simulator, then imports these."""

from __future__ import annotations

import contextlib
import re

import pytest

import ophyd_pvcam.sim as sim

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
    from pyvcam.camera import Camera

    cam = next(Camera.detect_camera())
    cam.open()
    yield cam
    if cam.is_open:
        # a disconnected camera refuses to abort; close works regardless
        with contextlib.suppress(RuntimeError):
            cam.finish()
        cam.close()


@pytest.fixture
def cam(data_dir, request):
    """The simulated camera as a device, writing into a folder of its own per test."""
    from ophyd_pvcam import PrimeBSI

    folder = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    device = PrimeBSI("cam", sim=True, write_path=data_dir / "frames" / folder)
    yield device
    device.close()
