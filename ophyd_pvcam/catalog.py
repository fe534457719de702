"""Where runs are recorded: an embedded tiled catalog by default, a tiled server when shared.

The embedded catalog is tiled on SQLite in a folder on local disk, served
inside this Python process (no server to run), and persistent: a later
process opens the same folder and reads the runs back, frames included.  The
folders where frame files are written must be listed as readable, or tiled
refuses to serve them.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import api_key as configured_api_key
from .config import setting
from .paths import default_catalog_path, default_write_path

log = logging.getLogger(__name__)

ENV_API_KEY = "TILED_API_KEY"


class CatalogError(RuntimeError):
    """The catalog cannot be opened; the message says why and what to do."""


def is_server_uri(location: str | os.PathLike | None) -> bool:
    return str(location or "").startswith(("http://", "https://"))


def open_catalog(
    location: str | os.PathLike | None = None,
    *,
    readable: Iterable[str | os.PathLike] = (),
    api_key: str | None = None,
) -> Any:
    """Open the catalog and return a tiled client (subscribe ``TiledWriter(client)``).

    ``location``: a folder for the embedded catalog, or a tiled server address
    (``http(s)://...``); default ``OPHYD_PVCAM_CATALOG``, the config file's
    ``catalog``, or the per-user data folder.  ``readable``: folders of frame
    files besides the default one.  ``api_key``: for a server (default
    ``TILED_API_KEY`` or the config file's ``api_key_file``).
    """
    location = location or setting("catalog") or default_catalog_path()
    if is_server_uri(location):
        return _open_server(str(location), api_key or configured_api_key())
    return _open_embedded(Path(location), [default_write_path(), *map(Path, readable)])


def _open_embedded(folder: Path, readable: list[Path]) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")
        from tiled.catalog import from_uri
        from tiled.client import Context, from_context
        from tiled.server.app import build_app

    folder = folder.expanduser().resolve()
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for path in readable:
        path.expanduser().mkdir(parents=True, exist_ok=True)
    database = folder / "catalog.db"
    adapter = from_uri(
        f"sqlite:///{database}",
        writable_storage=[str(folder / "data"), f"sqlite:///{folder / 'tables.sqlite'}"],
        readable_storage=sorted({str(p.expanduser().resolve()) for p in readable}),
        init_if_not_exists=not database.exists(),  # initialising costs ~2.5 s
    )
    logging.getLogger("tiled.server.app").setLevel(logging.WARNING)  # no version banner
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")
        client = from_context(Context.from_app(build_app(adapter)))
    log.info("Opened the embedded catalog in %s", folder)
    return client


def _open_server(uri: str, api_key: str | None) -> Any:
    from tiled.client import from_uri
    from tiled.client.utils import ClientError

    try:
        return from_uri(uri, api_key=api_key)
    except ClientError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status == 401:
            raise CatalogError(
                f"The catalog server at {uri} refused the API key. Pass the right one "
                f"(api_key=... or {ENV_API_KEY})."
            ) from None
        raise CatalogError(f"The catalog server at {uri} answered: {error}") from None
    except RuntimeError as error:
        if "API key" in str(error):
            raise CatalogError(
                f"The catalog server at {uri} needs an API key: pass api_key=... or set "
                f"{ENV_API_KEY}."
            ) from None
        raise
    except OSError as error:
        raise CatalogError(f"Cannot reach the catalog server at {uri}: {error}") from None
