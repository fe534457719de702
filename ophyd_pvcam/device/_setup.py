"""Setting up a session the way a beamline does: the RunEngine and the camera.

Used by the IPython profile, the command-line tool and the examples, so they
all record runs, show progress and guard against stalls the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ophyd_pvcam.catalog import open_catalog
from ophyd_pvcam.hardware import simulator_wanted

from ._preprocessors import FramesFolderCheck, StallGuard
from ._prime_bsi import PrimeBSI

if TYPE_CHECKING:
    from tiled.client.base import BaseClient

log = logging.getLogger(__name__)

BANNER = (
    "\n"
    "  ############################################################\n"
    "  #  SIMULATED CAMERA: no vendor PVCAM library was found.    #\n"
    "  #  'cam' is the ophyd-pvcam simulator of a Prime BSI.      #\n"
    "  #  Frames are synthetic. Install PVCAM to use the camera.  #\n"
    "  ############################################################\n"
)


def make_camera(
    name: str = "cam",
    *,
    write_path: str | os.PathLike | None = None,
    camera_name: str | None = None,
    simulated: bool | None = None,
    announce=print,
) -> PrimeBSI:
    """The camera: the real one when the vendor PVCAM is present, else the
    simulator, announced loudly.  ``simulated`` forces either."""
    if simulated is None:
        simulated = simulator_wanted()
    if simulated and announce is not None:
        announce(BANNER)
    return PrimeBSI(name, sim=simulated, camera_name=camera_name, write_path=write_path)


def make_run_engine(
    catalog: BaseClient | None = None,
    *,
    progress_bar: bool = True,
    best_effort: bool = False,
    metadata: dict | None = None,
) -> tuple[Any, Any]:
    """A RunEngine that records into ``catalog`` (opened if None), shows progress
    bars and fails plans the moment a camera stalls.  Returns (RE, catalog)."""
    from bluesky import RunEngine
    from bluesky.utils import ProgressBarManager
    from bluesky_tiled_plugins import TiledWriter

    client: BaseClient = open_catalog() if catalog is None else catalog
    engine = RunEngine(metadata or {})
    engine.subscribe(TiledWriter(client))
    engine.preprocessors.append(FramesFolderCheck(client))  # before anything is written
    engine.preprocessors.append(StallGuard())
    if progress_bar:
        # bluesky assigns it None in __init__, unannotated; its documented type is a callable
        engine.waiting_hook = ProgressBarManager()  # pyright: ignore[reportAttributeAccessIssue]
    show_summaries()
    if best_effort:
        from bluesky.callbacks.best_effort import BestEffortCallback

        callback = BestEffortCallback()
        callback.disable_plots()  # headless by default; enable_plots() in a GUI session
        engine.subscribe(callback)
    return engine, client


class _Summaries(logging.StreamHandler):
    """Prints each acquisition's one-line summary (frames written, lost, where)."""


def show_summaries(stream=None) -> None:
    """Show acquisition summaries (``ophyd_pvcam.summary``) on the terminal, and keep
    bluesky's "Run aborted" traceback off it: the failure itself is what the user sees,
    once (both still reach a log file if one is set up, see :func:`log_to_file`)."""
    summaries = logging.getLogger("ophyd_pvcam.summary")
    if not any(isinstance(h, _Summaries) for h in summaries.handlers):
        handler = _Summaries(stream or sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.setLevel(logging.INFO)
        summaries.addHandler(handler)
        summaries.setLevel(logging.INFO)
    bluesky = logging.getLogger("bluesky")
    if not bluesky.handlers:
        bluesky.addHandler(logging.NullHandler())


@contextlib.contextmanager
def summaries_hidden() -> Iterator[None]:
    """Keep acquisition summaries off the terminal for a while (they still reach a log
    file): for a program that reports each acquisition itself, as the check does, in
    whose table a summary naming its scratch folder would only be noise."""

    def hide(record: logging.LogRecord) -> bool:
        return False

    handlers = [
        h for h in logging.getLogger("ophyd_pvcam.summary").handlers if isinstance(h, _Summaries)
    ]
    for handler in handlers:
        handler.addFilter(hide)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(hide)


def log_to_file(path: str | os.PathLike) -> Path:
    """Send ophyd-pvcam's (and bluesky's) log records to a file, INFO and up."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    for name in ("ophyd_pvcam", "bluesky"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(min(logger.level or logging.INFO, logging.INFO))
    return path
