"""Which catalog a command reads or records into, and which run of it the user means.

``--catalog`` names a folder or a tiled server; without it the environment or the
config file may; else the per-user data folder, which the first run creates.  A
catalog someone named must exist; a server must answer within seconds.  Every way
this fails is one line and exit code 4 (a blank run uid: 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._errors import EXIT_CATALOG, EXIT_USAGE, CliError

SERVER_TIMEOUT_S = 5  # an unreachable catalog server or database is reported within this


def catalog_location(args: argparse.Namespace) -> tuple[str, bool]:
    """(where the catalog is, whether someone named it: --catalog, the environment or
    the config file, rather than the default folder)."""
    from ophyd_pvcam.config import setting
    from ophyd_pvcam.paths import default_catalog_path

    if args.catalog:
        return args.catalog, True
    configured = setting("catalog")
    if configured:
        return configured, True
    return str(default_catalog_path()), False


def open_or_create(args: argparse.Namespace) -> tuple[Any, str]:
    """(catalog, location): the catalog to record into, created if it is a folder
    that holds none yet."""
    catalog, location = _open(args, must_exist=False)
    assert catalog is not None  # only an existing catalog may be missing
    return catalog, location


def open_if_any(args: argparse.Namespace) -> tuple[Any | None, str]:
    """(catalog, location) of a catalog to read.  A named catalog that does not exist
    is an error; the default folder before its first run is (None, location)."""
    return _open(args, must_exist=True)


def open_existing(args: argparse.Namespace) -> Any:
    """The catalog to read, which must exist (the default folder too)."""
    catalog, location = open_if_any(args)
    if catalog is None:
        raise CliError(f"no catalog at {location} yet: 'ophyd-pvcam demo' makes one", EXIT_CATALOG)
    return catalog


def _open(args: argparse.Namespace, must_exist: bool) -> tuple[Any | None, str]:
    from ophyd_pvcam.catalog import DATABASE, is_server_uri, open_catalog

    location, named = catalog_location(args)
    if is_server_uri(location):
        check_server(location)
        return open_catalog(location), location
    folder = Path(location).expanduser()
    if must_exist and not (folder / DATABASE).is_file():
        if not named:
            return None, location
        if not folder.exists():
            why = "no such folder"
        elif not folder.is_dir():
            why = "that is a file, not a catalog folder"
        else:
            why = f"the folder holds no {DATABASE}"
        raise CliError(f"no catalog at {location}: {why}", EXIT_CATALOG)
    try:
        return open_catalog(folder), location
    except OSError as error:
        raise CliError(
            f"cannot open the catalog in {location}: {error.strerror or error}", EXIT_CATALOG
        ) from None


def check_server(uri: str) -> None:
    """Fail within seconds, naming the address, when a catalog server does not answer
    (tiled's client would retry for most of a minute)."""
    import httpx

    try:
        httpx.get(uri.rstrip("/") + "/api/v1/", timeout=SERVER_TIMEOUT_S)
    except httpx.TimeoutException:
        raise CliError(
            f"the catalog server at {uri} did not answer within {SERVER_TIMEOUT_S:g} s",
            EXIT_CATALOG,
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise CliError(f"cannot reach the catalog server at {uri}: {error}", EXIT_CATALOG) from None


def short(uid: str) -> str:
    """A run uid as the commands print it: its first 8 characters (enough to find it)."""
    return uid[:8]


def uid_given(uid: str) -> str:
    """The run uid the user typed, refused (exit 2) when blank."""
    text = uid.strip()
    if not text:
        raise CliError("give a run uid, or a unique start of one ('ophyd-pvcam runs')", EXIT_USAGE)
    return text


def find_run(catalog: Any, uid: str) -> Any:
    """The run ``uid`` (or a unique start of one) names in ``catalog``."""
    from ophyd_pvcam.catalog import RunNotFound
    from ophyd_pvcam.catalog import find_run as find

    text = uid_given(uid)
    try:
        run = find(catalog, text)
    except RunNotFound as error:
        hint = " (try 'ophyd-pvcam runs')" if str(error).startswith("no run") else ""
        raise CliError(f"{error}{hint}", EXIT_CATALOG) from None
    if "start" not in (run.metadata or {}):  # a path into a run ("uid/primary"), not a run
        raise CliError(f"no run {text!r} in the catalog (try 'ophyd-pvcam runs')", EXIT_CATALOG)
    return run
