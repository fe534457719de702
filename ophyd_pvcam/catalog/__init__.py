"""Where runs are recorded and read back: the embedded tiled catalog (or a tiled
server), the folders it may read frames from, recovery of runs a dead process
left open, export (documents for databroker, TIFF), and the PostgreSQL server.
"""

from ._catalog import (
    DATABASE,
    FRAMES_ROUTE,
    CatalogError,
    RunNotFound,
    check_frames_folder,
    embedded_folder,
    find_run,
    frames_folders,
    guard_of,
    is_server_uri,
    open_catalog,
)
from ._export import documents, export_tiff, frame_files, image_keys
from ._markers import RunIsLive
from ._open_runs import left_open, open_runs, run_files
from ._overview import (
    RecordedFrame,
    RunImages,
    RunsOverview,
    RunState,
    files_not_in_run,
    newest_runs,
    run_images,
)
from ._recovery import recover, recover_run
from ._server import asyncpg_uri, check_api_key, serve_catalog

__all__ = [
    "DATABASE",
    "FRAMES_ROUTE",
    "CatalogError",
    "RecordedFrame",
    "RunImages",
    "RunIsLive",
    "RunNotFound",
    "RunState",
    "RunsOverview",
    "asyncpg_uri",
    "check_api_key",
    "check_frames_folder",
    "documents",
    "embedded_folder",
    "export_tiff",
    "files_not_in_run",
    "find_run",
    "frame_files",
    "frames_folders",
    "guard_of",
    "image_keys",
    "is_server_uri",
    "left_open",
    "newest_runs",
    "open_catalog",
    "open_runs",
    "recover",
    "recover_run",
    "run_files",
    "run_images",
    "serve_catalog",
]
