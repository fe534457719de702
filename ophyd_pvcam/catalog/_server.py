"""Serving the catalog to several machines: tiled on PostgreSQL, with an API key.

``ophyd-pvcam catalog-server`` runs this; see the README for running it as a
service.  The key comes from the environment or a file, is checked before
anything starts, and is never printed or put on a command line.

The server reads frame files only from its ``--frames`` folders (and never
learns others, unlike the embedded catalog): a run whose file lies elsewhere,
or whose path leaves those folders (``..``, symlinks), is refused when it
registers the file and when anyone reads it.  It tells clients its folders at
``/ophyd-pvcam/v1/frames`` (with the API key), so a camera writing elsewhere
fails before acquiring (:class:`ophyd_pvcam.device.FramesFolderCheck`).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from pathlib import Path

from fastapi import Request  # at module level: FastAPI resolves the route's annotation here

log = logging.getLogger(__name__)


def check_api_key(key: str | None) -> str:
    """tiled accepts only alphanumeric keys; refuse anything else before starting."""
    if not key:
        raise ValueError(
            "the catalog server needs an API key: set TILED_API_KEY, or give --api-key-file "
            "(a file holding the key); it is never printed"
        )
    if not key.isalnum() or len(key) < 8:
        raise ValueError("the API key must be at least 8 letters and digits (tiled's rule)")
    return key


def asyncpg_uri(database: str) -> tuple[str, str]:
    """(catalog URI with the async driver, table-storage URI without it)."""
    if database.startswith("postgresql+asyncpg://"):
        return database, database.replace("postgresql+asyncpg://", "postgresql://", 1)
    if database.startswith(("postgresql://", "postgres://")):
        plain = "postgresql://" + database.split("://", 1)[1]
        return plain.replace("postgresql://", "postgresql+asyncpg://", 1), plain
    raise ValueError(f"--database {database!r}: give a postgresql://user@host:port/name URI")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve_catalog(
    database: str,
    *,
    storage: Path,
    frames: list[Path],
    api_key: str,
    tables: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Run the catalog server until interrupted (blocks)."""
    import uvicorn

    app = build_server_app(database, storage=storage, frames=frames, api_key=api_key, tables=tables)
    if not is_loopback(host):
        log.warning("the catalog server listens on %s: reachable from other machines", host)
    log.warning(
        "catalog server on http://%s:%d (frames read from %s)",
        host,
        port,
        ", ".join(map(str, frames)),
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


def build_server_app(
    database: str,
    *,
    storage: Path,
    frames: list[Path],
    api_key: str,
    tables: str | None = None,
):
    """The catalog server's application: tiled on ``database``, reading frames only
    from ``frames``, with path safety, ``run.documents()`` and the frames route."""
    from fastapi.responses import JSONResponse
    from tiled.catalog import from_uri
    from tiled.config import Authentication
    from tiled.server.app import build_app

    from ._catalog import FRAMES_ROUTE, _serialization_registry
    from ._folders import FramesFolders
    from ._tiled import Guard, attach, hdf5_adapter

    key = check_api_key(api_key)
    catalog_uri, table_uri = asyncpg_uri(database)
    storage = Path(storage).expanduser().resolve()
    storage.mkdir(parents=True, exist_ok=True)
    folders = [Path(f).expanduser().resolve() for f in frames]
    adapter = from_uri(
        catalog_uri,
        writable_storage=[str(storage), tables or table_uri],
        readable_storage=[str(f) for f in folders],
        init_if_not_exists=True,
        adapters_by_mimetype={"application/x-hdf5": hdf5_adapter()},
    )
    advice = (
        "write frames under one of them (OPHYD_PVCAM_DATA, or the camera's write_path), "
        "or start the catalog server with --frames for that folder"
    )
    attach(adapter, Guard(frames=FramesFolders([storage, *folders], advice=advice)))
    app = build_app(
        adapter,
        Authentication(single_user_api_key=key),
        serialization_registry=_serialization_registry(),
    )

    @app.get(FRAMES_ROUTE, include_in_schema=False)
    async def frames_folders(request: Request):
        supplied = request.headers.get("authorization", "")
        scheme, _, given = supplied.partition(" ")
        if scheme.lower() != "apikey" or not secrets.compare_digest(given.strip(), key):
            return JSONResponse({"detail": "an API key is required"}, status_code=401)
        return {"frames": [str(f) for f in folders]}

    return app
