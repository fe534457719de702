"""Finding out why a real camera stops: the probe (``ophyd-pvcam probe``), the
doctor's controlled experiments and verdict, the first-day check
(``ophyd-pvcam check``), the bench that borrows the camera for them, and their
one-page figures.
"""

from ._bench import Bench
from ._check import Check
from ._doctor import NO_UNLOCK, OVERWRITE, UNLOCK, Hypothesis, Run
from ._probe import SdkResult

__all__ = [
    "NO_UNLOCK",
    "OVERWRITE",
    "UNLOCK",
    "Bench",
    "Check",
    "Hypothesis",
    "Run",
    "SdkResult",
]
