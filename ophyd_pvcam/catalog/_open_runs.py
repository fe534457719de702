"""Runs with a start document and no stop document: which are dead, which live, and
where their frame files are.

A run whose embedded catalog keeps a marker for it (``_markers``) is dead when nobody
holds the marker and live when somebody does.  Runs without a marker (recorded
through a catalog server, or before markers existed) count as dead once their frame
files and start have been idle for ``idle`` seconds (an hour by default).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._folders import real
from ._markers import RunMarkers
from ._nodes import registered_files

DEFAULT_IDLE_S = 3600.0


@dataclass
class OpenRun:
    """A run with a start document and no stop document."""

    uid: str
    start: dict
    state: str  # "dead", "live" or "idle?" (no marker: judged by idle time)
    detail: str = ""

    @property
    def recoverable(self) -> bool:
        return self.state == "dead"


def markers_of(catalog: Any) -> RunMarkers | None:
    """The open-run markers of an embedded catalog (None for a server's)."""
    from ._catalog import guard_of

    return getattr(guard_of(catalog), "runs", None)


def _search_roots(catalog: Any, frames: Iterable[str | os.PathLike]) -> list[Path]:
    from ophyd_pvcam.paths import default_write_path

    from ._catalog import guard_of

    guard = guard_of(catalog)
    roots = [Path(f).expanduser() for f in frames]
    if guard is not None:
        roots += guard.frames.folders()
    roots.append(default_write_path())
    seen, unique = set(), []
    for root in roots:
        resolved = real(root)
        if resolved not in seen and resolved.is_dir():
            seen.add(resolved)
            unique.append(resolved)
    return unique


def _natural(path: Path) -> tuple:
    """cam_fly.h5 < cam_fly_2.h5 < cam_fly_10.h5"""
    stem = path.stem
    head, _, tail = stem.rpartition("_")
    if tail.isdigit() and head:
        return (str(path.parent), head, int(tail))
    return (str(path.parent), stem, 1)


def run_files(catalog: Any, uid: str, frames: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Frame files of a run: those its streams reference, and those in its run folder
    (``<frames folder>/YYYY/MM/DD/<uid>/``) under any folder the catalog reads or
    ``frames`` names."""
    run = catalog[uid]
    files = {real(p): p for p in registered_files(run)}
    for root in _search_roots(catalog, frames):
        for path in root.glob(f"*/*/*/{uid}/*.h5"):
            files.setdefault(real(path), path)
    return sorted(files.values(), key=_natural)


def _idle_seconds(start: dict, files: list[Path]) -> float:
    latest = float(start.get("time", 0.0))
    for path in files:
        with contextlib.suppress(OSError):
            latest = max(latest, path.stat().st_mtime)
    return time.time() - latest


def judge(
    catalog: Any,
    uid: str,
    start: dict,
    *,
    idle: float = DEFAULT_IDLE_S,
    frames: Iterable[str | os.PathLike] = (),
) -> OpenRun:
    """Whether open run ``uid`` is dead, live or only idle (see the module doc)."""
    markers = markers_of(catalog)
    if markers is not None and markers.exists(uid):
        holder = markers.holder(uid)
        if holder is None:
            return OpenRun(uid, start, "dead", "the process recording it is gone")
        return OpenRun(uid, start, "live", f"being recorded by {holder}")
    files = run_files(catalog, uid, frames)
    quiet = _idle_seconds(start, files)
    if quiet >= idle:
        return OpenRun(uid, start, "dead", f"nothing written for {quiet / 60:.0f} min")
    return OpenRun(
        uid,
        start,
        "idle?",
        f"no marker says who records it, and it wrote {quiet:.0f} s ago "
        f"(a run counts as dead after {idle:.0f} s idle; --force to close it now)",
    )


def open_runs(
    catalog: Any, *, idle: float = DEFAULT_IDLE_S, frames: Iterable[str | os.PathLike] = ()
) -> list[OpenRun]:
    """Runs with no stop document, each judged dead, live or idle (see the module doc)."""
    from tiled.queries import KeyPresent

    found = []
    for uid, run in catalog.search(KeyPresent("stop", exists=False)).items():
        start = run.metadata.get("start")
        if start is None:
            continue
        found.append(judge(catalog, uid, start, idle=idle, frames=frames))
    return found


def left_open(catalog: Any) -> list[str]:
    """Uids of runs left open by a process that is gone (embedded catalog: by their
    markers); markers of runs that were closed after all are removed on the way."""
    markers = markers_of(catalog)
    if markers is None:
        return []
    found = []
    for uid in markers.dead():
        try:
            stopped = catalog[uid].metadata.get("stop") is not None
        except KeyError:
            stopped = True  # no such run: nothing to recover
        if stopped:
            markers.forget(uid)
        else:
            found.append(uid)
    return found
