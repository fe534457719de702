"""Where data and the catalog live when nobody says otherwise."""

from __future__ import annotations

from pathlib import Path

import platformdirs

from .config import setting


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
