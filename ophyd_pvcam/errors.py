"""The errors a scientist may see, each with a message that says what happened and what to do."""

from __future__ import annotations

from typing import Any


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
