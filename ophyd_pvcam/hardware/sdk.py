"""A small ctypes binding of the PVCAM calls that pyvcam does not expose.

pyvcam always streams in CIRC_OVERWRITE and hides the frame records, so the
questions of the original stall investigation (does CIRC_NO_OVERWRITE with
get-latest and no unlock halt once the buffer is full?) need the SDK itself.
This binding covers just those calls, works against the vendor library or the
simulator (whichever ``libpvcam.so.2`` the process loaded), and raises
:class:`PvcamError` with PVCAM's own message on failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

rs_bool = ctypes.c_uint16
int16, uns16 = ctypes.c_int16, ctypes.c_uint16
int32, uns32 = ctypes.c_int32, ctypes.c_uint32

CIRC_OVERWRITE = 1
CIRC_NO_OVERWRITE = 2
CCS_HALT = 1
PL_CALLBACK_BOF = 0
PL_CALLBACK_EOF = 1
ATTR_CURRENT = 0
ATTR_COUNT = 1
ATTR_TYPE = 2
ATTR_ACCESS = 7
ATTR_AVAIL = 8
ACC_READ_WRITE = 2
EXT_TRIG_INTERNAL = 7 << 8
EXT_TRIG_SOFTWARE_EDGE = (7 + 5) << 8
PL_SW_TRIG_STATUS_TRIGGERED = 0
EXP_RES_ONE_MILLISEC = 0
EXP_RES_ONE_MICROSEC = 1

# Parameter ids as pvcam.h builds them: (class << 16) + (type << 24) + index.
TYPE_INT16, TYPE_INT32, TYPE_FLT64, TYPE_UNS8, TYPE_UNS16, TYPE_UNS32 = 1, 2, 4, 5, 6, 7
TYPE_UNS64, TYPE_ENUM, TYPE_BOOLEAN, TYPE_INT8, TYPE_INT64, TYPE_FLT32 = 8, 9, 11, 12, 16, 19
_VALUE_TYPES = {
    TYPE_INT16: ctypes.c_int16,
    TYPE_INT32: ctypes.c_int32,
    TYPE_FLT64: ctypes.c_double,
    TYPE_UNS8: ctypes.c_uint8,
    TYPE_UNS16: ctypes.c_uint16,
    TYPE_UNS32: ctypes.c_uint32,
    TYPE_UNS64: ctypes.c_uint64,
    TYPE_ENUM: ctypes.c_int32,
    TYPE_BOOLEAN: rs_bool,
    TYPE_INT8: ctypes.c_int8,
    TYPE_INT64: ctypes.c_int64,
    TYPE_FLT32: ctypes.c_float,
}


def _param(cls: int, kind: int, index: int) -> int:
    return (cls << 16) + (kind << 24) + index


PARAM_PAR_SIZE = _param(2, TYPE_UNS16, 57)
PARAM_SER_SIZE = _param(2, TYPE_UNS16, 58)
PARAM_READOUT_TIME = _param(2, TYPE_FLT64, 179)  # microseconds, for the last setup
PARAM_READOUT_PORT = _param(2, TYPE_ENUM, 247)
PARAM_BIT_DEPTH = _param(2, TYPE_INT16, 511)
PARAM_GAIN_INDEX = _param(2, TYPE_INT16, 512)
PARAM_SPDTAB_INDEX = _param(2, TYPE_INT16, 513)
PARAM_CLEAR_MODE = _param(2, TYPE_ENUM, 523)
PARAM_TEMP = _param(2, TYPE_INT16, 525)  # hundredths of a degree C
PARAM_TEMP_SETPOINT = _param(2, TYPE_INT16, 526)
PARAM_FAN_SPEED_SETPOINT = _param(2, TYPE_ENUM, 710)
PARAM_EXP_RES = _param(3, TYPE_ENUM, 2)
# What a diagnostic may change, in the order to put it back (a port resets speed and gain).
SETTINGS_PARAMS = (
    PARAM_READOUT_PORT,
    PARAM_SPDTAB_INDEX,
    PARAM_GAIN_INDEX,
    PARAM_EXP_RES,
    PARAM_CLEAR_MODE,
    PARAM_TEMP_SETPOINT,
    PARAM_FAN_SPEED_SETPOINT,
)


def value_type(param_id: int) -> type:
    """The C type of a parameter's value, from the type bits of its id."""
    return _VALUE_TYPES[(param_id >> 24) & 0xFF]


