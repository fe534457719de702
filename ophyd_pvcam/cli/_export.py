"""``ophyd-pvcam export UID --tiff DIR``: a run's frames as TIFF stacks, for Fiji/ImageJ
and anyone without HDF5.

The folder is checked before the catalog is opened; the stream, against the run's
streams with images, before anything is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._catalogs import find_run, open_existing, uid_given
from ._errors import EXIT_CATALOG, EXIT_OK, EXIT_USAGE, CliError


def add_to(commands: Any) -> None:
    export = commands.add_parser(
        "export", help="write a run's frames as TIFF stacks (for Fiji/ImageJ)"
    )
    export.add_argument("uid", help="run uid (a unique prefix is enough)")
    export.add_argument(
        "--tiff", required=True, metavar="DIR", help="folder for <uid>_<stream>_<key>.tif"
    )
    export.add_argument("--stream", help="only this stream (default: every stream with images)")
    export.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ophyd_pvcam.catalog import export_tiff, image_keys

    uid_given(args.uid)
    if not args.tiff.strip():
        raise CliError("--tiff needs a folder", EXIT_USAGE)
    folder = Path(args.tiff).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CliError(f"--tiff {args.tiff} is a file: give a folder", EXIT_USAGE)
    catalog = open_existing(args)
    run = find_run(catalog, args.uid)
    streams = {stream for stream, _ in image_keys(run)}
    if not streams:
        raise CliError("this run holds no camera images", EXIT_CATALOG)
    if args.stream is not None and args.stream not in streams:
        raise CliError(
            f"no images in stream {args.stream!r}; this run has images in "
            f"{', '.join(sorted(streams))}",
            EXIT_USAGE,
        )
    try:
        written = export_tiff(run, folder, stream=args.stream)
    except OSError as error:
        raise CliError(
            f"cannot write TIFF files to {args.tiff}: {error.strerror or error}", EXIT_USAGE
        ) from None
    for path in written:
        print(f"tiff     {path}")
    return EXIT_OK
