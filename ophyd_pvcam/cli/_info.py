"""``ophyd-pvcam info``: what camera is there and what it can do.

Identity, sensor, temperature, trigger modes and binnings, then one row per readout
port, speed and gain with its bit depth and full-frame readout time and rate: what a
user needs to choose a readout mode, and what a support request should quote.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

from ._camera import open_camera, with_camera
from ._errors import EXIT_OK


def add_to(commands: Any) -> None:
    info = with_camera(
        commands.add_parser(
            "info", help="the camera's identity and its port/speed/gain table with frame rates"
        )
    )
    info.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ophyd_pvcam.device import format_table
    from ophyd_pvcam.diagnostics import full_frame_readout

    # the readout times are learnt from one frame per mode: those frames are nobody's
    # data, so they go to a folder removed at the end, not the user's frames folder
    scratch = tempfile.TemporaryDirectory(prefix="ophyd-pvcam-info-")
    cam = open_camera(args, write_path=scratch.name)
    try:
        caps = cam.capabilities
        print(
            f"camera       {caps.name}: {caps.model}{' (simulated)' if caps.simulated else ''}, "
            f"serial {caps.serial_number}, firmware {caps.firmware_version}"
        )
        print(
            f"sensor       {caps.sensor_width} x {caps.sensor_height} pixels of "
            f"{caps.pixel_size_um:g} um, chip {caps.chip_name}"
        )
        print(
            f"temperature  {cam.temperature.get():.2f} degC "
            f"(setpoint {cam.temperature_setpoint.get():g} degC)"
        )
        print(f"trigger      {', '.join(caps.trigger_modes)}")
        print(f"binning      {', '.join(f'{b}x{b}' for b in caps.binnings)}\n")
        rows = []
        for port in caps.ports:
            for speed in port.speeds:
                readout = full_frame_readout(cam, port.name, speed.index)
                for gain in speed.gains:
                    rows.append(
                        {
                            "port": port.name,
                            "speed": f"{speed.index} ({speed.name})",
                            "pixel time": f"{speed.pixel_time_ns} ns",
                            "gain": f"{gain.index} ({gain.name})",
                            "bit depth": gain.bit_depth,
                            "full-frame readout": f"{readout * 1e3:.2f} ms",
                            "max full-frame rate": f"{1 / readout:.1f} fps",
                        }
                    )
        print(format_table(rows))
    finally:
        cam.close()
        scratch.cleanup()
    return EXIT_OK
