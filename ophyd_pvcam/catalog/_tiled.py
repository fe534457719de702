"""The few places where ophyd-pvcam reaches into tiled's catalog (tiled 0.2.x).

tiled offers no hook for "a file is being registered" or "a run was
created/closed", and its own readable-storage check compares paths without
normalising them (a ``..`` escapes it).  :func:`install` wraps four methods of
tiled's catalog adapters; each wrapper acts only for catalogs that carry a
:class:`Guard` (the ones :func:`ophyd_pvcam.open_catalog` and the catalog
server build) and leaves every other tiled catalog in the process alone:

- reading a file: :meth:`FramesFolders.check_read` replaces tiled's check;
- registering a file (``_put_asset``, the one place every asset passes):
  :meth:`FramesFolders.admit` refuses unsafe paths and learns folders;
- creating a run (a ``BlueskyRun`` node at the top) and writing its stop
  document: the embedded catalog marks the run open while this process
  records it (see :mod:`ophyd_pvcam.catalog._recovery`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from dataclasses import dataclass
from typing import Any

from ._folders import FramesFolders, PathRefused, path_of

log = logging.getLogger(__name__)

ATTRIBUTE = "ophyd_pvcam_guard"


@dataclass
class Guard:
    """What one catalog enforces: its frames folders, and (embedded) its open-run markers."""

    frames: FramesFolders
    runs: Any = None  # recovery.RunMarkers for the embedded catalog


def hdf5_adapter() -> type:
    """tiled's HDF5 array adapter, opening a file in SWMR mode only while it is open
    for writing (or its writer died), and plainly once closed: the way
    area-detector-handlers' ``AD_HDF5`` handler opens it, so one process can read a
    run through databroker and through tiled (HDF5 refuses to open a file twice
    with different SWMR flags)."""
    return _frame_file_adapter()


@functools.cache
def _frame_file_adapter() -> type:
    from tiled.adapters.hdf5 import HDF5ArrayAdapter
    from tiled.utils import path_from_uri

    from ophyd_pvcam.storage import is_closed

    class FrameFileAdapter(HDF5ArrayAdapter):
        @classmethod
        def from_catalog(cls, data_source, node, /, *args: Any, **parameters: Any):
            # a pass-through: tiled calls it with keywords, which go on as they came
            uris = parameters.get("data_uris") or [
                a.data_uri for a in data_source.assets if a.parameter == "data_uris"
            ]
            paths = [path_from_uri(u) for u in uris if u] or [
                path_from_uri(data_source.assets[0].data_uri)
            ]
            with contextlib.suppress(OSError):  # a missing file: let tiled report it
                parameters["swmr"] = not all(is_closed(p) for p in paths)
            return super().from_catalog(data_source, node, *args, **parameters)

    return FrameFileAdapter


def attach(adapter: Any, guard: Guard) -> None:
    """Make a tiled catalog adapter (``tiled.catalog.from_uri``) enforce ``guard``."""
    install()
    setattr(adapter.context, ATTRIBUTE, guard)


def _guard(adapter: Any) -> Guard | None:
    return getattr(getattr(adapter, "context", None), ATTRIBUTE, None)


@functools.cache
def install() -> None:
    """Wrap tiled's catalog adapter methods once per process (idempotent)."""
    from tiled.catalog import adapter as catalog

    node_cls, container_cls = catalog.CatalogNodeAdapter, catalog.CatalogContainerAdapter
    expected = {
        (node_cls, "_ensure_uri_within_readable_storage"): False,
        (node_cls, "_put_asset"): True,
        (node_cls, "replace_metadata"): True,
        (container_cls, "create_node"): True,
    }
    for (cls, name), is_async in expected.items():
        method = getattr(cls, name, None)
        if method is None or inspect.iscoroutinefunction(method) != is_async:
            raise RuntimeError(
                f"tiled's {cls.__name__}.{name} is not what ophyd-pvcam expects: this tiled "
                "version is not supported (install tiled>=0.2.20,<0.3)"
            )

    original_check = node_cls._ensure_uri_within_readable_storage

    def check(self, data_uri):
        guard = _guard(self)
        if guard is None:
            return original_check(self, data_uri)
        path = path_of(data_uri)
        if path is None:
            return None  # not a file: tiled manages it
        try:
            guard.frames.check_read(path)
        except PathRefused as error:
            from fastapi import HTTPException

            # 403, not tiled's RuntimeError: a 5xx would make clients retry for 45 s
            raise HTTPException(status_code=403, detail=str(error)) from None
        return None

    original_put = node_cls._put_asset

    async def put_asset(self, db, asset):
        guard = _guard(self)
        path = path_of(asset.data_uri) if guard is not None else None
        if guard is not None and path is not None:
            from fastapi import HTTPException

            try:
                learned = guard.frames.admit(path)
            except PathRefused as error:
                raise HTTPException(status_code=403, detail=str(error)) from None
            if learned is not None:
                log.info("The catalog now reads frames from %s", learned)
        return await original_put(self, db, asset)

    original_create = container_cls.create_node

    async def create_node(self, *args, **kwargs):
        node = await original_create(self, *args, **kwargs)
        guard = _guard(self)
        if guard is not None and guard.runs is not None and self.node.id == 0:
            specs = kwargs.get("specs") or (args[3] if len(args) > 3 else None) or []
            if any(getattr(spec, "name", None) == "BlueskyRun" for spec in specs):
                guard.runs.opened(node.node.key)
        return node

    original_replace = node_cls.replace_metadata

    async def replace_metadata(self, metadata=None, *args, **kwargs):
        result = await original_replace(self, metadata, *args, **kwargs)
        guard = _guard(self)
        if (
            guard is not None
            and guard.runs is not None
            and getattr(self.node, "parent", None) == 0
            and isinstance(metadata, dict)
            and "stop" in metadata
        ):
            guard.runs.closed(self.node.key)
        return result

    node_cls._ensure_uri_within_readable_storage = check
    node_cls._put_asset = put_asset
    node_cls.replace_metadata = replace_metadata
    container_cls.create_node = create_node
