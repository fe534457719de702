"""Teledyne Photometrics PVCAM cameras as Bluesky/ophyd devices."""

from . import sim

if sim.requested_by_environment():
    sim.load()

__all__ = ["sim"]
