"""The ``ophyd-pvcam`` command: one module per command, no domain logic of its own."""

from ._app import main

__all__ = ["main"]
