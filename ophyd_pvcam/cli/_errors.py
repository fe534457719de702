"""The exit codes of ``ophyd-pvcam`` and the one exception its commands raise.

A command that meets an expected failure raises :class:`CliError` with the message
the user reads and the code a script tests; ``main`` prints it as one line and
returns the code.  The codes are documented (README, ``--help``): scripts rely on them.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ACQUISITION = 1  # an acquisition failed or could not start
EXIT_USAGE = 2  # bad arguments or settings
EXIT_CAMERA = 3  # no usable camera
EXIT_CATALOG = 4  # catalog or run not found


class CliError(Exception):
    """An expected failure: printed as one line, no traceback."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code
