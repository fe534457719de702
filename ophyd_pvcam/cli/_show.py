"""``ophyd-pvcam show UID``: one run, summarised; with ``--png``, one of its frames drawn.

The summary is what a user asks first of a run: which plan, how it ended, its streams,
its frame files (for a run left open, also those on disk it does not reference yet),
its images and the frames lost.  The PNG draws a frame in sensor pixels with the
camera's own frame number in its title.  An output file that cannot be written is
refused (exit 2) before the catalog is opened.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._catalogs import find_run, open_existing, short, uid_given
from ._errors import EXIT_CATALOG, EXIT_OK, EXIT_USAGE, CliError
from ._options import DEFAULT_CONTRAST, contrast, integer

if TYPE_CHECKING:  # the catalog (and tiled) load when the command runs
    from ophyd_pvcam.catalog import RunImages


def add_to(commands: Any) -> None:
    show = commands.add_parser("show", help="summarise one run; optionally save a frame as PNG")
    show.add_argument("uid", help="run uid (a unique prefix is enough)")
    show.add_argument("--png", metavar="FILE", help="draw a frame into this PNG file")
    show.add_argument(
        "--frame",
        type=integer(0),
        metavar="INDEX",
        help="which frame of the run for --png, 0 = the first (default 0); the PNG's "
        "title gives the camera's frame number",
    )
    show.add_argument(
        "--contrast",
        type=contrast,
        metavar="LOW,HIGH",
        help="percentiles of the frame drawn black and white for --png (default 1,99.5)",
    )
    show.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ophyd_pvcam.catalog import run_images

    for option, value in (("--frame", args.frame), ("--contrast", args.contrast)):
        if value is not None and args.png is None:
            raise CliError(f"{option} applies to the PNG: give --png FILE too", EXIT_USAGE)
    uid_given(args.uid)
    png = output_file(args.png, "--png") if args.png is not None else None
    catalog = open_existing(args)
    run = find_run(catalog, args.uid)
    start, stop = run.metadata["start"], run.metadata.get("stop") or {}
    print(f"run      {start['uid']}")
    print(
        f"plan     {start.get('plan_name')}  started "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(start['time']))}"
    )
    print(
        f"exit     {stop.get('exit_status', 'still running?')}"
        + (f": {stop['reason'].splitlines()[0]}" if stop.get("reason") else "")
    )
    for stream in run:
        keys = sorted(k for k in run[stream] if not k.startswith("ts_"))
        print(f"stream   {stream}: {', '.join(keys)}")
    _print_files(catalog, run)
    images = run_images(run)
    if images is None:
        if not stop:
            print("images   none in the run yet (if it was left open: 'ophyd-pvcam recover')")
            return EXIT_OK
        raise CliError("this run holds no camera images", EXIT_CATALOG)
    print(f"images   {images.stream}/{images.key}: shape {images.shape}, {images.array.dtype}")
    lost = images.lost()
    if lost is not None:
        print(f"lost     {lost} frames")
    if png is not None:
        _draw(images, args, png, start)
    return EXIT_OK


def _print_files(catalog: Any, run: Any) -> None:
    """The run's frame files; for a run left open, the files on disk it does not
    reference yet (what 'ophyd-pvcam recover' would make reachable)."""
    from ophyd_pvcam.catalog import files_not_in_run, frame_files

    listed = []
    for where, paths in frame_files(run).items():
        for path in paths:
            print(f"files    {where}: {path}")
            listed.append(path)
    if run.metadata.get("stop") is None:
        for path in files_not_in_run(catalog, run, listed):
            print(f"files    on disk, not in the run yet: {path}")


def _draw(images: RunImages, args: argparse.Namespace, png: Path, start: dict[str, Any]) -> None:
    """Draw the frame ``--frame`` names into the PNG file."""
    from ophyd_pvcam.viewer import frame_png

    frames = images.count
    index = args.frame or 0
    if frames == 0:
        raise CliError("this run holds no frames to draw", EXIT_CATALOG)
    if not 0 <= index < frames:
        raise CliError(f"--frame {index} is outside 0..{frames - 1}", EXIT_USAGE)
    frame = images.frame(index)
    what = f"camera frame {frame.number}" if frame.number is not None else f"frame index {index}"
    title = f"{short(start['uid'])} {start.get('plan_name')}: {what}" + (
        "" if images.fly else f" (point {frame.point + 1} of {images.shape[0]})"
    )
    picture = frame_png(
        frame.image, title, frame.roi, frame.binning, args.contrast or DEFAULT_CONTRAST
    )
    write_file(png, picture, "--png")
    print(f"png      {png}  ({what}, index {index} of {frames})")


def output_file(text: str, option: str) -> Path:
    """An output file the user named: refused now (exit 2) if it cannot be written."""
    if not text.strip():
        raise CliError(f"{option} needs a file name", EXIT_USAGE)
    path = Path(text).expanduser()
    if path.is_dir():
        raise CliError(f"{option} {text} is a folder: give a file name in it", EXIT_USAGE)
    folder = path.parent
    if not folder.is_dir():
        raise CliError(f"cannot write {option} {text}: no folder {folder}", EXIT_USAGE)
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise CliError(f"cannot write {option} {text}: permission denied", EXIT_USAGE)
    return path


def write_file(path: Path, data: bytes, option: str) -> None:
    """Write ``data`` to the file ``option`` named; a failure (a full disk shows here,
    or at close, not before) is one line and exit 2."""
    try:
        with open(path, "wb") as file:
            file.write(data)
    except OSError as error:
        raise CliError(
            f"cannot write {option} {path}: {error.strerror or error}", EXIT_USAGE
        ) from None
