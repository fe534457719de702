"""The errors a scientist may see, each with a message that says what happened and what to do."""

from __future__ import annotations

from typing import Any

# An attribute of a log record: this failure is also raised to the caller, so a terminal
# that shows the raised error need not show the record too.
RAISED = "ophyd_pvcam_raised"

# An attribute of an exception: the stall guard has thrown it into the plan already
# (an exception is the one thing both sides hold; it takes no weak references).
_DELIVERED = "ophyd_pvcam_delivered"


def mark_delivered(error: BaseException) -> None:
    """``error`` has reached the plan: whoever would report it again need not."""
    setattr(error, _DELIVERED, True)


def was_delivered(error: BaseException) -> bool:
    """Whether :func:`mark_delivered` was called for ``error``."""
    return getattr(error, _DELIVERED, False)


class CameraUnavailableError(RuntimeError):
    """No PVCAM library or no camera: the message says what to install or set."""


class CameraInUseError(RuntimeError):
    """The camera is already open (in this process or another)."""


class CameraAcquisitionError(RuntimeError):
    """The camera reported a failure (readout failure, disconnect, refused start...)."""


class CameraLostError(CameraAcquisitionError):
    """The camera vanished (disconnect); it is reopened on the next acquisition."""


class FrameStallError(RuntimeError):
    """Frames stopped arriving from the camera; the message is a diagnosis."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.details = details or {}


class DiskError(RuntimeError):
    """Frames could not be written (disk full, folder not writable); the message names
    the folder and its free space."""


class AcquisitionInterrupted(RuntimeError):
    """The acquisition was stopped from outside (a pause, an abort, the run ending)."""
