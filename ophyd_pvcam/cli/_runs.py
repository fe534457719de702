"""``ophyd-pvcam runs``: the newest runs of the catalog, one line each.

A new user's ``runs`` before any run is not an error: it says where the catalog will
be and what makes one.  Runs left open by a process that died are pointed out, with
the command that closes them.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ._catalogs import open_if_any, short
from ._errors import EXIT_OK
from ._options import integer


def add_to(commands: Any) -> None:
    runs = commands.add_parser("runs", help="list the runs in the catalog")
    runs.add_argument("--last", type=integer(1), default=20, help="show the newest N (default 20)")
    runs.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ophyd_pvcam.catalog import newest_runs
    from ophyd_pvcam.device import format_table

    catalog, location = open_if_any(args)
    if catalog is None:
        print(f"no catalog at {location} yet: 'ophyd-pvcam demo' makes one")
        return EXIT_OK
    overview = newest_runs(catalog, args.last)
    if not overview.runs:
        print(f"no runs in {location} yet")
        return EXIT_OK
    rows = [
        {
            "uid": short(state.uid),
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.started)),
            "plan": state.plan,
            "events": state.events,
            "exit": state.state,
        }
        for state in overview.runs
    ]
    print(format_table(rows))
    dead = len(overview.left_open)
    if dead:
        print(
            f"\n{dead} run{'s were' if dead > 1 else ' was'} left open by a process "
            "that is gone: 'ophyd-pvcam recover' closes them and makes their frames reachable"
        )
    elif overview.stale:
        print(
            "\nruns without an exit status for over an hour may have been left open by a "
            "process that died: 'ophyd-pvcam recover' lists and closes them"
        )
    return EXIT_OK
