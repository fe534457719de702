"""Closing runs that a dead process left open, with every intact frame on disk.

A process killed mid-run (``kill -9``, a crash, a power cut, a full disk under
the catalog) leaves a run with a start document and no stop document, and
usually without the streams its camera had filled: the RunEngine hands events
to the catalog at ``collect`` (fly scans) or in batches (step scans).  The
frames themselves are safe in the HDF5 file, whose per-frame records say
which rows are real.

Recovery closes such a run with what the files hold, and never one another process
is still recording.  Three jobs, a module each: the open-run markers that tell a dead
run from a live one (``_markers``), judging the open runs and finding their files
(``_open_runs``), and completing one run from its files (``_completion``); this module
closes the runs asked for.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import Any

from ophyd_pvcam.storage import mark_closed

from ._completion import Completion, Recovered
from ._markers import RunIsLive
from ._open_runs import DEFAULT_IDLE_S, OpenRun, judge, markers_of, open_runs, run_files


def recover_run(
    catalog: Any,
    uid: str,
    *,
    frames: Iterable[str | os.PathLike] = (),
    force: bool = False,
    idle: float = DEFAULT_IDLE_S,
) -> Recovered:
    """Close run ``uid`` (a start, no stop) left open by a process that is gone.

    Every intact frame of its frame files (per the files' own records) becomes
    reachable through the run: a fly file gives one event per recorded frame in
    the stream named after the device; a step file gives one event per complete
    point in the stream that declares the device's image (``primary`` if none
    does).  Streams the catalog already holds events for are left as they are.
    The stop document has exit status ``abort`` and a reason naming the
    interruption.  Refuses (:class:`RunIsLive`) a run another process is still
    recording, unless ``force``.
    """
    from ._catalog import find_run

    run = find_run(catalog, uid)
    uid = run.metadata["start"]["uid"]
    if run.metadata.get("stop") is not None:
        raise ValueError(f"run {uid} is already closed")
    verdict = judge(catalog, uid, run.metadata["start"], idle=idle, frames=frames)
    if not verdict.recoverable and not force:
        raise RunIsLive(f"run {uid[:8]} is still open: {verdict.detail}")
    markers = markers_of(catalog)
    claim = markers.claim(uid) if markers is not None else contextlib.nullcontext()
    with claim:
        run = catalog[uid]  # afresh: it may have been closed meanwhile
        if run.metadata.get("stop") is not None:
            raise ValueError(f"run {uid} was closed meanwhile")
        completion = Completion(run, uid)
        for path in run_files(catalog, uid, frames):
            completion.add_file(path)
        if verdict.recoverable:  # the writer is gone: close its files, as h5clear -s would
            for path in completion.used:
                try:
                    mark_closed(path)
                except (OSError, ValueError) as error:
                    completion.notes.append(f"{path.name} left flagged open ({error})")
        return completion.close(verdict.detail if verdict.recoverable else "closed with --force")


def recover(
    catalog: Any,
    uids: Iterable[str] = (),
    *,
    frames: Iterable[str | os.PathLike] = (),
    force: bool = False,
    idle: float = DEFAULT_IDLE_S,
) -> tuple[list[Recovered], list[OpenRun]]:
    """Close the given runs (default: every open run judged dead).  Returns what was
    recovered and the open runs left alone (live, or too recently active)."""
    targets: list[tuple[str, OpenRun | None]]
    if uids := list(uids):
        targets = [(u, None) for u in uids]
    else:
        targets = [(r.uid, r) for r in open_runs(catalog, idle=idle, frames=frames)]
    done, left = [], []
    for uid, verdict in targets:
        if verdict is not None and not verdict.recoverable and not force:
            left.append(verdict)
            continue
        done.append(recover_run(catalog, uid, frames=frames, force=force, idle=idle))
    return done, left
