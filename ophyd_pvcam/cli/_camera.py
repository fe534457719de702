"""The ``--camera`` option of the commands that use the camera, and the camera it
names: the real one, the simulator, or (``auto``) the real one when PVCAM is installed.

The simulator announces itself on stderr, so stdout stays what the command reports.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the device (and ophyd) load when a command opens the camera
    from ophyd_pvcam.device import PrimeBSI


def with_camera(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``sub`` with the ``--camera auto|sim|real`` option."""
    sub.add_argument(
        "--camera",
        choices=("auto", "sim", "real"),
        default="auto",
        help="auto: the real camera if PVCAM is installed, else the simulator",
    )
    return sub


def simulated(args: argparse.Namespace) -> bool | None:
    """True for the simulator, False for the real camera, None: whichever is there."""
    return None if args.camera == "auto" else args.camera == "sim"


def to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


def open_camera(args: argparse.Namespace, name: str = "cam", write_path=None) -> PrimeBSI:
    """The camera ``--camera`` names, as a device called ``name`` (writing its frames
    under ``write_path``, by default the data folder's)."""
    from ophyd_pvcam.device import make_camera

    return make_camera(name, simulated=simulated(args), announce=to_stderr, write_path=write_path)
