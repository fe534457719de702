"""``ophyd-pvcam live``: a window streaming the camera, to align and focus.

Nothing is recorded or written.  Without a display it says so and exits with 2 before
the camera is opened.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._camera import open_camera, with_camera
from ._errors import EXIT_OK, EXIT_USAGE, CliError
from ._options import DEFAULT_CONTRAST, contrast, seconds


def add_to(commands: Any) -> None:
    live = with_camera(
        commands.add_parser(
            "live",
            help="a window streaming the camera, to align and focus (records nothing)",
            description="Opens a window that streams the camera with automatic contrast; "
            "the title shows frames per second shown and delivered, and frames lost. "
            "Exposure and region of interest change from the window (drag a box on the "
            "image). Nothing is recorded or written. Needs a display.",
        )
    )
    live.add_argument("--exposure", type=seconds, help="seconds (default: the camera's 0.01)")
    live.add_argument(
        "--roi", type=roi, metavar="X,Y,W,H", help="region in sensor pixels (default: all)"
    )
    live.add_argument("--binning", type=int, choices=(1, 2, 4), help="1, 2 or 4 (default 1)")
    live.add_argument(
        "--contrast",
        type=contrast,
        default=DEFAULT_CONTRAST,
        metavar="LOW,HIGH",
        help="percentiles drawn black and white (default 1,99.5)",
    )
    live.set_defaults(run=run)


def roi(text: str) -> tuple[int, int, int, int]:
    """X,Y,WIDTH,HEIGHT in sensor pixels."""
    try:
        x, y, width, height = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give X,Y,WIDTH,HEIGHT in sensor pixels, e.g. 768,768,512,512"
        ) from None
    return x, y, width, height


def run(args: argparse.Namespace) -> int:
    from ophyd_pvcam.viewer import DisplayError, LiveView, require_display

    try:
        require_display()  # before the camera: no display, no point opening it
    except DisplayError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    cam = open_camera(args)
    try:
        if args.binning is not None:
            cam.binning.set(args.binning).wait(10)
        if args.roi is not None:
            cam.roi.set(args.roi).wait(10)
        if args.exposure is not None:
            cam.exposure_time.set(args.exposure).wait(10)
        view = LiveView(cam, contrast=args.contrast)
        print(
            f"live view of {cam.camera_name.get()}: nothing is recorded; close the window "
            "(or Ctrl-C) to end"
        )
        view.run()  # until the window is closed, or Ctrl-C
        print(f"live view closed: {view.shown} frames shown, {view.lost} lost")
    finally:
        cam.close()
    return EXIT_OK