STATUS_NAMES = {
    0: "READOUT_NOT_ACTIVE",
    1: "EXPOSURE_IN_PROGRESS",
    2: "READOUT_IN_PROGRESS",
    3: "FRAME_AVAILABLE",
    4: "READOUT_FAILED",
}


class FrameInfo(ctypes.Structure):
    """PVCAM's FRAME_INFO (48 bytes; times in 0.1 ms)."""

    _fields_ = [
        ("FrameInfoGUID", ctypes.c_uint8 * 16),
        ("hCam", int16),
        ("FrameNr", int32),
        ("TimeStamp", ctypes.c_int64),
        ("ReadoutTime", int32),
        ("TimeStampBOF", ctypes.c_int64),
    ]


class Region(ctypes.Structure):
    """PVCAM's rgn_type: inclusive sensor coordinates and binning."""

    _fields_ = [(name, uns16) for name in ("s1", "s2", "sbin", "p1", "p2", "pbin")]

    @classmethod
    def of(cls, x: int, y: int, width: int, height: int, binning: int = 1) -> Region:
        return cls(x, x + width - 1, binning, y, y + height - 1, binning)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the binned image."""
        return (
            (self.p2 - self.p1 + 1) // self.pbin,
            (self.s2 - self.s1 + 1) // self.sbin,
        )


FrameCallback = ctypes.CFUNCTYPE(None, ctypes.POINTER(FrameInfo), ctypes.c_void_p)


class PvcamError(RuntimeError):
    """A PVCAM call failed; the message is PVCAM's."""

    def __init__(self, call: str, code: int, message: str):
        super().__init__(f"{call} failed: {message}")
        self.call = call
        self.code = code


@dataclass(frozen=True)
class Frame:
    """A frame as the SDK hands it over: a view into the circular buffer."""

    number: int
    bof: float  # seconds since acquisition start (camera clock)
    eof: float
    pixels: np.ndarray


_SIGNATURES = {
    "pl_pvcam_init": [],
    "pl_pvcam_uninit": [],
    "pl_cam_get_total": [ctypes.POINTER(int16)],
    "pl_cam_get_name": [int16, ctypes.c_char_p],
    "pl_cam_open": [ctypes.c_char_p, ctypes.POINTER(int16), int16],
    "pl_cam_close": [int16],
    "pl_cam_register_callback_ex3": [int16, int32, ctypes.c_void_p, ctypes.c_void_p],
    "pl_cam_deregister_callback": [int16, int32],
    "pl_get_param": [int16, uns32, int16, ctypes.c_void_p],
    "pl_set_param": [int16, uns32, ctypes.c_void_p],
    "pl_pvcam_get_ver": [ctypes.POINTER(uns16)],
    "pl_exp_trigger": [int16, ctypes.POINTER(uns32), uns32],
    "pl_exp_setup_cont": [
        int16,
        uns16,
        ctypes.POINTER(Region),
        int16,
        uns32,
        ctypes.POINTER(uns32),
        int16,
    ],
    "pl_exp_start_cont": [int16, ctypes.c_void_p, uns32],
    "pl_exp_check_cont_status": [
        int16,
        ctypes.POINTER(int16),
        ctypes.POINTER(uns32),
        ctypes.POINTER(uns32),
    ],
    "pl_exp_get_latest_frame_ex": [
        int16,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(FrameInfo),
    ],
    "pl_exp_get_oldest_frame_ex": [
        int16,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(FrameInfo),
    ],
    "pl_exp_unlock_oldest_frame": [int16],
    "pl_exp_abort": [int16, int16],
    "pl_error_code": [],
    "pl_error_message": [int16, ctypes.c_char_p],
}


