"""Serving the catalog to several machines: tiled on PostgreSQL, with an API key.

``ophyd-pvcam catalog-server`` runs this; see the README for running it as a
service.  The key comes from the environment or a file, is checked before
anything starts, and is never printed or put on a command line.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

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
    from tiled.catalog import from_uri
    from tiled.config import Authentication
    from tiled.server.app import build_app

    catalog_uri, table_uri = asyncpg_uri(database)
    storage = Path(storage).expanduser().resolve()
    storage.mkdir(parents=True, exist_ok=True)
    adapter = from_uri(
        catalog_uri,
        writable_storage=[str(storage), tables or table_uri],
        readable_storage=[str(Path(f).expanduser().resolve()) for f in frames],
        init_if_not_exists=True,
    )
    app = build_app(adapter, Authentication(single_user_api_key=check_api_key(api_key)))
    if not is_loopback(host):
        log.warning("the catalog server listens on %s: reachable from other machines", host)
    log.warning(
        "catalog server on http://%s:%d (frames read from %s)",
        host,
        port,
        ", ".join(map(str, frames)),
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
