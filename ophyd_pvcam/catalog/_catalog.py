"""Where runs are recorded: an embedded tiled catalog by default, a tiled server when shared.

The embedded catalog is tiled on SQLite in a folder on local disk, served
inside this Python process (no server to run), and persistent: a later
process opens the same folder and reads the runs back, frames included,
wherever the camera wrote them (the catalog learns each run's frames folder;
see :mod:`ophyd_pvcam.catalog._folders` and ``docs/decisions/0005-...``).  Several
processes may create, write and read one embedded catalog at once: creation
happens under a lock, SQLite runs in WAL mode with a busy timeout, and the
processes take turns for each write (a lock file beside the database), with
a retry when SQLite still reports itself busy.

A catalog server (``ophyd-pvcam catalog-server``) reads frames only from the
folders it was started with: :func:`check_frames_folder` (and the RunEngine
preprocessor :class:`FramesFolderCheck`) tells a camera that writes elsewhere
before it acquires.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import logging
import os
import re
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ophyd_pvcam.config import api_key as configured_api_key
from ophyd_pvcam.config import setting
from ophyd_pvcam.paths import default_catalog_path, default_write_path

from ._folders import LEARNED_FILE, FramesFolders, LearnedFolders, is_inside, real

log = logging.getLogger(__name__)

ENV_API_KEY = "TILED_API_KEY"
LOCK_FILE = "catalog.lock"
OPEN_RUNS = "open-runs"
DATABASE = "catalog.db"
TABLES = "tables.sqlite"
BUSY_TIMEOUT_MS = 30_000
WRITE_LOCK_TIMEOUT_S = 120.0
WRITE_RETRIES = 5
FRAMES_ROUTE = "/ophyd-pvcam/v1/frames"


class CatalogError(RuntimeError):
    """The catalog cannot be opened; the message says why and what to do."""


class RunNotFound(KeyError):
    """No run (or more than one) matches a uid or uid prefix; the message says which."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such run"