class Sdk:
    """The PVCAM library already loaded in this process (vendor or simulated)."""

    def __init__(self, library: ctypes.CDLL | None = None):
        self._lib = library or ctypes.CDLL("libpvcam.so.2", mode=ctypes.RTLD_GLOBAL)
        for name, argtypes in _SIGNATURES.items():
            function = getattr(self._lib, name)
            function.argtypes = argtypes
            function.restype = int16 if name == "pl_error_code" else rs_bool
        # every callback handed to PVCAM stays alive until deregistered (a second
        # registration must not free the first: PVCAM may still call it)
        self._callbacks: dict[tuple[int, int], list] = {}

    def _call(self, name: str, *args) -> None:
        if not getattr(self._lib, name)(*args):
            code = int(self._lib.pl_error_code())
            text = ctypes.create_string_buffer(256)
            self._lib.pl_error_message(code, text)
            raise PvcamError(name, code, text.value.decode(errors="replace"))

    def init(self) -> None:
        self._call("pl_pvcam_init")

    def uninit(self) -> None:
        self._call("pl_pvcam_uninit")

    def version(self) -> str:
        """PVCAM's version, "major.minor.build" as pvcam.h packs it into 16 bits."""
        value = uns16()
        self._call("pl_pvcam_get_ver", ctypes.byref(value))
        v = value.value
        return f"{v >> 8}.{(v >> 4) & 0xF}.{v & 0xF}"

    def camera_names(self) -> list[str]:
        total = int16()
        self._call("pl_cam_get_total", ctypes.byref(total))
        names = []
        for index in range(total.value):
            name = ctypes.create_string_buffer(32)
            self._call("pl_cam_get_name", index, name)
            names.append(name.value.decode())
        return names

    def open(self, name: str) -> int:
        handle = int16()
        self._call("pl_cam_open", name.encode(), ctypes.byref(handle), 0)
        return handle.value

    def close(self, handle: int) -> None:
        self._call("pl_cam_close", handle)

    def on_frame(self, handle: int, event: int, callback: Callable[[FrameInfo], None]) -> None:
        """Register a BOF or EOF callback.  It runs on the SDK's thread."""

        def trampoline(info, _context):
            callback(info.contents)

        c_callback = FrameCallback(trampoline)
        self._callbacks.setdefault((handle, event), []).append(c_callback)  # keep it alive
        self._call(
            "pl_cam_register_callback_ex3",
            handle,
            event,
            ctypes.cast(c_callback, ctypes.c_void_p),
            None,
        )

    def clear_callback(self, handle: int, event: int) -> None:
        self._call("pl_cam_deregister_callback", handle, event)
        self._callbacks.pop((handle, event), None)

    def registered(self, handle: int, event: int) -> int:
        """How many callbacks this binding registered for ``event`` and not cleared."""
        return len(self._callbacks.get((handle, event), ()))

    def get_param(
        self,
        handle: int,
        param_id: int,
        attribute: int = ATTR_CURRENT,
        ctype: type = ctypes.c_int16,
    ) -> int | float:
        """``pl_get_param`` into a ``ctype`` (the parameter's C type; ``c_uint16``
        for ``ATTR_AVAIL``)."""
        value = ctype()
        self._call("pl_get_param", handle, param_id, attribute, ctypes.byref(value))
        return value.value

    def read(self, handle: int, param_id: int, attribute: int = ATTR_CURRENT) -> int | float:
        """A parameter's value (or attribute), in the C type its id names.

        A parameter call: never while frames stream (real cameras have stopped
        delivering frames when their parameters were read mid-stream)."""
        if attribute in (ATTR_AVAIL, ATTR_TYPE, ATTR_ACCESS):
            ctype = rs_bool if attribute == ATTR_AVAIL else uns16
        elif attribute == ATTR_COUNT:
            ctype = uns32
        else:
            ctype = value_type(param_id)
        return self.get_param(handle, param_id, attribute, ctype)

    def available(self, handle: int, param_id: int) -> bool:
        return bool(self.read(handle, param_id, ATTR_AVAIL))

    def write(self, handle: int, param_id: int, value: int | float) -> None:
        """``pl_set_param`` with the value in the parameter's C type."""
        c_value = value_type(param_id)(value)
        self._call("pl_set_param", handle, param_id, ctypes.byref(c_value))

    def setup_cont(
        self,
        handle: int,
        region: Region,
        exposure: int,
        buffer_mode: int,
        exp_mode: int = EXT_TRIG_INTERNAL,
    ) -> int:
        """Set up continuous acquisition; returns the bytes per frame."""
        frame_bytes = uns32()
        self._call(
            "pl_exp_setup_cont",
            handle,
            1,
            ctypes.byref(region),
            exp_mode,
            exposure,
            ctypes.byref(frame_bytes),
            buffer_mode,
        )
        return frame_bytes.value

    def start_cont(self, handle: int, buffer: np.ndarray) -> None:
        """Start streaming into ``buffer`` (keep it alive until :meth:`abort`)."""
        self._call("pl_exp_start_cont", handle, buffer.ctypes.data, buffer.nbytes)

    def status(self, handle: int) -> tuple[str, int, int]:
        """(status name, bytes arrived, buffer fills)."""
        status, arrived, fills = int16(), uns32(), uns32()
        self._call(
            "pl_exp_check_cont_status",
            handle,
            ctypes.byref(status),
            ctypes.byref(arrived),
            ctypes.byref(fills),
        )
        return STATUS_NAMES.get(status.value, str(status.value)), arrived.value, fills.value

    def _frame(self, call: str, handle: int, shape: tuple[int, int]) -> Frame:
        address, info = ctypes.c_void_p(), FrameInfo()
        self._call(call, handle, ctypes.byref(address), ctypes.byref(info))
        if address.value is None:  # PVCAM sets it whenever the call succeeds
            raise PvcamError(call, 0, "returned no frame address")
        count = shape[0] * shape[1]
        pixels = np.ctypeslib.as_array((ctypes.c_uint16 * count).from_address(address.value))
        return Frame(
            info.FrameNr,
            info.TimeStampBOF * 1e-4,
            info.TimeStamp * 1e-4,
            pixels.reshape(shape),
        )

    def latest_frame(self, handle: int, shape: tuple[int, int]) -> Frame:
        return self._frame("pl_exp_get_latest_frame_ex", handle, shape)

    def oldest_frame(self, handle: int, shape: tuple[int, int]) -> Frame:
        return self._frame("pl_exp_get_oldest_frame_ex", handle, shape)

    def unlock_oldest(self, handle: int) -> None:
        self._call("pl_exp_unlock_oldest_frame", handle)

    def trigger(self, handle: int) -> bool:
        """One software trigger; False if the camera ignored it (still exposing)."""
        flags = uns32()
        self._call("pl_exp_trigger", handle, ctypes.byref(flags), 0)
        return flags.value == PL_SW_TRIG_STATUS_TRIGGERED

    def abort(self, handle: int) -> None:
        self._call("pl_exp_abort", handle, CCS_HALT)


