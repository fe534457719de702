"""The ``ophyd-pvcam`` command: demo, info, live, runs, show, export, recover, probe,
check, catalog-server.  This module builds the parser from the commands' own modules,
sets up logging, runs the command and turns its failures into exit codes.

Exit codes scripts can rely on: 0 success; 1 an acquisition failed or could not
start (stall, readout failure, disconnect, not enough disk space); 2 bad arguments
or settings (including an unwritable output file, a malformed environment variable
or config file, no display for the live view, and ``recover`` asked to close a run
another process still records); 3 no usable camera (no PVCAM, or the camera is in
use); 4 catalog or run not found (including an unreachable catalog server or
database).  Every expected failure is one line on stderr, ``ophyd-pvcam: error:
...``, and no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

from . import _check, _demo, _export, _info, _live, _probe, _recover, _runs, _server, _show
from ._errors import (
    EXIT_ACQUISITION,
    EXIT_CAMERA,
    EXIT_CATALOG,
    EXIT_CODES,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
)

COMMANDS = (_demo, _info, _live, _runs, _show, _export, _recover, _probe, _check, _server)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"ophyd-pvcam: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``ophyd-pvcam`` and, in the order ``--help`` lists them, of each
    command (each adds its own, with its options and help)."""
    parser = _Parser(
        prog="ophyd-pvcam",
        description="A PVCAM camera (Prime BSI) for Bluesky: acquire, look, inspect runs, "
        "probe stalls.",
        epilog="Exit codes: "
        + ", ".join(f"{code} {name}" for code, (name, _) in EXIT_CODES.items())
        + ".",
    )
    parser.add_argument(
        "--catalog",
        help="catalog folder or tiled server URI "
        "(default: $OPHYD_PVCAM_CATALOG or the per-user data folder)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_to(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``ophyd-pvcam ARGV`` (default: the process's arguments); returns the exit
    code.  argparse's own errors exit (SystemExit, code 2) before any command runs."""
    import httpx

    from ophyd_pvcam.catalog import CatalogError
    from ophyd_pvcam.config import ConfigError
    from ophyd_pvcam.errors import (
        CameraAcquisitionError,
        CameraInUseError,
        CameraUnavailableError,
        DiskError,
        FrameStallError,
    )
    from ophyd_pvcam.sim import FaultSpecError, SimulatorError

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_ShownElsewhere(args.verbose))
    try:
        return args.run(args)
    except CliError as error:
        message, code = str(error), error.code
    except (FaultSpecError, ConfigError) as error:  # before ValueError: both are ValueErrors
        message, code = str(error), EXIT_USAGE
    except (CameraUnavailableError, CameraInUseError, SimulatorError) as error:
        message, code = str(error), EXIT_CAMERA
    except CatalogError as error:
        message, code = str(error), EXIT_CATALOG
    except httpx.HTTPError as error:  # the catalog server went away mid-command
        message, code = f"the catalog server did not answer: {error}", EXIT_CATALOG
    except (FrameStallError, CameraAcquisitionError, DiskError) as error:
        message, code = str(error), EXIT_ACQUISITION
    except ValueError as error:
        message, code = str(error), EXIT_USAGE
    except KeyboardInterrupt:
        message, code = "interrupted", EXIT_ACQUISITION
    except BrokenPipeError:  # 'ophyd-pvcam runs | head': the reader has gone, stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more may reach the pipe
        return EXIT_OK
    # a diagnosis keeps its lines (what stopped, the camera, the settings, the data, what
    # to do); anything else is one line
    lines = [" ".join(line.split()) for line in message.splitlines() if line.strip()]
    print("ophyd-pvcam: error: " + "\n  ".join(lines), file=sys.stderr)
    return code


class _ShownElsewhere(logging.Filter):
    """Keeps off the terminal's log lines what the user sees anyway: acquisition
    summaries (printed by their own handler), a failure that is raised (printed once, as
    the command's error) and bluesky's "Run aborted" traceback for it; ``-v`` shows the
    last two as well."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "ophyd_pvcam.summary" and logging.getLogger(record.name).handlers:
            return False
        if self.verbose:
            return True
        aborted = record.name.startswith("bluesky") and record.exc_info is not None
        from ophyd_pvcam.errors import RAISED

        return not (aborted or getattr(record, RAISED, False))
