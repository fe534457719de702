"""How a run sits in the catalog: its streams, which keys are camera images, and the
frame files behind them.

Export (documents for databroker, TIFF) and recovery (closing a run a dead process
left open) both walk a run this way; the walk is written once, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._folders import path_of

FRAME_FILE_SUFFIXES = (".h5", ".hdf5")


def base(node: Any) -> Any:
    """The plain tiled node beneath bluesky-tiled-plugins' run and stream views."""
    return getattr(node, "base", node)


def streams(run: Any) -> dict[str, Any]:
    """A run's streams by name, as plain tiled nodes."""
    run_base = base(run)
    return {name: base(run_base[name]) for name in run_base}


def is_image(data_key: Mapping[str, Any]) -> bool:
    """Whether a descriptor's data key is a camera image held in a file."""
    return data_key.get("external") is not None and len(data_key.get("shape") or ()) >= 2


def node_files(node: Any) -> list[Path]:
    """The files behind one external array node (a camera's images), in order."""
    found = []
    for source in node.data_sources() or []:
        for asset in sorted(source.assets or [], key=lambda a: a.num or 0):
            path = path_of(asset.data_uri)
            if path is not None:
                found.append(Path(path))
    return found


def registered_files(run: Any) -> list[Path]:
    """Every frame file any key of any stream of a run references."""
    found = []
    for stream in streams(run).values():
        for key in stream:
            try:
                files = node_files(stream[key])
            except Exception:  # a table or a container: no files
                continue
            found += [path for path in files if path.name.endswith(FRAME_FILE_SUFFIXES)]
    return found
