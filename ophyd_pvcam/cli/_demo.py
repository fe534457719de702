"""``ophyd-pvcam demo``: a first run for a new user, start to finish in seconds.

A count and a fly scan go into the catalog, are read back from it and summarised, and
the line it ends with says what to type next.  It refuses, before recording anything,
what it cannot finish: more than ten minutes of acquisition, more frames than the disk
holds, settings the camera refuses.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ._camera import open_camera, with_camera
from ._catalogs import open_or_create, short
from ._errors import EXIT_OK, EXIT_USAGE, CliError
from ._options import integer, seconds

DEMO_LIMIT_S = 600.0  # the demo refuses to plan longer acquisitions than this
DEMO_ROI = (896, 704, 512, 512)  # around the simulated beam spot


def add_to(commands: Any) -> None:
    demo = with_camera(
        commands.add_parser(
            "demo", help="acquire a count and a fly scan into the catalog, replay and summarise"
        )
    )
    demo.add_argument(
        "--frames", type=integer(1), default=300, help="fly scan frames (default 300)"
    )
    demo.add_argument("--points", type=integer(1), default=5, help="count points (default 5)")
    demo.add_argument(
        "--exposure",
        type=seconds,
        default=0.01,
        help=f"seconds (default 0.01); the whole demo may take at most {DEMO_LIMIT_S:g} s",
    )
    demo.set_defaults(run=run)


def duration(span: float) -> str:
    """A duration (s) as a person says it: seconds, minutes or hours."""
    if span < 90:
        return f"{span:.0f} s"
    if span < 5400:
        return f"{span / 60:.0f} min"
    return f"{span / 3600:.1f} h"


def _refuse_long_demo(span: float, frames: int, period: float) -> None:
    if span > DEMO_LIMIT_S:
        raise CliError(
            f"the demo would take about {duration(span)} ({frames} frames of "
            f"{period:g} s); it is a short demonstration (at most {duration(DEMO_LIMIT_S)}): "
            "give fewer --frames or --points or a shorter --exposure, or acquire from the "
            "IPython profile",
            EXIT_USAGE,
        )


def run(args: argparse.Namespace) -> int:
    import bluesky.plans as bp

    from ophyd_pvcam.device import make_run_engine
    from ophyd_pvcam.diagnostics import frame_rate, replay
    from ophyd_pvcam.storage import check_free_space

    planned = args.points + args.frames
    _refuse_long_demo(planned * args.exposure, planned, args.exposure)  # before anything
    catalog, location = open_or_create(args)
    cam = open_camera(args)
    try:
        # every setting first: nothing is recorded unless all of them are accepted
        cam.roi.set(DEMO_ROI).wait(10)
        cam.exposure_time.set(args.exposure).wait(10)
        cam.num_frames.set(args.frames).wait(10)
        period = max(cam.frame_period.get(), args.exposure)
        _refuse_long_demo(planned * period, planned, period)
        check_free_space(cam.write_path, cam.settings().frame_bytes, planned)
        RE, _ = make_run_engine(catalog)
        print(
            f"camera   {cam.camera_name.get()} ({cam.model.get()}"
            f"{', simulated' if cam.simulated.get() else ''}), serial {cam.serial_number.get()}"
        )
        print(f"catalog  {location}\nframes   {cam.write_path}")
        if planned * period > 10:
            print(f"takes    about {duration(planned * period)} ({planned} frames)")
        # ophyd devices meet bluesky's protocols at run time; their annotations do not say so
        (count_uid,) = RE(bp.count([cam], num=args.points))  # pyright: ignore[reportArgumentType]
        started = time.monotonic()
        (fly_uid,) = RE(bp.fly([cam]))  # pyright: ignore[reportArgumentType]
        elapsed = time.monotonic() - started
        print("\nreplayed from the catalog:")
        for uid, stream in ((count_uid, "primary"), (fly_uid, "cam")):
            got = replay(catalog[uid], stream, "cam_image", simulated=bool(cam.simulated.get()))
            if got.numbers_intact is None:
                check = "frames read back"
            else:
                intact = " intact" if got.numbers_intact else " BROKEN"
                check = f"frame numbers 1..{got.frames}{intact}"
            print(
                f"  {got.plan:6s} {short(uid)}  {got.frames:4d} frames "
                f"{got.width}x{got.height} {got.dtype}  mean {got.mean:7.1f}  {check}  "
                f"exit {got.exit_status}"
            )
        times = catalog[fly_uid]["cam"]["cam_frame_time"].read()
        per_second = frame_rate(times)
        rate = (
            f"at {per_second:.1f} frames/s (camera clock)"
            if per_second is not None
            else "(one frame: no rate)"
        )
        print(
            f"\nfly scan: {len(times)} frames {rate}, {elapsed:.1f} s end to end, "
            f"dropped frames {cam.dropped_frames.get()}"
        )
        print(f"next: ophyd-pvcam runs  |  ophyd-pvcam show {short(fly_uid)} --png frame.png")
    finally:
        cam.close()
    return EXIT_OK
