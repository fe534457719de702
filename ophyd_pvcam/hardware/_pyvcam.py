"""The camera backend on the vendor's pyvcam: the only module that imports pyvcam.

It decides which ``libpvcam.so.2`` backs pyvcam (the vendor's or our simulator),
opens a camera by name, learns its capabilities once, applies settings, and streams
frames: start, poll with a timeout, software triggers, stop.  Every method runs on the
device's owner thread (pyvcam deadlocks when one thread polls while another finishes:
``docs/decisions/0002-...``), and nothing here knows about Bluesky.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import threading
import time
from typing import Any

import numpy as np

from ophyd_pvcam import sim
from ophyd_pvcam.errors import CameraInUseError, CameraUnavailableError

from ._backend import (
    CameraError,
    CameraSetup,
    Capabilities,
    FrameInfo,
    Gain,
    Mode,
    Port,
    Readings,
    Speed,
    StreamSpec,
)

log = logging.getLogger(__name__)

_pvcam_lock = threading.Lock()
_pvcam_users = 0
_pvcam_ours = False  # whether we initialised PVCAM (and so should uninitialise it)
_open_cameras: dict[str, str] = {}  # camera name -> owner description
# With metadata, a frame is [48-byte frame header][32-byte ROI header][pixels];
# the frame number sits 5 bytes into the frame header.
_HEADER_BYTES_BEFORE_PIXELS = 80
_FRAME_NUMBER_OFFSET = 5


def vendor_pvcam_available() -> bool:
    """Whether pyvcam can bind to a vendor libpvcam.so.2 in this process."""
    if sim.is_loaded():
        return False
    try:
        # pvc is a compiled module: pyright resolves it by `import a.b`, not `from a import b`
        import pyvcam.pvc  # noqa: F401
    except ImportError:
        return False
    return True


def simulator_wanted() -> bool:
    """Whether a camera that was not told which library to use gets the simulator:
    ``OPHYD_PVCAM_SIM`` asks for it, or there is no vendor PVCAM."""
    return sim.requested_by_environment() or not vendor_pvcam_available()


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
        import pyvcam.pvc as pvc
        from pyvcam import constants
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
    import pyvcam.pvc as pvc

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


class PyvcamBackend:
    """A PVCAM camera through pyvcam, as a :class:`~ophyd_pvcam.hardware.CameraBackend`.

    Construct it on the owner thread: opening the camera is an SDK call too.
    """

    def __init__(self, owner: str, camera_name: str | None, use_simulator: bool | None):
        self._owner = owner
        self._use_simulator = use_simulator
        self._camera, self.capabilities = open_camera(owner, camera_name, use_simulator)
        self._applied: dict[str, Any] = {}
        self._setup: CameraSetup | None = None
        self._metadata = self.capabilities.has_metadata
        self._check_torn: bool | None = None  # decided on the first frame
        self._lost = False

    # ---- idle --------------------------------------------------------------------

    def apply(self, setup: CameraSetup) -> None:
        if self._lost or not self._camera.is_open:
            self._setup = None
            self.ensure_open()
        cam, caps = self._camera, self.capabilities
        if "One Microsecond" not in caps.exposure_resolutions:
            raise CameraUnavailableError(f"{caps.name} offers no microsecond exposure resolution")
        port = caps.port(setup.readout_port)
        wanted = {
            "base": (self._metadata, caps.exposure_resolutions["One Microsecond"]),
            "readout": (port.value, setup.speed_index, setup.gain_index),
            "clear_mode": caps.clear_modes[setup.clear_mode],
            "roi": (setup.roi, setup.binning),
            "modes": (
                caps.trigger_modes[setup.trigger_mode],
                caps.expose_out_modes[setup.expose_out_mode],
            ),
            "temperature": setup.temperature_setpoint,
            "fan": caps.fan_speeds.get(setup.fan_speed),
        }
        changed = {key for key, value in wanted.items() if self._applied.get(key) != value}
        if "base" in changed:
            if self._metadata:
                cam.metadata_enabled = True
            cam.exp_res = wanted["base"][1]
        if "readout" in changed:
            cam.readout_port, cam.speed, cam.gain = wanted["readout"]
        if "clear_mode" in changed:
            cam.clear_mode = wanted["clear_mode"]
        if "roi" in changed:
            x, y, width, height = setup.roi
            cam.binning = (setup.binning, setup.binning)
            cam.set_roi(x, y, width, height)
        if "modes" in changed:
            cam.exp_mode, cam.exp_out_mode = wanted["modes"]
        if "temperature" in changed:
            cam.temp_setpoint = setup.temperature_setpoint
        if "fan" in changed and wanted["fan"] is not None:
            cam.fan_speed = wanted["fan"]
        self._applied = wanted
        self._setup = setup

    def read(self) -> Readings:
        cam = self._camera
        try:
            temperature = float(cam.temp)
        except RuntimeError:  # a lost camera has nothing to say
            temperature = math.nan
        try:
            readout = float(cam.readout_time) * 1e-6
        except (AttributeError, RuntimeError):
            readout = math.nan
        return Readings(temperature, readout, time.time())

    def ensure_open(self) -> None:
        if not self._lost and self._camera.is_open:
            return
        log.info("%s: reopening camera %s", self._owner, self.capabilities.name)
        close_camera(self._camera)
        self._camera, _ = open_camera(self._owner, self.capabilities.name, self._use_simulator)
        self._applied.clear()
        self._lost = False
        if self._setup is not None:
            self.apply(self._setup)  # a reopened camera has forgotten its settings

    def close(self) -> None:
        close_camera(self._camera)

    # ---- streaming -------------------------------------------------------------

    def start(self, spec: StreamSpec) -> None:
        if self._setup is None:
            raise RuntimeError("apply() settings before start()")
        exposure = self._setup.exposure_us
        try:
            if spec.mode is Mode.SEQUENCE:
                self._camera.start_seq(exp_time=exposure, num_frames=spec.frames)
            else:
                self._camera.start_live(exp_time=exposure, buffer_frame_count=spec.buffer_frames)
        except RuntimeError as error:
            # pyvcam registers its frame callback before starting and only finish()
            # removes it: without this, the next start registers it twice, and real
            # PVCAM then stops calling it after a few frames
            with contextlib.suppress(RuntimeError):
                self._camera.finish()
            raise self._error(error, "refused to start") from error

    def poll(self, timeout_s: float, out: np.ndarray) -> FrameInfo | None:
        try:
            frame, _fps, count = self._camera.poll_frame(
                timeout_ms=max(0, int(timeout_s * 1000)), oldestFrame=True, copyData=False
            )
        except RuntimeError as error:
            if str(error).startswith("Frame timeout"):
                return None
            raise self._error(error, "failed") from error
        view = frame["pixel_data"]
        header = frame.get("meta_data", {}).get("frame_header") if self._metadata else None
        number = int(header["frameNr"]) if header else int(count)
        np.copyto(out, view)
        if self._check_torn is None:
            self._check_torn = bool(header) and self._header_in_place(view, number, frame)
        torn = self._check_torn and _number_in_buffer(view) != number
        if header:
            bof, eof = header["timestampBofPs"] * 1e-12, header["timestampEofPs"] * 1e-12
        else:
            bof = eof = math.nan
        return FrameInfo(number, bof, eof, torn=torn)

    def trigger(self) -> bool:
        try:
            self._camera.sw_trigger()
        except ValueError:  # pvc: the camera ignored the trigger (busy)
            return False
        except RuntimeError as error:
            raise self._error(error, "refused a software trigger") from error
        return True

    def status(self) -> str:
        try:
            return self._camera.check_frame_status()
        except RuntimeError as error:
            raise self._error(error, "failed") from error

    def stop(self) -> None:
        try:
            self._camera.finish()
        except RuntimeError as error:
            log.warning("%s: stopping the camera failed: %s", self._owner, error)
            if "disconnected" in str(error).lower():
                self._lost = True

    # ---- helpers ---------------------------------------------------------------

    def _error(self, error: RuntimeError, what: str) -> CameraError:
        text = str(error)
        if "disconnected" in text.lower():
            self._lost = True
            return CameraError(f"the camera disconnected ({text})", lost=True)
        if "readout failed" in text.lower():
            return CameraError("the camera reported a readout failure", readout_failed=True)
        return CameraError(f"the camera {what}: {text}")

    def _header_in_place(self, view: np.ndarray, number: int, frame: dict) -> bool:
        """The torn-frame check reads the frame header in place: make sure it is where
        we think (no extended metadata, one ROI) before relying on it."""
        meta = frame["meta_data"]
        plain = meta["frame_header"]["extendedMdSize"] == 0 and len(meta["roi_headers"]) == 1
        plain = plain and meta["roi_headers"][0]["extendedMdSize"] == 0
        if plain and _number_in_buffer(view) == number:
            return True
        log.info("%s: frame headers not where expected; torn-frame check off", self._owner)
        return False


def _number_in_buffer(view: np.ndarray) -> int:
    """The frame number in the header just before the pixels, read now (a slot the camera
    overwrote while we copied it carries a newer number)."""
    address = view.ctypes.data - _HEADER_BYTES_BEFORE_PIXELS + _FRAME_NUMBER_OFFSET
    return ctypes.c_uint32.from_address(address).value