class FrameCounter:
    """Counts frame callbacks and lets a thread wait for the next one."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.count = 0
        self.last: FrameInfo | None = None

    def __call__(self, info: FrameInfo) -> None:
        with self._condition:
            self.count += 1
            self.last = FrameInfo.from_buffer_copy(info)
            self._condition.notify_all()

    def wait_beyond(self, count: int, timeout: float) -> bool:
        """Wait until more than ``count`` callbacks arrived; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: self.count > count, timeout)


@dataclass
class FrameRecord:
    """One EOF callback: the camera's frame number and clock (s), and when it came (host)."""

    number: int
    bof: float
    eof: float
    arrived: float  # time.monotonic() in the callback


class FrameLog:
    """Records every EOF callback and lets a thread wait for new frames.

    ``count`` is the number of *distinct* frame numbers seen: a callback
    registered twice may be called twice per frame."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.records: list[FrameRecord] = []
        self._seen: set[int] = set()
        self.count = 0
        self.calls = 0

    def __call__(self, info: FrameInfo) -> None:
        record = FrameRecord(
            info.FrameNr, info.TimeStampBOF * 1e-4, info.TimeStamp * 1e-4, time.monotonic()
        )
        with self._condition:
            self.calls += 1
            if record.number not in self._seen:
                self._seen.add(record.number)
                self.records.append(record)
                self.count = len(self.records)
            self._condition.notify_all()

    def wait_beyond(self, count: int, timeout: float) -> bool:
        """Wait until more than ``count`` distinct frames came; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: self.count > count, timeout)

    @property
    def last_number(self) -> int:
        with self._condition:
            return max(self._seen, default=0)

    @property
    def lost(self) -> int:
        """Frames missing from the numbers seen (gaps up to the highest)."""
        with self._condition:
            return max(self._seen, default=0) - len(self._seen)


