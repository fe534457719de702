"""One place for a beamline's settings: environment variables, then a small config file.

``~/.config/ophyd-pvcam/config.toml`` (or the file named by
``OPHYD_PVCAM_CONFIG``) may hold::

    catalog = "http://catalog-host:8000"   # or a folder for the embedded catalog
    api_key_file = "/etc/ophyd-pvcam/api-key"   # read, never printed
    data = "/data/ophyd-pvcam"              # frames (and the default catalog) go here

Environment variables win over the file: ``OPHYD_PVCAM_CATALOG``,
``TILED_API_KEY``, ``OPHYD_PVCAM_DATA``.  The profile, the command-line tool
and the examples all read it through :func:`setting`, so moving a beamline
from the embedded catalog to a server is one line.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

import platformdirs

ENV_CONFIG = "OPHYD_PVCAM_CONFIG"
KEYS = {"catalog": "OPHYD_PVCAM_CATALOG", "data": "OPHYD_PVCAM_DATA", "api_key_file": None}


class ConfigError(ValueError):
    """The config file cannot be read; the message names the file and the problem."""


def config_path() -> Path:
    """The config file: ``OPHYD_PVCAM_CONFIG`` if set, else ``config.toml`` in the
    per-user config folder.  It need not exist."""
    override = os.environ.get(ENV_CONFIG)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_config_path("ophyd-pvcam") / "config.toml"


@lru_cache(maxsize=8)
def _read(path: Path, mtime: float) -> dict[str, Any]:
    try:
        values = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read the config file {path}: {error}") from None
    unknown = set(values) - set(KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {sorted(unknown)}; known: {sorted(KEYS)}")
    return values


def file_settings() -> dict[str, Any]:
    """Everything the config file holds (empty if there is none); read again only when
    the file changes.  Raises :class:`ConfigError` if it cannot be read."""
    path = config_path()
    if not path.is_file():
        return {}
    return _read(path, path.stat().st_mtime)


def setting(name: str) -> str | None:
    """A setting from its environment variable, else the config file, else None."""
    variable = KEYS[name]
    if variable and os.environ.get(variable):
        return os.environ[variable]
    value = file_settings().get(name)
    return None if value is None else str(value)


def api_key() -> str | None:
    """``TILED_API_KEY``, else the contents of the config file's ``api_key_file``."""
    if os.environ.get("TILED_API_KEY"):
        return os.environ["TILED_API_KEY"]
    key_file = setting("api_key_file")
    if not key_file:
        return None
    try:
        return Path(key_file).expanduser().read_text().strip() or None
    except OSError as error:
        raise ConfigError(f"cannot read the API key file {key_file}: {error}") from None
