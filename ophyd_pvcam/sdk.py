"""A small ctypes binding of the PVCAM calls that pyvcam does not expose.

pyvcam always streams in CIRC_OVERWRITE and hides the frame records, so the
questions of the original stall investigation (does CIRC_NO_OVERWRITE with
get-latest and no unlock halt once the buffer is full?) need the SDK itself.
This binding covers just those calls, works against the vendor library or the
simulator (whichever ``libpvcam.so.2`` the process loaded), and raises
:class:`PvcamError` with PVCAM's own message on failure.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

rs_bool = ctypes.c_uint16
int16, uns16 = ctypes.c_int16, ctypes.c_uint16
int32, uns32 = ctypes.c_int32, ctypes.c_uint32

CIRC_OVERWRITE = 1
CIRC_NO_OVERWRITE = 2
CCS_HALT = 1
PL_CALLBACK_BOF = 0
PL_CALLBACK_EOF = 1
ATTR_CURRENT = 0
ATTR_AVAIL = 8
EXT_TRIG_INTERNAL = 7 << 8
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
        self._callbacks: dict[tuple[int, int], object] = {}

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
        self._callbacks[(handle, event)] = c_callback  # keep it alive
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