@dataclass
class Library:
    """PVCAM held initialised for a while: initialised here if nobody had, and then
    uninitialised at the end (pyvcam, finding it initialised, leaves it be)."""

    sdk: Sdk
    ours: bool = field(default=False, init=False)

    def __enter__(self) -> Library:
        try:
            self.sdk.init()
            self.ours = True
        except PvcamError as error:
            if "already initialized" not in str(error).lower():
                raise
        return self

    def __exit__(self, *exc) -> None:
        if self.ours:
            quietly(self.sdk.uninit)


@contextlib.contextmanager
def opened(sdk: Sdk, name: str) -> Iterator[int]:
    """A camera opened through the SDK; whatever happens, stopped and closed after."""
    handle = sdk.open(name)
    try:
        yield handle
    finally:
        release(sdk, handle)


def release(sdk: Sdk, handle: int) -> None:
    """Stop any acquisition, clear the callbacks this binding registered, close."""
    quietly(sdk.abort, handle)
    for event in (PL_CALLBACK_BOF, PL_CALLBACK_EOF):
        if sdk.registered(handle, event):
            quietly(sdk.clear_callback, handle, event)
    quietly(sdk.close, handle)


def snapshot(sdk: Sdk, handle: int, params: Iterable[int] = SETTINGS_PARAMS) -> dict[int, int]:
    """The current values of the writable ``params`` the camera has (idle only)."""
    saved = {}
    for param_id in params:
        try:
            if sdk.available(handle, param_id) and (
                sdk.read(handle, param_id, ATTR_ACCESS) == ACC_READ_WRITE
            ):
                saved[param_id] = sdk.read(handle, param_id)
        except PvcamError as error:
            log.info("parameter 0x%x not saved: %s", param_id, error)
    return saved


def restore(sdk: Sdk, handle: int, saved: dict[int, int]) -> list[str]:
    """Put back what :func:`snapshot` saved (idle only); returns what could not be."""
    failures = []
    for param_id, value in saved.items():
        try:
            if sdk.read(handle, param_id) != value:
                sdk.write(handle, param_id, value)
        except PvcamError as error:
            failures.append(f"parameter 0x{param_id:x}: {error}")
    return failures


def quietly(call: Callable, *args) -> None:
    """A clean-up call that must not hide the error being handled: failures are logged."""
    try:
        call(*args)
    except PvcamError as error:
        log.debug("%s%r: %s", getattr(call, "__name__", call), args, error)