def is_server_uri(location: str | os.PathLike | None) -> bool:
    """Whether a catalog location names a tiled server (an http or https URI) rather
    than a folder on this machine; None, the default location, is a folder."""
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
    ``catalog``, or the per-user data folder.  ``readable``: extra folders of
    frame files to read in this session (the embedded catalog already reads
    the default frames folder and every folder its runs were written to).
    ``api_key``: for a server (default ``TILED_API_KEY`` or the config file's
    ``api_key_file``).
    """
    location = location or setting("catalog") or default_catalog_path()
    if is_server_uri(location):
        return _open_server(str(location), api_key or configured_api_key())
    return _open_embedded(Path(location), [default_write_path(), *map(Path, readable)])


# ---- the embedded catalog ------------------------------------------------------------


class _FileLock:
    """An exclusive ``flock`` on a file, taken with a deadline; one holder per process
    at a time (a thread lock in front of the file lock)."""

    def __init__(self, path: Path):
        self.path = path
        self._thread_lock = threading.Lock()

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if not self._thread_lock.acquire(timeout=timeout):
            raise CatalogError(self._busy(timeout))
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            delay = 0.002
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        os.close(self._fd)
                        raise CatalogError(self._busy(timeout)) from None
                    time.sleep(delay)  # waiting for another process: no event to wait on
                    delay = min(delay * 2, 0.05)
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        try:
            os.close(self._fd)  # closing drops the flock
        finally:
            self._thread_lock.release()

    @contextlib.contextmanager
    def held(self, timeout: float):
        self.acquire(timeout)
        try:
            yield
        finally:
            self.release()

    def _busy(self, timeout: float) -> str:
        return (
            f"the catalog in {self.path.parent} stayed busy for {timeout:.0f} s: another "
            "process holds its lock (a process stopped with Ctrl-Z, or stuck?)"
        )


def _is_initialised(database: Path) -> bool:
    if not database.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def _use_wal(database: Path, *, adbc: bool = False) -> None:
    """WAL lets readers and one writer work at once; the mode is kept in the file.

    ``adbc``: open the file with the ADBC SQLite driver, as tiled does for the table
    store.  That driver carries its own copy of SQLite: opening and closing the file
    with Python's ``sqlite3`` while tiled's ADBC connections have it open would drop
    their locks and delete their WAL file under them (two SQLite libraries in one
    process do not know of each other's connections), losing every later write.
    """
    try:
        if adbc:
            import adbc_driver_sqlite.dbapi

            connection = adbc_driver_sqlite.dbapi.connect(str(database), autocommit=True)
        else:
            connection = sqlite3.connect(database, timeout=BUSY_TIMEOUT_MS / 1e3)
        with contextlib.closing(connection) as db, contextlib.closing(db.cursor()) as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode")
            row = cursor.fetchone()
            assert row is not None  # the pragma always answers one row: the mode
            if row[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.fetchall()
    except Exception as error:  # sqlite3.Error or ADBC's: another process has it open
        log.info("could not switch %s to WAL yet: %s", database, error)


def _refuse_foreign(database: Path) -> None:
    """A ``catalog.db`` that is not a tiled catalog is left as it is: damaged, or another
    program's database, it gets one line naming it, and nothing is created beside it."""
    if not database.is_file() or database.stat().st_size == 0:
        return
    advice = (
        "nothing was changed; restore it from a backup or move it away, or give another "
        "folder (--catalog, or OPHYD_PVCAM_CATALOG)"
    )
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as error:
        raise CatalogError(f"{database} is not a catalog ({error}): {advice}") from None
    if tables and not {"alembic_version", "nodes"} <= tables:
        shown = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
        raise CatalogError(
            f"{database} is another program's database (tables {shown}), not a tiled "
            f"catalog: {advice}"
        )


def _prepare(folder: Path) -> _FileLock:
    """Create the catalog once, whoever gets there first; returns its write lock."""
    _refuse_foreign(folder / DATABASE)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    lock = _FileLock(folder / LOCK_FILE)
    database = folder / DATABASE
    with lock.held(WRITE_LOCK_TIMEOUT_S):
        if not _is_initialised(database):
            log.info("Creating the catalog in %s", folder)
            # made under another name and renamed into place: a process that looks
            # before taking the lock sees no database or a whole one, never a half
            draft = folder / f".{DATABASE}.{os.getpid()}.new"
            try:
                _initialise(draft)
                draft.replace(database)
            except Exception as error:
                raise CatalogError(f"cannot create the catalog in {folder}: {error}") from None
            finally:
                draft.unlink(missing_ok=True)
        _use_wal(database)
        _use_wal(folder / TABLES, adbc=True)
    return lock


def _initialise(database: Path) -> None:
    """Create tiled's tables in a new SQLite file and stamp their schema revision.

    This is what ``tiled catalog init`` does.  tiled's ``from_uri(init_if_not_exists=True)``
    runs that command in a new Python process (about 3 s, most of it importing tiled
    again); here it runs in this process, on a thread of its own because both steps run
    an event loop of their own (alembic's migration environment calls ``asyncio.run``)
    and the caller may be inside one.  The caller holds the catalog's lock.
    """
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine
    from tiled.alembic_utils import stamp_head
    from tiled.catalog.alembic_constants import ALEMBIC_DIR, ALEMBIC_INI_TEMPLATE_PATH
    from tiled.catalog.core import initialize_database

    uri = f"sqlite+aiosqlite:///{database}"

    async def create_tables() -> None:
        engine = create_async_engine(uri)
        try:
            await initialize_database(engine)
        finally:
            await engine.dispose()

    failure: list[BaseException] = []

    def initialise() -> None:
        try:
            asyncio.run(create_tables())
            with warnings.catch_warnings():  # alembic's about tiled's ini file, not ours
                warnings.simplefilter("ignore", DeprecationWarning)
                stamp_head(Path(ALEMBIC_INI_TEMPLATE_PATH), Path(ALEMBIC_DIR), uri)
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)

    worker = threading.Thread(target=initialise, name="catalog-init")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def _tune_sqlite(adapter: Any) -> None:
    """A busy timeout on every SQLite connection tiled opens for this catalog."""
    from sqlalchemy import event

    def busy_timeout(connection, _record) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    event.listen(adapter.context.engine.sync_engine, "connect", busy_timeout)
    for storage in adapter.context.writable_storage.values():
        pool = getattr(storage, "_connection_pool", None)  # tables.sqlite (ADBC)
        if pool is not None:
            event.listen(pool, "connect", busy_timeout)


