"""The ``ophyd-pvcam`` command: demo, info, live, runs, show, export, recover, probe,
check, catalog-server.

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
import io
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("ophyd_pvcam.cli")

EXIT_OK, EXIT_ACQUISITION, EXIT_USAGE, EXIT_CAMERA, EXIT_CATALOG = 0, 1, 2, 3, 4
SERVER_TIMEOUT_S = 5.0  # an unreachable catalog server or database is reported within this
DEMO_LIMIT_S = 600.0  # the demo refuses to plan longer acquisitions than this
DEMO_ROI = (896, 704, 512, 512)  # around the simulated beam spot
DEFAULT_CONTRAST = (1.0, 99.5)  # percentiles drawn black and white (as the live view)


class CliError(Exception):
    """An expected failure: printed as one line, no traceback."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


# ---- helpers ---------------------------------------------------------------------


def _camera(args, name: str = "cam"):
    from ophyd_pvcam.device import make_camera

    return make_camera(
        name,
        simulated=None if args.camera == "auto" else args.camera == "sim",
        announce=lambda text: print(text, file=sys.stderr),
    )


def _catalog_location(args) -> tuple[str, bool]:
    """(where the catalog is, whether someone named it: --catalog, the environment or
    the config file, rather than the default folder)."""
    from ophyd_pvcam.config import setting
    from ophyd_pvcam.paths import default_catalog_path

    if args.catalog:
        return args.catalog, True
    configured = setting("catalog")
    if configured:
        return configured, True
    return str(default_catalog_path()), False


def _catalog(args, must_exist: bool = False):
    """(catalog, location).  With ``must_exist``, a catalog folder that does not exist
    is an error if it was named, and (None, location) if it is the default folder,
    which the first run creates."""
    from ophyd_pvcam.catalog import DATABASE, is_server_uri, open_catalog

    location, named = _catalog_location(args)
    if is_server_uri(location):
        _check_server(location)
        return open_catalog(location), location
    folder = Path(location).expanduser()
    if must_exist and not (folder / DATABASE).is_file():
        if not named:
            return None, location
        if not folder.exists():
            why = "no such folder"
        elif not folder.is_dir():
            why = "that is a file, not a catalog folder"
        else:
            why = f"the folder holds no {DATABASE}"
        raise CliError(f"no catalog at {location}: {why}", EXIT_CATALOG)
    try:
        return open_catalog(folder), location
    except OSError as error:
        raise CliError(
            f"cannot open the catalog in {location}: {error.strerror or error}", EXIT_CATALOG
        ) from None


def _existing_catalog(args):
    catalog, location = _catalog(args, must_exist=True)
    if catalog is None:
        raise CliError(f"no catalog at {location} yet: 'ophyd-pvcam demo' makes one", EXIT_CATALOG)
    return catalog


