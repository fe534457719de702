"""The exit codes of ``ophyd-pvcam`` and the one exception its commands raise.

A command that meets an expected failure raises :class:`CliError` with the message
the user reads and the code a script tests; ``main`` prints it as one line and
returns the code.  The codes are documented (README, ``--help``, the reference pages built from
:data:`EXIT_CODES`): scripts rely on them.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ACQUISITION = 1  # an acquisition failed or could not start
EXIT_USAGE = 2  # bad arguments or settings
EXIT_CAMERA = 3  # no usable camera
EXIT_CATALOG = 4  # catalog or run not found

# each code: what ``--help`` calls it, and when a command returns it (the reference
# documentation is generated from this table)
EXIT_CODES: dict[int, tuple[str, str]] = {
    EXIT_OK: ("ok", "the command did what it was asked"),
    EXIT_ACQUISITION: (
        "acquisition failed",
        "an acquisition failed or could not start: a stall, a readout failure, a "
        "disconnect, not enough disk space, Ctrl-C",
    ),
    EXIT_USAGE: (
        "bad arguments or settings",
        "including an unwritable output file, a malformed environment variable or config "
        "file, no display for the live view, and 'recover' asked to close a run another "
        "process still records",
    ),
    EXIT_CAMERA: (
        "no usable camera",
        "no PVCAM, the simulator cannot load, or the camera is in use",
    ),
    EXIT_CATALOG: (
        "catalog or run not found",
        "including an unreachable catalog server or database",
    ),
}


class CliError(Exception):
    """An expected failure: printed as one line, no traceback."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code
