"""Shared fixtures: every test runs the real pyvcam on the simulated SDK."""

from __future__ import annotations

import contextlib

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


@pytest.fixture(autouse=True)
def no_faults_left_behind():
    """A test's injected faults never leak into the next test."""
    sim.clear_faults()
    yield
    sim.clear_faults()


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
