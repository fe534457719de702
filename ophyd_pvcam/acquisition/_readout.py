"""How long the camera takes to read a frame out, known without asking it.

An sCMOS sensor such as the Prime BSI reads every row of its region of interest
(binning is digital), one row every *row time* of its readout speed, so a frame's
readout time is the ROI's height times the row time, and the frame period is the
longer of the exposure and the readout.  The row time of each port and speed is
learnt from the camera's own answer (``PARAM_READOUT_TIME``, which PVCAM gives for
the setup of the last acquisition: read just after it stopped); from then on any
ROI's frame period is known at once, also while frames stream, when nothing may be
asked of the camera.  Before a speed
has been seen the exposure stands for the period, and :meth:`ReadoutModel.readout_s`
says it does not know.
"""

from __future__ import annotations

import math
import threading

from ophyd_pvcam.hardware import CameraSetup


class ReadoutModel:
    """Row times by (port, speed), learnt from the camera; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._row_time_s: dict[tuple[str, int], float] = {}

    def learn(self, setup: CameraSetup, readout_s: float) -> None:
        """The camera said ``readout_s`` for an acquisition of ``setup``."""
        rows = setup.roi[3]
        if rows > 0 and math.isfinite(readout_s) and readout_s > 0:
            with self._lock:
                self._row_time_s[(setup.readout_port, setup.speed_index)] = readout_s / rows

    def knows(self, setup: CameraSetup) -> bool:
        with self._lock:
            return (setup.readout_port, setup.speed_index) in self._row_time_s

    def readout_s(self, setup: CameraSetup) -> float | None:
        """The readout time of ``setup``, or None before its speed was seen."""
        with self._lock:
            row_time = self._row_time_s.get((setup.readout_port, setup.speed_index))
        return None if row_time is None else row_time * setup.roi[3]

    def period_s(self, setup: CameraSetup) -> float:
        """Time from one frame to the next when the camera times itself: the longer of
        the exposure and the readout (the exposure alone before the speed was seen)."""
        return max(setup.exposure_us * 1e-6, self.readout_s(setup) or 0.0)
