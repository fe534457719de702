"""What tests of the acquisition core (no ophyd) drive it with: completions that
remember how they ended, the run a session belongs to, the settings of a small fast
camera.  Used by ``tests/unit/test_controller.py`` and the model-based
``tests/unit/test_session_model.py``."""

from __future__ import annotations

import threading

from ophyd_pvcam.acquisition import CameraController, Settings
from ophyd_pvcam.testing import FakeBackend

DEADLINE = 10.0


class Done:
    """A completion that remembers every way it was ended: the core must end each one
    exactly once (``Pending`` would raise on a second ending, but in the core's thread)."""

    def __init__(self):
        self.endings: list[BaseException | None] = []
        self.progress: list[int] = []
        self.ended = threading.Event()
        self.lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self.ended.is_set()

    def update(self, current: int) -> None:
        self.progress.append(current)

    def set_finished(self) -> None:
        self.end(None)

    def set_exception(self, exc: BaseException) -> None:
        self.end(exc)

    def end(self, exc: BaseException | None) -> None:
        with self.lock:
            self.endings.append(exc)
        self.ended.set()

    def outcome(self, timeout: float = DEADLINE) -> BaseException | None:
        """How it ended (None: finished), waiting for it; it must have ended once."""
        assert self.ended.wait(timeout), f"not ended within {timeout} s"
        assert len(self.endings) == 1, f"ended {len(self.endings)} times: {self.endings}"
        return self.endings[0]


class FakeRun:
    """The run a session belongs to (what the device learns from the RunEngine)."""

    def __init__(self, uid: str = "c0ffee00-1234-4321-8000-000000000001"):
        self.uid = uid
        self.ending = False
        self.callbacks = []

        self.datums: dict[str, int] = {}  # resource uid -> datums emitted

    def when_ends(self, callback) -> None:
        self.callbacks.append(callback)

    def emit(self, docs) -> None:
        """The RunEngine emits what it took from the camera (saving the events)."""
        for name, doc in docs:
            if name == "resource":
                self.datums.setdefault(doc["uid"], 0)
            elif name == "datum":
                self.datums[doc["resource"]] += 1

    def datums_emitted(self, resource: str) -> int | None:
        return self.datums.get(resource)

    def end(self) -> None:
        """The stop document: the RunEngine is tearing the run down."""
        self.ending = True
        for callback in self.callbacks:
            callback()


class Core:
    """The controller under test and what it told its face."""

    def __init__(self, backend: FakeBackend, folder):
        self.announced: list[BaseException] = []
        self.reports = 0
        self.run: FakeRun | None = None
        self.controller = CameraController(
            "cam",
            lambda: backend,
            folder,
            report=self.count_report,
            find_run=lambda: self.run,
            announce=self.announced.append,
        )

    def count_report(self, controller) -> None:
        self.reports += 1


def settings(**changes) -> Settings:
    values = {
        "exposure_time": 0.001,
        "roi": (0, 0, 16, 8),
        "binning": 1,
        "readout_port": "Sensitivity",
        "speed_index": 0,
        "gain_index": 1,
        "clear_mode": "Pre-Sequence",
        "trigger_mode": "Internal Trigger",
        "expose_out_mode": "First Row",
        "frames_per_point": 1,
        "num_frames": 20,
        "buffer_frames": 0,
        "temperature_setpoint": -20.0,
        "fan_speed": "High",
        "stall_timeout": 0.0,
        "memory_buffer": 16,
        "compression": "none",
    }
    return Settings(**{**values, **changes})
