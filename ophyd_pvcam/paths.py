"""Where data and the catalog live when nobody says otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_DATA = "OPHYD_PVCAM_DATA"


def data_root() -> Path:
    """The per-user data folder (``OPHYD_PVCAM_DATA`` overrides it)."""
    override = os.environ.get(ENV_DATA)
    return Path(override).expanduser() if override else platformdirs.user_data_path("ophyd-pvcam")


def default_write_path() -> Path:
    """Where HDF5 frame files go: ``<data root>/frames``."""
    return data_root() / "frames"


def default_catalog_path() -> Path:
    """Where the embedded catalog lives: ``<data root>/catalog``."""
    return data_root() / "catalog"
