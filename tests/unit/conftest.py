"""The quick layer: pure logic and the pure-Python fake camera, no C simulator.

Every unit test is checked before and after it runs: when only unit tests were
collected (``pytest tests/unit``), the C simulator's library must not be loaded, nor
pyvcam's compiled module (which binds a PVCAM library for good) imported.  A test,
or a module imported at collection, that loads either fails here, by name.  In a run
of every layer the sim and system conftests load the simulator on purpose, and the
check stands aside."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent


def simulator_loaded() -> str | None:
    """What of the simulator (or of a PVCAM binding) this process holds, if anything."""
    sim = sys.modules.get("ophyd_pvcam.sim")
    if sim is not None and sim.is_loaded():
        return f"the C simulator library ({sim.library_path()})"
    if "pyvcam.pvc" in sys.modules:
        return "pyvcam.pvc (pyvcam's compiled module, bound to a PVCAM library)"
    return None


def only_unit_tests(session: pytest.Session) -> bool:
    return bool(session.items) and all(
        Path(str(item.path)).resolve().is_relative_to(UNIT) for item in session.items
    )


@pytest.fixture(autouse=True)
def no_simulator(request):
    """Fails the test that loads the simulator (or runs after a module that did)."""
    if not only_unit_tests(request.session):
        yield
        return
    loaded = simulator_loaded()
    assert loaded is None, f"{loaded} was loaded before this unit test (at collection?)"
    yield
    loaded = simulator_loaded()
    assert loaded is None, f"this unit test loaded {loaded}: it belongs in tests/sim"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """At the end of a unit-only run in one process (no xdist workers), the same check
    for the whole session.  (Under xdist the per-test check above reports it.)"""
    if hasattr(session.config, "workerinput") or not only_unit_tests(session):
        return
    loaded = simulator_loaded()
    if loaded is not None and session.testscollected:
        session.config.get_terminal_writer().line(
            f"tests/unit: {loaded} was loaded during the unit run", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
