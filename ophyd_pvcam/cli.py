"""The ``ophyd-pvcam`` command."""

from __future__ import annotations

import argparse
import logging
import sys
import time

log = logging.getLogger("ophyd_pvcam.cli")


def _demo(args: argparse.Namespace) -> int:
    from . import sim

    sim.load()
    from pyvcam import pvc
    from pyvcam.camera import Camera

    pvc.init_pvcam()
    try:
        camera = next(Camera.detect_camera())
        camera.open()
        try:
            camera.start_live(exp_time=10, buffer_frame_count=16)
            numbers = []
            started = time.monotonic()
            try:
                for _ in range(args.frames):
                    frame, _, _ = camera.poll_frame(timeout_ms=2000)
                    numbers.append(sim.frame_number(frame["pixel_data"]))
            finally:
                camera.finish()
            elapsed = time.monotonic() - started
            image = frame["pixel_data"]
            print(f"camera      {camera.name} ({camera.chip_name}, serial {camera.serial_no})")
            print(f"frames      {len(numbers)} (numbers {numbers[0]}..{numbers[-1]})")
            print(f"rate        {(len(numbers) - 1) / elapsed:.1f} frames/s")
            print(
                f"last frame  {image.shape[1]}x{image.shape[0]} {image.dtype}, "
                f"mean {image.mean():.0f}, max {image.max()}"
            )
        finally:
            camera.close()
    finally:
        pvc.uninit_pvcam()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ophyd-pvcam", description="Acquire with a PVCAM camera (or its simulator)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="acquire a short series on the simulated camera")
    demo.add_argument("--frames", type=int, default=50, help="frames to acquire (default 50)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