def _is_busy(error: BaseException) -> bool:
    text = str(error).lower()
    return "database is locked" in text or "database table is locked" in text


class _SerialWrites:
    """ASGI middleware: every write request takes the catalog's lock file, so processes
    sharing the catalog take turns; a write SQLite still calls busy is retried."""

    def __init__(self, app, lock: _FileLock):
        self.app = app
        self.lock = lock

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        import anyio

        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        await anyio.to_thread.run_sync(self.lock.acquire, WRITE_LOCK_TIMEOUT_S)
        try:
            for attempt in range(1, WRITE_RETRIES + 1):
                started = False
                replayed = False

                async def replay():
                    nonlocal replayed
                    if not replayed:
                        replayed = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()

                async def watch(message):
                    nonlocal started
                    started = True
                    await send(message)

                try:
                    await self.app(scope, replay, watch)
                    return
                except Exception as error:
                    if started or not _is_busy(error) or attempt == WRITE_RETRIES:
                        raise
                    log.warning("catalog busy (%s); retrying the write (%d)", error, attempt)
                    await anyio.sleep(0.05 * attempt)
        finally:
            self.lock.release()


def _serialization_registry():
    """tiled's registry plus the JSON-seq export of Bluesky runs (``run.documents()``)."""
    from bluesky_tiled_plugins.exporters import json_seq_exporter
    from tiled.media_type_registration import default_serialization_registry

    registry = copy.deepcopy(default_serialization_registry)
    registry.register("BlueskyRun", "application/json-seq", json_seq_exporter)
    return registry


def _open_embedded(folder: Path, readable: list[Path]) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")
        from tiled.catalog import from_uri
        from tiled.client import Context, from_context
        from tiled.server.app import build_app

    from ._markers import RunMarkers
    from ._tiled import ATTRIBUTE, Guard, attach, hdf5_adapter

    folder = folder.expanduser().resolve()
    lock = _prepare(folder)
    for path in readable:
        path.expanduser().mkdir(parents=True, exist_ok=True)
    database = folder / DATABASE
    data = folder / "data"
    adapter = from_uri(
        f"sqlite:///{database}",
        writable_storage=[str(data), f"sqlite:///{folder / TABLES}"],
        readable_storage=sorted({str(real(p.expanduser())) for p in readable}),
        adapters_by_mimetype={"application/x-hdf5": hdf5_adapter()},
    )
    frames = FramesFolders([data, *readable], LearnedFolders(folder / LEARNED_FILE))
    guard = Guard(frames=frames, runs=RunMarkers(folder / OPEN_RUNS))
    attach(adapter, guard)
    _tune_sqlite(adapter)
    logging.getLogger("tiled.server.app").setLevel(logging.WARNING)  # no version banner
    app = build_app(adapter, serialization_registry=_serialization_registry())
    app.add_middleware(_SerialWrites, lock=lock)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")
        context = Context.from_app(app)
    setattr(context, ATTRIBUTE, guard)  # so recovery and the CLI find it from any node
    client = from_context(context)
    log.info("Opened the embedded catalog in %s", folder)
    return client


def guard_of(catalog: Any):
    """The guard of an embedded catalog opened by :func:`open_catalog` (any node of
    it will do), else None."""
    from ._tiled import ATTRIBUTE

    return getattr(getattr(catalog, "context", None), ATTRIBUTE, None)


