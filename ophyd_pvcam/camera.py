"""Opening a PVCAM camera through pyvcam, and what it can do.

This is the only module (with :mod:`acquisition`) that talks to pyvcam.  It
decides which ``libpvcam.so.2`` backs pyvcam (vendor or simulator), opens a
camera by name, learns its capabilities once, and applies validated
settings.  Nothing here knows about Bluesky.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from . import sim

log = logging.getLogger(__name__)

_pvcam_lock = threading.Lock()
_pvcam_users = 0
_pvcam_ours = False  # whether we initialised PVCAM (and so should uninitialise it)
_open_cameras: dict[str, str] = {}  # camera name -> owner description


class CameraUnavailableError(RuntimeError):
    """No PVCAM library or no camera: the message says what to install or set."""


class CameraInUseError(RuntimeError):
    """The camera is already open (in this process or another)."""


@dataclass(frozen=True)
class Gain:
    index: int
    name: str
    bit_depth: int


@dataclass(frozen=True)
class Speed:
    index: int
    name: str
    pixel_time_ns: int
    gains: tuple[Gain, ...]


@dataclass(frozen=True)
class Port:
    name: str
    value: int
    speeds: tuple[Speed, ...]


@dataclass(frozen=True)
class Capabilities:
    """What the opened camera reports about itself (read once, at open)."""

    name: str
    model: str
    serial_number: str
    firmware_version: str
    chip_name: str
    sensor_width: int
    sensor_height: int
    pixel_size_um: float
    ports: tuple[Port, ...]
    binnings: tuple[int, ...]
    trigger_modes: dict[str, int]
    expose_out_modes: dict[str, int]
    clear_modes: dict[str, int]
    fan_speeds: dict[str, int]
    exposure_resolutions: dict[str, int]
    max_exposure_s: float
    temperature_setpoint_range: tuple[float, float]
    simulated: bool
    has_metadata: bool = field(default=True)

    def port(self, name: str) -> Port:
        for port in self.ports:
            if port.name == name:
                return port
        raise KeyError(name)

    def table(self) -> list[dict[str, Any]]:
        """The port/speed/gain table as rows (for display and configuration)."""
        return [
            {
                "port": port.name,
                "speed_index": speed.index,
                "speed": speed.name,
                "pixel_time_ns": speed.pixel_time_ns,
                "gain_index": gain.index,
                "gain": gain.name,
                "bit_depth": gain.bit_depth,
            }
            for port in self.ports
            for speed in port.speeds
            for gain in speed.gains
        ]


def import_pyvcam(use_simulator: bool | None) -> tuple[Any, Any, Any]:
    """Import pyvcam bound to the right library; returns (pvc, Camera, constants).

    ``use_simulator``: True forces the simulator, False forces the vendor
    library, None uses the simulator only if ``OPHYD_PVCAM_SIM`` asks for it.
    """
    if use_simulator is None:
        use_simulator = sim.requested_by_environment()
    if use_simulator:
        sim.load()
    elif sim.is_loaded():
        raise CameraUnavailableError(
            "This process already runs pyvcam on the simulated PVCAM library; the vendor "
            "library cannot be used alongside it. Start a new Python without "
            "OPHYD_PVCAM_SIM=1 to use a real camera."
        )
    try:
        from pyvcam import constants, pvc
        from pyvcam.camera import Camera
    except ImportError as error:
        raise CameraUnavailableError(
            "pyvcam cannot load the PVCAM library (libpvcam.so.2): "
            f"{error}. Install the Teledyne Photometrics PVCAM runtime for a real camera, "
            "or use the simulated camera with sim=True or OPHYD_PVCAM_SIM=1."
        ) from error
    return pvc, Camera, constants


def _acquire_pvcam(pvc) -> None:
    """Initialise PVCAM once per process, shared by every open camera."""
    global _pvcam_users, _pvcam_ours
    with _pvcam_lock:
        if _pvcam_users == 0:
            try:
                pvc.init_pvcam()
                _pvcam_ours = True
            except RuntimeError as error:
                if "already initialized" not in str(error).lower():
                    raise
                _pvcam_ours = False  # someone else's: leave it initialised
                log.info("PVCAM was already initialised in this process")
        _pvcam_users += 1


def _release_pvcam(pvc) -> None:
    global _pvcam_users
    with _pvcam_lock:
        _pvcam_users -= 1
        if _pvcam_users == 0 and _pvcam_ours:
            try:
                pvc.uninit_pvcam()
            except RuntimeError:
                log.exception("PVCAM refused to uninitialise")


def open_camera(
    owner: str, camera_name: str | None = None, use_simulator: bool | None = None
) -> tuple[Any, Capabilities]:
    """Open a camera (the first one by default) and learn its capabilities.

    Returns the pyvcam ``Camera`` (open) and its :class:`Capabilities`.
    """
    pvc, camera_class, constants = import_pyvcam(use_simulator)
    _acquire_pvcam(pvc)
    try:
        names = camera_class.get_available_camera_names()
        if not names:
            raise CameraUnavailableError(
                "PVCAM found no camera. Check that it is powered and connected (and that "
                "no other program holds it), or use the simulator with sim=True."
            )
        name = camera_name or names[0]
        if name not in names:
            raise CameraUnavailableError(f"No camera named {name!r}; PVCAM lists {names}")
        with _pvcam_lock:
            if name in _open_cameras:
                raise CameraInUseError(
                    f"Camera {name!r} is already in use by {_open_cameras[name]} in this "
                    "process; close that device first (its .close() method) or reuse it."
                )
            _open_cameras[name] = owner
        camera = camera_class(name)
        try:
            camera.open()
        except RuntimeError as error:
            with _pvcam_lock:
                _open_cameras.pop(name, None)
            cause = error.__cause__ or error
            raise CameraInUseError(f"Camera {name!r} could not be opened: {cause}") from error
    except BaseException:
        _release_pvcam(pvc)
        raise
    try:
        capabilities = _learn(camera, constants, simulated=sim.is_loaded())
    except BaseException:
        close_camera(camera)
        raise
    log.info("Opened %s (%s, serial %s)", name, capabilities.model, capabilities.serial_number)
    return camera, capabilities


def close_camera(camera: Any) -> None:
    """Close a camera opened by :func:`open_camera` (idempotent)."""
    from pyvcam import pvc

    name = camera.name
    with _pvcam_lock:
        owned = _open_cameras.pop(name, None) is not None
    if camera.is_open:
        try:
            camera.close()
        except RuntimeError:
            log.exception("Closing camera %s failed", name)
    if owned:
        _release_pvcam(pvc)


def _param(camera, constants, param_id, default=None, attribute=None):
    try:
        if attribute is None:
            return camera.get_param(param_id)
        return camera.get_param(param_id, attribute)
    except AttributeError:
        return default


def _learn(camera, constants, simulated: bool) -> Capabilities:
    ports = []
    for port_name, table in camera.port_speed_gain_table.items():
        speeds = []
        for speed_name, speed in table.items():
            if speed_name == "port_value":
                continue
            gains = tuple(
                Gain(entry["gain_index"], gain_name, entry["bit_depth"])
                for gain_name, entry in speed.items()
                if isinstance(entry, dict) and "gain_index" in entry
            )
            speeds.append(Speed(speed["speed_index"], speed_name, speed["pixel_time"], gains))
        speeds.sort(key=lambda s: s.index)
        ports.append(Port(port_name, table["port_value"], tuple(speeds)))
    resolutions = dict(camera.exp_resolutions)
    # exposures are handled in microseconds when the camera offers them
    if "One Microsecond" in resolutions:
        camera.exp_res = resolutions["One Microsecond"]
        max_exposure_s = (
            _param(camera, constants, constants.PARAM_EXPOSURE_TIME, 0, constants.ATTR_MAX) * 1e-6
        )
    else:
        max_exposure_s = (
            _param(camera, constants, constants.PARAM_EXPOSURE_TIME, 0, constants.ATTR_MAX) * 1e-3
        )
    low = _param(camera, constants, constants.PARAM_TEMP_SETPOINT, 0, constants.ATTR_MIN)
    high = _param(camera, constants, constants.PARAM_TEMP_SETPOINT, 0, constants.ATTR_MAX)
    binnings = tuple(sorted({b[0] for b in (camera.binnings or [(1, 1)]) if b[0] == b[1]}))
    return Capabilities(
        name=camera.name,
        model=_param(camera, constants, constants.PARAM_PRODUCT_NAME, "unknown"),
        serial_number=camera.serial_no,
        firmware_version=camera.cam_fw,
        chip_name=_param(camera, constants, constants.PARAM_CHIP_NAME, "unknown"),
        sensor_width=camera.sensor_size[0],
        sensor_height=camera.sensor_size[1],
        pixel_size_um=_param(camera, constants, constants.PARAM_PIX_SER_SIZE, 0) / 1000.0,
        ports=tuple(ports),
        binnings=binnings,
        trigger_modes=dict(camera.exp_modes),
        expose_out_modes=dict(camera.exp_out_modes),
        clear_modes=dict(camera.clear_modes),
        fan_speeds=dict(camera.fan_speeds),
        exposure_resolutions=resolutions,
        max_exposure_s=float(max_exposure_s),
        temperature_setpoint_range=(low / 100.0, high / 100.0),
        simulated=simulated,
        has_metadata=bool(camera.check_param(constants.PARAM_METADATA_ENABLED)),
    )