def _check_server(uri: str) -> None:
    """Fail within seconds, naming the address, when a catalog server does not answer
    (tiled's client would retry for most of a minute)."""
    import httpx

    try:
        httpx.get(uri.rstrip("/") + "/api/v1/", timeout=SERVER_TIMEOUT_S)
    except httpx.TimeoutException:
        raise CliError(
            f"the catalog server at {uri} did not answer within {SERVER_TIMEOUT_S:g} s",
            EXIT_CATALOG,
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise CliError(f"cannot reach the catalog server at {uri}: {error}", EXIT_CATALOG) from None


def _check_database(uri: str) -> None:
    """Fail within seconds, naming host and port, when PostgreSQL cannot be reached."""
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
        host, port = parts.hostname or "localhost", parts.port or 5432
    except ValueError as error:
        raise CliError(f"--database {uri!r}: {error}", EXIT_USAGE) from None
    if host.startswith("/"):
        return  # a Unix socket folder: let the driver try it
    try:
        socket.create_connection((host, port), timeout=SERVER_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise CliError(
            f"cannot reach PostgreSQL at {host}:{port} (--database): {reason}; is the "
            "database server running there?",
            EXIT_CATALOG,
        ) from None
    _log_in_to_database(uri, f"{host}:{port}")


def _log_in_to_database(uri: str, where: str) -> None:
    """Log in once, with a deadline: a wrong user, password or database name, or a port
    that is not PostgreSQL's, is one line now rather than a traceback (or a wait of a
    minute) when the server starts."""
    import asyncio

    import asyncpg

    plain = "postgresql://" + uri.split("://", 1)[1]

    async def log_in() -> None:
        connection = await asyncpg.connect(plain, timeout=SERVER_TIMEOUT_S)
        await connection.close()

    try:
        asyncio.run(asyncio.wait_for(log_in(), SERVER_TIMEOUT_S + 1))
    except TimeoutError:
        raise CliError(
            f"PostgreSQL at {where} did not answer within {SERVER_TIMEOUT_S:g} s "
            "(is it a PostgreSQL server?)",
            EXIT_CATALOG,
        ) from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CliError(
            f"PostgreSQL at {where} refused {_without_password(uri)}: {reason}", EXIT_CATALOG
        ) from None


def _short(uid: str) -> str:
    return uid[:8]


def _uid_given(uid: str) -> str:
    text = uid.strip()
    if not text:
        raise CliError("give a run uid, or a unique start of one ('ophyd-pvcam runs')", EXIT_USAGE)
    return text


def _find_run(catalog, uid: str):
    from ophyd_pvcam.catalog import RunNotFound, find_run

    text = _uid_given(uid)
    try:
        run = find_run(catalog, text)
    except RunNotFound as error:
        hint = " (try 'ophyd-pvcam runs')" if str(error).startswith("no run") else ""
        raise CliError(f"{error}{hint}", EXIT_CATALOG) from None
    if "start" not in (run.metadata or {}):  # a path into a run ("uid/primary"), not a run
        raise CliError(f"no run {text!r} in the catalog (try 'ophyd-pvcam runs')", EXIT_CATALOG)
    return run


def _image_stream(run):
    """(stream name, image key) of the first stream holding camera images."""
    for stream in run:
        for key in run[stream]:
            if key.endswith("_image"):
                return stream, key
    raise CliError("this run holds no camera images", EXIT_CATALOG)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _output_file(text: str, option: str) -> Path:
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


def _write_file(path: Path, data: bytes, option: str) -> None:
    try:
        with open(path, "wb") as file:
            file.write(data)
    except OSError as error:  # a full disk shows here (or at close), not before
        raise CliError(
            f"cannot write {option} {path}: {error.strerror or error}", EXIT_USAGE
        ) from None


# ---- demo --------------------------------------------------------------------------


def _refuse_long_demo(seconds: float, frames: int, period: float) -> None:
    if seconds > DEMO_LIMIT_S:
        raise CliError(
            f"the demo would take about {_duration(seconds)} ({frames} frames of "
            f"{period:g} s); it is a short demonstration (at most {_duration(DEMO_LIMIT_S)}): "
            "give fewer --frames or --points or a shorter --exposure, or acquire from the "
            "IPython profile",
            EXIT_USAGE,
        )


def _demo(args) -> int:
    import bluesky.plans as bp
    import numpy as np

    from ophyd_pvcam import sim
    from ophyd_pvcam.device import make_run_engine
    from ophyd_pvcam.storage import check_free_space

    planned = args.points + args.frames
    _refuse_long_demo(planned * args.exposure, planned, args.exposure)  # before anything
    catalog, location = _catalog(args)
    cam = _camera(args)
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
            print(f"takes    about {_duration(planned * period)} ({planned} frames)")
        (count_uid,) = RE(bp.count([cam], num=args.points))
        started = time.monotonic()
        (fly_uid,) = RE(bp.fly([cam]))
        elapsed = time.monotonic() - started
        print("\nreplayed from the catalog:")
        for uid, stream in ((count_uid, "primary"), (fly_uid, "cam")):
            run = catalog[uid]
            images = run[stream]["cam_image"].read()
            frames = images.reshape(-1, *images.shape[-2:])
            if cam.simulated.get():
                numbers = [sim.frame_number(f) for f in frames]
                intact = numbers == list(range(1, len(frames) + 1))
                check = (
                    "frame numbers 1.." + str(len(frames)) + (" intact" if intact else " BROKEN")
                )
            else:
                check = "frames read back"
            plan = run.metadata["start"]["plan_name"]
            print(
                f"  {plan:6s} {_short(uid)}  {len(frames):4d} frames "
                f"{frames.shape[2]}x{frames.shape[1]} {frames.dtype}  "
                f"mean {float(np.mean(frames)):7.1f}  {check}  "
                f"exit {run.metadata['stop']['exit_status']}"
            )
        times = catalog[fly_uid]["cam"]["cam_frame_time"].read()
        rate = (
            f"at {(len(times) - 1) / (times[-1] - times[0]):.1f} frames/s (camera clock)"
            if len(times) > 1 and times[-1] > times[0]
            else "(one frame: no rate)"
        )
        print(
            f"\nfly scan: {len(times)} frames {rate}, {elapsed:.1f} s end to end, "
            f"dropped frames {cam.dropped_frames.get()}"
        )
        print(f"next: ophyd-pvcam runs  |  ophyd-pvcam show {_short(fly_uid)} --png frame.png")
    finally:
        cam.close()
    return EXIT_OK


# ---- info ---------------------------------------------------------------------------


def _info(args) -> int:
    from ophyd_pvcam.device import format_table

    cam = _camera(args)
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
                readout = _full_frame_readout(cam, port.name, speed.index)
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
    return EXIT_OK


def _full_frame_readout(cam, port: str, speed: int) -> float:
    """Readout time of a full frame at this port and speed, as the camera reports it."""
    cam.readout_port.set(port).wait(10)
    cam.speed_index.set(speed).wait(10)
    cam.exposure_time.set(0.001).wait(10)
    cam.num_frames.set(1).wait(10)
    cam.kickoff().wait(30)
    cam.complete().wait(30)
    list(cam.collect_asset_docs())
    list(cam.collect_pages())
    return cam.readout_time.get()


# ---- live ---------------------------------------------------------------------------


def _live(args) -> int:
    from ophyd_pvcam.viewer import DisplayError, LiveView, require_display

    try:
        require_display()  # before the camera: no display, no point opening it
    except DisplayError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    cam = _camera(args)
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


# ---- runs / show --------------------------------------------------------------------


def _runs(args) -> int:
    from ophyd_pvcam.device import format_table

    catalog, location = _catalog(args, must_exist=True)
    if catalog is None:
        print(f"no catalog at {location} yet: 'ophyd-pvcam demo' makes one")
        return EXIT_OK
    keys = list(catalog.keys())[-args.last :]
    if not keys:
        print(f"no runs in {location} yet")
        return EXIT_OK
    from ophyd_pvcam.catalog import guard_of, left_open

    markers = getattr(guard_of(catalog), "runs", None)
    dead = set(left_open(catalog))
    rows, unclosed = [], 0
    for uid in keys:
        meta = catalog[uid].metadata
        start, stop = meta.get("start") or {}, meta.get("stop") or {}
        if stop:
            state = stop.get("exit_status", "?")
        elif uid in dead:
            state = "left open"
        elif markers is not None and markers.holder(uid):
            state = "running"
        else:
            state = "running?"
            unclosed += time.time() - start.get("time", 0) > 3600
        rows.append(
            {
                "uid": _short(uid),
                "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start.get("time", 0))),
                "plan": start.get("plan_name", "?"),
                "events": sum((stop.get("num_events") or {}).values()),
                "exit": state,
            }
        )
    print(format_table(rows))
    if dead:
        print(
            f"\n{len(dead)} run{'s were' if len(dead) > 1 else ' was'} left open by a process "
            "that is gone: 'ophyd-pvcam recover' closes them and makes their frames reachable"
        )
    elif unclosed:
        print(
            "\nruns without an exit status for over an hour may have been left open by a "
            "process that died: 'ophyd-pvcam recover' lists and closes them"
        )
    return EXIT_OK


def _show(args) -> int:
    import numpy as np

    for option, value in (("--frame", args.frame), ("--contrast", args.contrast)):
        if value is not None and args.png is None:
            raise CliError(f"{option} applies to the PNG: give --png FILE too", EXIT_USAGE)
    _uid_given(args.uid)
    png = _output_file(args.png, "--png") if args.png is not None else None
    catalog = _existing_catalog(args)
    run = _find_run(catalog, args.uid)
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
    if not stop and not any(k.endswith("_image") for name in run for k in run[name]):
        print("images   none in the run yet (if it was left open: 'ophyd-pvcam recover')")
        return EXIT_OK
    stream, key = _image_stream(run)
    array = run[stream][key]
    print(f"images   {stream}/{key}: shape {tuple(array.shape)}, {array.dtype}")
    prefix = key[: -len("image")]
    lost = None
    if f"{prefix}lost_before" in run[stream]:
        lost = int(np.sum(run[stream][f"{prefix}lost_before"].read()))
    elif f"{prefix}dropped_frames" in run[stream]:
        dropped = run[stream][f"{prefix}dropped_frames"].read()
        lost = int(dropped[-1]) if len(dropped) else 0
    if lost is not None:
        print(f"lost     {lost} frames")
    if png is not None:
        frames = array.shape[0] * array.shape[1]
        index = args.frame or 0
        if frames == 0:
            raise CliError("this run holds no frames to draw", EXIT_CATALOG)
        if not 0 <= index < frames:
            raise CliError(f"--frame {index} is outside 0..{frames - 1}", EXIT_USAGE)
        point, within = divmod(index, array.shape[1])
        image = np.asarray(array[point, within])
        number = _frame_number(run, stream, prefix, point, within, array.shape[1])
        roi, binning = _geometry(run, stream, prefix, image.shape)
        what = f"camera frame {number}" if number is not None else f"frame index {index}"
        fly = f"{prefix}lost_before" in run[stream]
        title = f"{_short(start['uid'])} {start.get('plan_name')}: {what}" + (
            "" if fly else f" (point {point + 1} of {array.shape[0]})"
        )
        _save_frame_png(image, png, title, roi, binning, args.contrast or DEFAULT_CONTRAST)
        print(f"png      {png}  ({what}, index {index} of {frames})")
    return EXIT_OK


def _frame_number(run, stream: str, prefix: str, point: int, within: int, per_point: int):
    """The camera's number of a frame: per row in a fly scan; in a step scan the
    point's frame number is its last frame's, and the file's records give the others."""
    key = f"{prefix}frame_number"
    if key not in run[stream]:
        return None
    numbers = run[stream][key].read()
    if per_point == 1:
        return int(numbers[point])
    from ophyd_pvcam.catalog import frame_files

    files = frame_files(run).get(f"{stream}/{prefix}image", [])
    if len(files) == 1:
        try:
            import h5py

            with h5py.File(files[0], "r", swmr=True, libver="latest") as f:
                records = f["/entry/instrument/NDAttributes/frame_number"][()]
            if len(records) == len(numbers) * per_point and records[
                (point + 1) * per_point - 1
            ] == int(numbers[point]):
                return int(records[point * per_point + within])
        except (OSError, KeyError, ValueError):
            pass
    return None


def _geometry(run, stream: str, prefix: str, shape: tuple[int, int]):
    """(roi, binning) the frames were taken with, from the stream's configuration."""
    device = prefix[:-1]
    try:
        data = run[stream].metadata["configuration"][device]["data"]
        roi = tuple(int(v) for v in data[f"{prefix}roi"])
        binning = int(data[f"{prefix}binning"])
        if (roi[3] // binning, roi[2] // binning) == tuple(shape):
            return roi, binning
    except (KeyError, TypeError, ValueError):
        pass
    return None, 1


def _print_files(catalog, run) -> None:
    """The run's frame files; for a run left open, the files on disk it does not
    reference yet (what 'ophyd-pvcam recover' would make reachable)."""
    from ophyd_pvcam.catalog import frame_files

    listed = set()
    for where, paths in frame_files(run).items():
        for path in paths:
            print(f"files    {where}: {path}")
            listed.add(path)
    if run.metadata.get("stop") is None:
        from ophyd_pvcam.catalog import run_files

        for path in run_files(catalog, run.metadata["start"]["uid"]):
            if path not in listed:
                print(f"files    on disk, not in the run yet: {path}")


def _frame_figure(image, title: str, roi, binning: int, contrast):
    """The figure ``show --png`` writes: one frame in sensor pixels, percentile contrast."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ophyd_pvcam.viewer import draw_frame

    figure, axes = plt.subplots(figsize=(6.4, 5.6), constrained_layout=True)
    draw_frame(figure, axes, image, roi=roi, binning=binning, contrast=contrast, title=title)
    return figure


def _save_frame_png(image, path: Path, title: str, roi, binning: int, contrast) -> Path:
    import matplotlib.pyplot as plt

    figure = _frame_figure(image, title, roi, binning, contrast)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    _write_file(path, buffer.getvalue(), "--png")
    return path


# ---- export / recover -------------------------------------------------------------------


def _export(args) -> int:
    from ophyd_pvcam.catalog import export_tiff, image_keys

    _uid_given(args.uid)
    if not args.tiff.strip():
        raise CliError("--tiff needs a folder", EXIT_USAGE)
    folder = Path(args.tiff).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CliError(f"--tiff {args.tiff} is a file: give a folder", EXIT_USAGE)
    catalog = _existing_catalog(args)
    run = _find_run(catalog, args.uid)
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


def _recover(args) -> int:
    from ophyd_pvcam.catalog import RunIsLive, open_runs, recover_run

    catalog = _existing_catalog(args)
    location = _catalog_location(args)[0]
    frames = [Path(f) for f in args.frames or []]
    if args.uids:
        targets = [_find_run(catalog, uid).metadata["start"]["uid"] for uid in args.uids]
        left = []
    else:
        found = open_runs(catalog, idle=args.idle, frames=frames)
        targets = [r.uid for r in found if r.recoverable or args.force]
        left = [r for r in found if not (r.recoverable or args.force)]
    if not targets and not left:
        print(f"no runs left open in {location}")
        return EXIT_OK
    for uid in targets:
        if catalog[uid].metadata.get("stop") is not None:
            print(f"{_short(uid)}  already closed")
            continue
        try:
            done = recover_run(catalog, uid, frames=frames, force=args.force, idle=args.idle)
        except RunIsLive as error:
            raise CliError(
                f"{error}; wait for it to end, or use --force if that process is stuck",
                EXIT_USAGE,
            ) from None
        print(done.summary())
        if not done.files:
            print(
                f"  no frame files found for {_short(uid)}: if its camera wrote outside the "
                "folders this catalog knows, give --frames FOLDER"
            )
    for run in left:
        print(f"{_short(run.uid)}  left open: {run.detail}")
    return EXIT_OK


# ---- probe --------------------------------------------------------------------------


def _probe(args) -> int:
    from ophyd_pvcam.diagnostics import Bench
    from ophyd_pvcam.diagnostics import _probe as probe

    if not args.verbose:  # stalls are what the probe looks for: report them in the tables
        for name in ("ophyd_pvcam", "bluesky"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    if args.inject_stall is not None and args.camera == "real":
        raise CliError("--inject-stall needs the simulated camera", EXIT_USAGE)
    options = probe.ProbeOptions(
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
    save = _json_writer(args.json)
    keep = args.keep_data or args.record  # recorded runs reference their frame files
    with Bench(None, _simulated(args), keep_data=keep, announce=_to_stderr) as bench:
        if args.inject_stall is not None and not bench.simulated:
            raise CliError("--inject-stall needs the simulated camera", EXIT_USAGE)
        if args.record:
            options.catalog = _catalog(args)[0]
        with _interruptible("the probe", args.json):
            report = probe.Probe(bench, options, say=print, update=save).run()
    if args.png:
        print(f"\nplot     {probe.plot(report, Path(args.png))}")
    if args.json:
        print(f"json     {args.json}")
    return EXIT_OK


def _simulated(args) -> bool | None:
    return None if args.camera == "auto" else args.camera == "sim"


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


class _interruptible:
    """Ctrl-C during a RunEngine plan ends the command with one line, like elsewhere."""

    def __init__(self, what: str, saved_in: str | None):
        self.what = what
        self.saved_in = saved_in

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> None:
        from bluesky.utils import RunEngineInterrupted

        if kind is not None and issubclass(kind, RunEngineInterrupted):
            saved = f"; what it found so far is in {self.saved_in}" if self.saved_in else ""
            raise CliError(f"{self.what} was interrupted{saved}", EXIT_ACQUISITION) from None


def _json_writer(path: str | None) -> Callable[[dict], None] | None:
    """Writes a report to ``path`` each time it is called (whole file, replaced at once),
    so an interrupted command leaves what it found so far."""
    if not path:
        return None
    target = Path(path)

    def save(report: dict) -> None:
        partial = target.with_name(target.name + ".partial")
        partial.write_text(json.dumps(report, indent=1, default=str))
        partial.replace(target)

    return save


def _positive(kind: Callable[[str], float | int]) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give a positive value")
        return value

    return parse


# ---- check --------------------------------------------------------------------------


def _check(args) -> int:
    from ophyd_pvcam.config import setting
    from ophyd_pvcam.diagnostics import Bench
    from ophyd_pvcam.diagnostics import _check as check
    from ophyd_pvcam.paths import default_catalog_path

    if not args.verbose:  # failures are reported in the check's rows, one line each
        for name in ("ophyd_pvcam", "bluesky"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    options = check.CheckOptions(
        stream_frames=args.stream_frames,
        temperature_wait=args.temperature_wait,
        temperature_tolerance=args.temperature_tolerance,
    )
    if args.keep_data:  # the scans join the beamline's catalog, their frames kept
        options.catalog = args.catalog or setting("catalog") or default_catalog_path()
    save = _json_writer(args.json)
    with (
        Bench(None, _simulated(args), keep_data=args.keep_data, announce=_to_stderr) as bench,
        _interruptible("the check", args.json),
    ):
        result = check.FirstDayCheck(bench, options, say=print, update=save).run()
    report = result.as_dict()
    if save is not None:
        save(report)
    print(f"\n{result.summary()}")
    if args.png:
        print(f"plot     {check.plot(report, Path(args.png))}")
    if args.json:
        print(f"json     {args.json}")
    if not result.passed:
        raise CliError(f"check failed: {result.first_failure}", EXIT_ACQUISITION)
    return EXIT_OK


# ---- catalog server -------------------------------------------------------------------


def _catalog_server(args) -> int:
    from ophyd_pvcam.catalog import asyncpg_uri, check_api_key, serve_catalog
    from ophyd_pvcam.config import api_key
    from ophyd_pvcam.paths import default_write_path

    if args.api_key_file:
        try:
            key = Path(args.api_key_file).read_text().strip()
        except OSError as error:
            raise CliError(f"cannot read --api-key-file: {error}", EXIT_USAGE) from None
    else:
        key = api_key()
    try:
        check_api_key(key)
        asyncpg_uri(args.database)
    except ValueError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    _check_listen(args.host, args.port)
    for uri in filter(None, (args.database, args.tables)):
        _check_database(uri)
    logging.getLogger("ophyd_pvcam").setLevel(logging.INFO)
    try:
        serve_catalog(
            args.database,
            storage=Path(args.storage),
            frames=[Path(f) for f in (args.frames or [default_write_path()])],
            api_key=key,
            tables=args.tables,
            host=args.host,
            port=args.port,
        )
    except Exception as error:  # the database refused us (password, no such database...)
        if not _is_database_error(error):
            raise
        raise CliError(
            f"the catalog database {_without_password(args.database)} refused: "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}",
            EXIT_CATALOG,
        ) from None
    return EXIT_OK


def _check_listen(host: str, port: int) -> None:
    """The address is free to listen on (uvicorn would exit with 3 otherwise)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise CliError(f"--host {host}: {error.strerror or error}", EXIT_USAGE) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise CliError(
                f"cannot listen on {host}:{port}: {error.strerror or error} (another server "
                "there? choose another --port)",
                EXIT_USAGE,
            ) from None


def _is_database_error(error: BaseException) -> bool:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - installed with tiled's server extras
        return isinstance(error, OSError)
    return isinstance(error, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError))


def _without_password(uri: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
        if parts.password:
            return uri.replace(f":{parts.password}@", ":***@", 1)
    except ValueError:
        pass
    return uri


# ---- the parser and main ------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (usage is one --help away)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"ophyd-pvcam: error: {message} (see '{self.prog} --help')\n")


def _integer(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is too small: give {least} or more")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0")
    return value


def _idle_seconds(text: str) -> float:
    if text.strip() in ("0", "0.0"):
        return 0.0
    return _seconds(text)


def _contrast(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give two percentiles LOW,HIGH, e.g. 1,99.5"
        ) from None
    if not (0 <= low < high <= 100):
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= LOW < HIGH <= 100")
    return low, high


def _roi(text: str) -> tuple[int, int, int, int]:
    try:
        values = tuple(int(part) for part in text.split(","))
        if len(values) != 4:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give X,Y,WIDTH,HEIGHT in sensor pixels, e.g. 768,768,512,512"
        ) from None
    return values


def _port(text: str) -> int:
    value = _integer(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1..65535)")
    return value


def _numbers(kind: Callable[[str], float | int]) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
        if not values or any(v <= 0 for v in values):
            raise argparse.ArgumentTypeError(f"{text!r}: give positive values, e.g. 8,16,32")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ophyd-pvcam",
        description="A PVCAM camera (Prime BSI) for Bluesky: acquire, look, inspect runs, "
        "probe stalls.",
        epilog="Exit codes: 0 ok, 1 acquisition failed, 2 bad arguments or settings, "
        "3 no usable camera, 4 catalog or run not found.",
    )
    parser.add_argument(
        "--catalog",
        help="catalog folder or tiled server URI "
        "(default: $OPHYD_PVCAM_CATALOG or the per-user data folder)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_camera(sub):
        sub.add_argument(
            "--camera",
            choices=("auto", "sim", "real"),
            default="auto",
            help="auto: the real camera if PVCAM is installed, else the simulator",
        )
        return sub

    demo = with_camera(
        commands.add_parser(
            "demo", help="acquire a count and a fly scan into the catalog, replay and summarise"
        )
    )
    demo.add_argument(
        "--frames", type=_integer(1), default=300, help="fly scan frames (default 300)"
    )
    demo.add_argument("--points", type=_integer(1), default=5, help="count points (default 5)")
    demo.add_argument(
        "--exposure",
        type=_seconds,
        default=0.01,
        help=f"seconds (default 0.01); the whole demo may take at most {DEMO_LIMIT_S:g} s",
    )
    demo.set_defaults(run=_demo)

    info = with_camera(
        commands.add_parser(
            "info", help="the camera's identity and its port/speed/gain table with frame rates"
        )
    )
    info.set_defaults(run=_info)

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
    live.add_argument("--exposure", type=_seconds, help="seconds (default: the camera's 0.01)")
    live.add_argument(
        "--roi", type=_roi, metavar="X,Y,W,H", help="region in sensor pixels (default: all)"
    )
    live.add_argument("--binning", type=int, choices=(1, 2, 4), help="1, 2 or 4 (default 1)")
    live.add_argument(
        "--contrast",
        type=_contrast,
        default=DEFAULT_CONTRAST,
        metavar="LOW,HIGH",
        help="percentiles drawn black and white (default 1,99.5)",
    )
    live.set_defaults(run=_live)

    runs = commands.add_parser("runs", help="list the runs in the catalog")
    runs.add_argument("--last", type=_integer(1), default=20, help="show the newest N (default 20)")
    runs.set_defaults(run=_runs)

    show = commands.add_parser("show", help="summarise one run; optionally save a frame as PNG")
    show.add_argument("uid", help="run uid (a unique prefix is enough)")
    show.add_argument("--png", metavar="FILE", help="draw a frame into this PNG file")
    show.add_argument(
        "--frame",
        type=_integer(0),
        metavar="INDEX",
        help="which frame of the run for --png, 0 = the first (default 0); the PNG's "
        "title gives the camera's frame number",
    )
    show.add_argument(
        "--contrast",
        type=_contrast,
        metavar="LOW,HIGH",
        help="percentiles of the frame drawn black and white for --png (default 1,99.5)",
    )
    show.set_defaults(run=_show)

    export = commands.add_parser(
        "export", help="write a run's frames as TIFF stacks (for Fiji/ImageJ)"
    )
    export.add_argument("uid", help="run uid (a unique prefix is enough)")
    export.add_argument(
        "--tiff", required=True, metavar="DIR", help="folder for <uid>_<stream>_<key>.tif"
    )
    export.add_argument("--stream", help="only this stream (default: every stream with images)")
    export.set_defaults(run=_export)

    recover = commands.add_parser(
        "recover",
        help="close runs left open by a process that died, with every intact frame on disk",
        description="Closes runs that have no stop document because the process recording "
        "them died (kill -9, crash, power cut): their frames on disk become reachable through "
        "the run and the stop document says 'abort' and why. A run another process still "
        "records is never closed unless --force.",
    )
    recover.add_argument("uids", nargs="*", metavar="UID", help="runs to close (default: all)")
    recover.add_argument(
        "--frames",
        action="append",
        metavar="DIR",
        help="also look for frame files under this folder (repeatable)",
    )
    recover.add_argument(
        "--idle",
        type=_idle_seconds,
        default=3600.0,
        metavar="S",
        help="a run with no marker of who records it counts as dead after S seconds "
        "without writing (default 3600)",
    )
    recover.add_argument(
        "--force", action="store_true", help="close even runs that look alive (stuck processes)"
    )
    recover.set_defaults(run=_recover)

    probe = with_camera(
        commands.add_parser(
            "probe",
            help="why do frames stop? fly scans over buffers, exposures, ports, then one "
            "experiment per reported cause and a verdict",
        )
    )
    probe.add_argument(
        "--buffers",
        type=_numbers(int),
        default=[8, 16, 32],
        help="circular buffer sizes (default 8,16,32)",
    )
    probe.add_argument(
        "--exposures",
        type=_numbers(float),
        default=[0.002],
        help="exposure times in s (default 0.002; the experiments use the first)",
    )
    probe.add_argument(
        "--ports", type=lambda t: t.split(","), default=None, help="readout ports (default: all)"
    )
    probe.add_argument(
        "--frames", type=_positive(int), default=150, help="target frames (default 150)"
    )
    probe.add_argument(
        "--limit-frames",
        type=_positive(int),
        default=200,
        metavar="N",
        help="frame/byte-limit streams pass N frames (default 200) ...",
    )
    probe.add_argument(
        "--limit-bytes",
        type=_positive(int),
        default=1 << 30,
        metavar="BYTES",
        help="... and BYTES bytes (default 1 GiB, past the ~780 MB reported)",
    )
    probe.add_argument(
        "--stall-timeout",
        type=_positive(float),
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
    probe.set_defaults(run=_probe)

    check = with_camera(
        commands.add_parser(
            "check",
            help="the first-day acceptance test: identity, rates, streams, triggers, scans, "
            "temperature; exit 0 if all pass",
        )
    )
    check.add_argument(
        "--stream-frames",
        type=_positive(int),
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
        type=_positive(float),
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
    check.set_defaults(run=_check)

    server = commands.add_parser(
        "catalog-server",
        help="serve the catalog from PostgreSQL to other machines (tiled, with an API key)",
        description="Runs a tiled catalog server on PostgreSQL. The API key comes from "
        "$TILED_API_KEY or --api-key-file and is never printed. Clients: "
        "OPHYD_PVCAM_CATALOG=http://HOST:PORT and the same TILED_API_KEY.",
    )
    server.add_argument(
        "--database", required=True, help="postgresql://user@host:port/name of the catalog database"
    )
    server.add_argument("--tables", help="postgresql:// URI for event tables (default: --database)")
    server.add_argument(
        "--storage", required=True, help="folder the server may write (arrays it stores itself)"
    )
    server.add_argument(
        "--frames",
        action="append",
        help="folder of frame files the server may read (repeatable; "
        "default: the data folder's frames)",
    )
    server.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    server.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    server.add_argument("--api-key-file", help="file holding the API key")
    server.set_defaults(run=_catalog_server)
    return parser


def main(argv: list[str] | None = None) -> int:
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
    from ophyd_pvcam.sim import SimulatorError
    from ophyd_pvcam.sim._control import FaultSpecError

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
