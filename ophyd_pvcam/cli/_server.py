"""``ophyd-pvcam catalog-server``: the shared catalog, served from PostgreSQL by tiled.

Everything that would otherwise fail minutes later, or as a traceback from deep inside
uvicorn or the database driver, is tried first and reported in one line: the API key,
the address to listen on, and a login to each database (within seconds, naming host
and port, never the password).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ._catalogs import SERVER_TIMEOUT_S
from ._errors import EXIT_CATALOG, EXIT_OK, EXIT_USAGE, CliError
from ._options import integer


def add_to(commands: Any) -> None:
    server = commands.add_parser(
        "catalog-server",
        help="serve the catalog from PostgreSQL to other machines (tiled, with an API key)",
        description="Runs a tiled catalog server on PostgreSQL. The API key comes from "
        "$TILED_API_KEY or --api-key-file and is never printed. Clients: "
        "OPHYD_PVCAM_CATALOG=http://HOST:PORT and the same TILED_API_KEY.",
    )
    server.add_argument(
        "--database", required=True, help="postgresql://user@host:port/name of the catalog database"
    )
    server.add_argument("--tables", help="postgresql:// URI for event tables (default: --database)")
    server.add_argument(
        "--storage", required=True, help="folder the server may write (arrays it stores itself)"
    )
    server.add_argument(
        "--frames",
        action="append",
        help="folder of frame files the server may read (repeatable; "
        "default: the data folder's frames)",
    )
    server.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    server.add_argument("--port", type=port, default=8000, help="port (default 8000)")
    server.add_argument("--api-key-file", help="file holding the API key")
    server.set_defaults(run=run)


def port(text: str) -> int:
    """A TCP port number, 1..65535."""
    value = integer(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1..65535)")
    return value


def run(args: argparse.Namespace) -> int:
    from ophyd_pvcam.catalog import asyncpg_uri, check_api_key, serve_catalog
    from ophyd_pvcam.config import api_key
    from ophyd_pvcam.paths import default_write_path

    if args.api_key_file:
        try:
            key = Path(args.api_key_file).read_text().strip()
        except OSError as error:
            raise CliError(f"cannot read --api-key-file: {error}", EXIT_USAGE) from None
    else:
        key = api_key()
    try:
        key = check_api_key(key)
        asyncpg_uri(args.database)
    except ValueError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    _check_listen(args.host, args.port)
    for uri in filter(None, (args.database, args.tables)):
        _check_database(uri)
    logging.getLogger("ophyd_pvcam").setLevel(logging.INFO)
    try:
        serve_catalog(
            args.database,
            storage=Path(args.storage),
            frames=[Path(f) for f in (args.frames or [default_write_path()])],
            api_key=key,
            tables=args.tables,
            host=args.host,
            port=args.port,
        )
    except Exception as error:  # the database refused us (password, no such database...)
        if not _is_database_error(error):
            raise
        raise CliError(
            f"the catalog database {_without_password(args.database)} refused: "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}",
            EXIT_CATALOG,
        ) from None
    return EXIT_OK


def _check_listen(host: str, port: int) -> None:
    """The address is free to listen on (uvicorn would exit with 3 otherwise)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise CliError(f"--host {host}: {error.strerror or error}", EXIT_USAGE) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise CliError(
                f"cannot listen on {host}:{port}: {error.strerror or error} (another server "
                "there? choose another --port)",
                EXIT_USAGE,
            ) from None


def _check_database(uri: str) -> None:
    """Fail within seconds, naming host and port, when PostgreSQL cannot be reached."""
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
        host, port = parts.hostname or "localhost", parts.port or 5432
    except ValueError as error:
        raise CliError(f"--database {uri!r}: {error}", EXIT_USAGE) from None
    if host.startswith("/"):
        return  # a Unix socket folder: let the driver try it
    try:
        socket.create_connection((host, port), timeout=SERVER_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise CliError(
            f"cannot reach PostgreSQL at {host}:{port} (--database): {reason}; is the "
            "database server running there?",
            EXIT_CATALOG,
        ) from None
    _log_in_to_database(uri, f"{host}:{port}")


def _log_in_to_database(uri: str, where: str) -> None:
    """Log in once, with a deadline: a wrong user, password or database name, or a port
    that is not PostgreSQL's, is one line now rather than a traceback (or a wait of a
    minute) when the server starts."""
    import asyncio

    import asyncpg

    plain = "postgresql://" + uri.split("://", 1)[1]

    async def log_in() -> None:
        connection = await asyncpg.connect(plain, timeout=SERVER_TIMEOUT_S)
        await connection.close()

    try:
        asyncio.run(asyncio.wait_for(log_in(), SERVER_TIMEOUT_S + 1))
    except TimeoutError:
        raise CliError(
            f"PostgreSQL at {where} did not answer within {SERVER_TIMEOUT_S:g} s "
            "(is it a PostgreSQL server?)",
            EXIT_CATALOG,
        ) from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CliError(
            f"PostgreSQL at {where} refused {_without_password(uri)}: {reason}", EXIT_CATALOG
        ) from None


def _is_database_error(error: BaseException) -> bool:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - installed with tiled's server extras
        return isinstance(error, OSError)
    return isinstance(error, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError))


def _without_password(uri: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
        if parts.password:
            return uri.replace(f":{parts.password}@", ":***@", 1)
    except ValueError:
        pass
    return uri
