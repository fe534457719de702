"""``ophyd-pvcam probe``: why do frames stop?  The diagnostics' probe, run from the
command line.

Fly scans over buffer sizes, exposures and readout ports, the frame- and byte-limit
streams, then the doctor's experiments (one per reported cause) and a verdict; the
tables print as they come, the JSON file (``--json``) grows with them, and ``--png``
draws the one-page summary at the end.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._bench import interruptible, quiet_logs
from ._camera import simulated, to_stderr, with_camera
from ._catalogs import open_or_create
from ._errors import EXIT_OK, EXIT_USAGE, CliError
from ._options import positive


def add_to(commands: Any) -> None:
    probe = with_camera(
        commands.add_parser(
            "probe",
            help="why do frames stop? fly scans over buffers, exposures, ports, then one "
            "experiment per reported cause and a verdict",
        )
    )
    probe.add_argument(
        "--buffers",
        type=numbers(int),
        default=[8, 16, 32],
        help="circular buffer sizes (default 8,16,32)",
    )
    probe.add_argument(
        "--exposures",
        type=numbers(float),
        default=[0.002],
        help="exposure times in s (default 0.002; the experiments use the first)",
    )
    probe.add_argument(
        "--ports", type=lambda t: t.split(","), default=None, help="readout ports (default: all)"
    )
    probe.add_argument(
        "--frames", type=positive(int), default=150, help="target frames (default 150)"
    )
    probe.add_argument(
        "--limit-frames",
        type=positive(int),
        default=200,
        metavar="N",
        help="frame/byte-limit streams pass N frames (default 200) ...",
    )
    probe.add_argument(
        "--limit-bytes",
        type=positive(int),
        default=1 << 30,
        metavar="BYTES",
        help="... and BYTES bytes (default 1 GiB, past the ~780 MB reported)",
    )
    probe.add_argument(
        "--stall-timeout",
        type=positive(float),
        metavar="S",
        help="frames stopped after S seconds without one (default: automatic)",
    )
    probe.add_argument(
        "--inject-stall",
        type=int,
        metavar="N",
        help="simulator only: stall after N frames in the fly scans and limit streams",
    )
    probe.add_argument(
        "--no-fly", dest="fly", action="store_false", help="skip ophyd-pvcam's fly scans"
    )
    probe.add_argument(
        "--no-sdk",
        dest="sdk",
        action="store_false",
        help="skip the doctor's SDK experiments (and so the verdict)",
    )
    probe.add_argument("--record", action="store_true", help="record the fly scans in the catalog")
    probe.add_argument(
        "--keep-data", action="store_true", help="keep the frame files (default: removed)"
    )
    probe.add_argument("--png", help="write the one-page plot here")
    probe.add_argument("--json", help="write the results here (updated as they come)")
    probe.set_defaults(run=run)


def numbers(kind: Callable[[str], float | int]) -> Callable[[str], list[float | int]]:
    """A comma-separated list of positive numbers of ``kind``."""

    def parse(text: str) -> list[float | int]:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
        if not values or any(v <= 0 for v in values):
            raise argparse.ArgumentTypeError(f"{text!r}: give positive values, e.g. 8,16,32")
        return values

    return parse


def run(args: argparse.Namespace) -> int:
    from ophyd_pvcam.diagnostics import Bench, Probe, ProbeOptions, probe_figure, report_writer

    quiet_logs(args.verbose)  # stalls are what the probe looks for: report them in the tables
    if args.inject_stall is not None and args.camera == "real":
        raise CliError("--inject-stall needs the simulated camera", EXIT_USAGE)
    options = ProbeOptions(
        buffers=args.buffers,
        exposures=args.exposures,
        ports=args.ports,
        frames=args.frames,
        inject_stall=args.inject_stall,
        fly=args.fly,
        sdk=args.sdk,
        stall_timeout=args.stall_timeout,
        limit_frames=args.limit_frames,
        limit_bytes=args.limit_bytes,
    )
    save = report_writer(args.json) if args.json else None
    keep = args.keep_data or args.record  # recorded runs reference their frame files
    with Bench(None, simulated(args), keep_data=keep, announce=to_stderr) as bench:
        if args.inject_stall is not None and not bench.simulated:
            raise CliError("--inject-stall needs the simulated camera", EXIT_USAGE)
        if args.record:
            options.catalog = open_or_create(args)[0]
        with interruptible("the probe", args.json):
            report = Probe(bench, options, say=print, update=save).run()
    if args.png:
        print(f"\nplot     {probe_figure(report, Path(args.png))}")
    if args.json:
        print(f"json     {args.json}")
    return EXIT_OK
