"""Where data and the catalog live when nobody says otherwise."""

from __future__ import annotations

import itertools
import time
import uuid
from pathlib import Path

import platformdirs

from ophyd_pvcam.config import setting


def data_root() -> Path:
    """The data folder: ``OPHYD_PVCAM_DATA``, the config file's ``data``, or a per-user one."""
    configured = setting("data")
    return (
        Path(configured).expanduser() if configured else platformdirs.user_data_path("ophyd-pvcam")
    )


def default_write_path() -> Path:
    """Where HDF5 frame files go: ``<data root>/frames``."""
    return data_root() / "frames"


def default_catalog_path() -> Path:
    """Where the embedded catalog lives: ``<data root>/catalog``."""
    return data_root() / "catalog"


def frame_file_path(root: Path, device: str, kind: str, uid: str | None) -> str:
    """A new frame file's path relative to ``root``.

    ``YYYY/MM/DD/<run uid>/<device>_<kind>.h5`` (``_2``, ``_3``... when a run has
    several), or ``YYYY/MM/DD/no-run-<HHMMSS>-<random>/...`` outside a run: a person
    finds a run's files by its uid.  ``device``: the device's name, or the file name
    an ophyd-async ``PathProvider`` gave.
    """
    day = time.strftime("%Y/%m/%d")
    folder = uid or f"no-run-{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:8]}"
    stem = f"{device}_{kind}"
    for n in itertools.count(1):
        relative = f"{day}/{folder}/{stem if n == 1 else f'{stem}_{n}'}.h5"
        if not (root / relative).exists():
            return relative
    raise AssertionError("unreachable")
