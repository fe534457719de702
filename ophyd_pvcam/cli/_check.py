"""``ophyd-pvcam check``: the first-day acceptance test of a camera and its driver,
run from the command line; exit 0 when every check passes, 1 when one fails.

The check itself (identity, rates, triggers, streams, scans, temperature) is the
diagnostics' :class:`FirstDayCheck`; this prints its rows as they come, keeps the
JSON file (``--json``) up to date, draws the summary (``--png``), and with
``--keep-data`` records the scans in the beamline's catalog.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._bench import interruptible, quiet_logs
from ._camera import simulated, to_stderr, with_camera
from ._errors import EXIT_ACQUISITION, EXIT_OK, CliError
from ._options import positive


def add_to(commands: Any) -> None:
    check = with_camera(
        commands.add_parser(
            "check",
            help="the first-day acceptance test: identity, rates, streams, triggers, scans, "
            "temperature; exit 0 if all pass",
        )
    )
    check.add_argument(
        "--stream-frames",
        type=positive(int),
        default=1000,
        metavar="N",
        help="frames streamed per readout mode (default 1000)",
    )
    check.add_argument(
        "--temperature-wait",
        type=float,
        default=120.0,
        metavar="S",
        help="wait up to S seconds for the setpoint (default 120; then reported)",
    )
    check.add_argument(
        "--temperature-tolerance",
        type=positive(float),
        default=1.0,
        metavar="DEGC",
        help="how close to the setpoint counts as there (default 1 degC)",
    )
    check.add_argument(
        "--keep-data",
        action="store_true",
        help="record the scans in the catalog and keep their frames (default: a temporary "
        "catalog, removed)",
    )
    check.add_argument("--png", help="write the one-page summary here")
    check.add_argument("--json", help="write the results here (updated as they come)")
    check.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ophyd_pvcam.config import setting
    from ophyd_pvcam.diagnostics import (
        Bench,
        CheckOptions,
        FirstDayCheck,
        check_figure,
        report_writer,
    )
    from ophyd_pvcam.paths import default_catalog_path

    quiet_logs(args.verbose)  # failures are reported in the check's rows, one line each
    options = CheckOptions(
        stream_frames=args.stream_frames,
        temperature_wait=args.temperature_wait,
        temperature_tolerance=args.temperature_tolerance,
    )
    if args.keep_data:  # the scans join the beamline's catalog, their frames kept
        options.catalog = args.catalog or setting("catalog") or default_catalog_path()
    save = report_writer(args.json) if args.json else None
    with (
        Bench(None, simulated(args), keep_data=args.keep_data, announce=to_stderr) as bench,
        interruptible("the check", args.json),
    ):
        result = FirstDayCheck(bench, options, say=print, update=save).run()
    report = result.as_dict()
    if save is not None:
        save(report)
    print(f"\n{result.summary()}")
    if args.png:
        print(f"plot     {check_figure(report, Path(args.png))}")
    if args.json:
        print(f"json     {args.json}")
    if not result.passed:
        raise CliError(f"check failed: {result.first_failure}", EXIT_ACQUISITION)
    return EXIT_OK
