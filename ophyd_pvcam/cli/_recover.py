"""``ophyd-pvcam recover [UID ...]``: close runs a process that died left open.

The catalog's recovery judges which runs are dead and closes them with every intact
frame on disk; this command chooses which to ask for (the runs named, else every run
judged dead, or all of them with ``--force``) and says what became of each.  A run
another process still records is refused (exit 2) unless ``--force``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._catalogs import catalog_location, find_run, open_existing, short
from ._errors import EXIT_OK, EXIT_USAGE, CliError
from ._options import seconds


def add_to(commands: Any) -> None:
    recover = commands.add_parser(
        "recover",
        help="close runs left open by a process that died, with every intact frame on disk",
        description="Closes runs that have no stop document because the process recording "
        "them died (kill -9, crash, power cut): their frames on disk become reachable through "
        "the run and the stop document says 'abort' and why. A run another process still "
        "records is never closed unless --force.",
    )
    recover.add_argument("uids", nargs="*", metavar="UID", help="runs to close (default: all)")
    recover.add_argument(
        "--frames",
        action="append",
        metavar="DIR",
        help="also look for frame files under this folder (repeatable)",
    )
    recover.add_argument(
        "--idle",
        type=idle_seconds,
        default=3600.0,
        metavar="S",
        help="a run with no marker of who records it counts as dead after S seconds "
        "without writing (default 3600)",
    )
    recover.add_argument(
        "--force", action="store_true", help="close even runs that look alive (stuck processes)"
    )
    recover.set_defaults(run=run)


def idle_seconds(text: str) -> float:
    """Seconds above 0, or 0: no wait at all."""
    if text.strip() in ("0", "0.0"):
        return 0.0
    return seconds(text)


def run(args: argparse.Namespace) -> int:
    from ophyd_pvcam.catalog import RunIsLive, open_runs, recover_run

    catalog = open_existing(args)
    location = catalog_location(args)[0]
    frames = [Path(f) for f in args.frames or []]
    if args.uids:
        targets = [find_run(catalog, uid).metadata["start"]["uid"] for uid in args.uids]
        left = []
    else:
        found = open_runs(catalog, idle=args.idle, frames=frames)
        targets = [r.uid for r in found if r.recoverable or args.force]
        left = [r for r in found if not (r.recoverable or args.force)]
    if not targets and not left:
        print(f"no runs left open in {location}")
        return EXIT_OK
    for uid in targets:
        if catalog[uid].metadata.get("stop") is not None:
            print(f"{short(uid)}  already closed")
            continue
        try:
            done = recover_run(catalog, uid, frames=frames, force=args.force, idle=args.idle)
        except RunIsLive as error:
            raise CliError(
                f"{error}; wait for it to end, or use --force if that process is stuck",
                EXIT_USAGE,
            ) from None
        print(done.summary())
        if not done.files:
            print(
                f"  no frame files found for {short(uid)}: if its camera wrote outside the "
                "folders this catalog knows, give --frames FOLDER"
            )
    for still_open in left:
        print(f"{short(still_open.uid)}  left open: {still_open.detail}")
    return EXIT_OK