def embedded_folder(catalog: Any) -> Path | None:
    """The folder of an embedded catalog opened by :func:`open_catalog`, else None."""
    guard = guard_of(catalog)
    return guard.runs.folder.parent if guard is not None and guard.runs is not None else None


# ---- servers ------------------------------------------------------------------------


def _reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, naming the address, if nothing listens there (tiled's client
    would retry for half a minute)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            pass
    except OSError as error:
        raise CatalogError(f"Cannot reach the catalog server at {uri}: {error}") from None


def _open_server(uri: str, api_key: str | None) -> Any:
    import httpx
    from tiled.client import from_uri
    from tiled.client.utils import ClientError

    _reachable(uri)
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
    except (OSError, httpx.HTTPError) as error:
        raise CatalogError(f"Cannot reach the catalog server at {uri}: {error}") from None


def frames_folders(catalog: Any) -> list[Path] | None:
    """The folders a catalog reads frame files from, or None when any folder will do
    (the embedded catalog learns its runs' folders) or the server does not say
    (a tiled server not started by ``ophyd-pvcam catalog-server``)."""
    context = getattr(catalog, "context", None)
    if context is None or guard_of(catalog) is not None:
        return None  # the embedded catalog
    url = str(context.api_uri).split("/api/", 1)[0] + FRAMES_ROUTE
    try:
        response = context.http_client.get(url)
    except Exception as error:  # an unreachable route means "cannot tell"
        log.info("cannot ask %s for its frames folders: %s", url, error)
        return None
    if response.status_code != 200:
        return None
    return [Path(p) for p in response.json().get("frames", [])]


def check_frames_folder(catalog: Any, folder: str | os.PathLike, *, device: str = "") -> None:
    """Raise :class:`CatalogError` (one line) when the catalog could not read frames
    written under ``folder``; do nothing when it can, or cannot tell.  The embedded
    catalog reads any folder: it learns this one now (so that recovery finds the
    files of a run killed before it registered them)."""
    guard = guard_of(catalog)
    if guard is not None:
        guard.frames.learn(folder)
        return
    folders = frames_folders(catalog)
    if folders is None:
        return
    where = real(Path(folder).expanduser())
    if any(is_inside(where, f) for f in folders):
        return
    who = f"{device} writes" if device else "frames are written"
    raise CatalogError(
        f"{who} to {folder}, but the catalog server reads frames only from "
        f"{', '.join(map(str, folders)) or 'no folder'}: set OPHYD_PVCAM_DATA (or the "
        "camera's write_path) to a folder under one of them, or start the server with "
        f"--frames {folder}"
    )


# ---- finding runs -------------------------------------------------------------------

_UID_PREFIX = re.compile(r"[0-9a-fA-F-]+")


def find_run(catalog: Any, uid: str) -> Any:
    """The run whose uid is ``uid`` or starts with it (as ``ophyd-pvcam show`` accepts).

    Raises :class:`RunNotFound` (a ``KeyError``) when no run, or more than one,
    matches; the message says which.
    """
    uid = uid.strip()
    if not uid or "/" in uid:  # the catalog itself, or a path inside a run: not a run
        raise RunNotFound(f"no run {uid!r} in the catalog")
    with contextlib.suppress(KeyError):
        return catalog[uid]
    if not _UID_PREFIX.fullmatch(uid):
        raise RunNotFound(f"no run {uid!r} in the catalog")
    from tiled.queries import Like

    matches = list(catalog.search(Like("start.uid", f"{uid.lower()}%")).keys()[:2])
    if not matches:
        raise RunNotFound(f"no run {uid!r} in the catalog")
    if len(matches) > 1:
        found = len(catalog.search(Like("start.uid", f"{uid.lower()}%")))
        raise RunNotFound(f"{uid!r} matches {found} runs; give more of the uid")
    return catalog[matches[0]]
