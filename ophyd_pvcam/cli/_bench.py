"""What ``probe`` and ``check`` share: both borrow the camera for minutes of scans and
report what they find in their own tables, and either can be interrupted.

So the package's log lines (a stall is what the probe looks for; a failure is a row of
the check) stay off the terminal unless ``-v``, and Ctrl-C during a plan ends the
command with one line that says where the findings so far were saved.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ._errors import EXIT_ACQUISITION, CliError

QUIETED = ("ophyd_pvcam", "bluesky")  # loggers whose failures the reports show


def quiet_logs(verbose: bool) -> None:
    """Unless ``verbose``, only critical log lines from the package and bluesky."""
    if not verbose:
        for name in QUIETED:
            logging.getLogger(name).setLevel(logging.CRITICAL)


@contextmanager
def interruptible(what: str, saved_in: str | None) -> Iterator[None]:
    """Ctrl-C during a RunEngine plan ends the command with one line, like elsewhere."""
    from bluesky.utils import RunEngineInterrupted

    try:
        yield
    except RunEngineInterrupted:
        saved = f"; what it found so far is in {saved_in}" if saved_in else ""
        raise CliError(f"{what} was interrupted{saved}", EXIT_ACQUISITION) from None
