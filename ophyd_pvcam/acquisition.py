"""One acquisition, on the one thread that owns the pyvcam camera while it runs.

pyvcam deadlocks when one thread polls for frames while another finishes the
acquisition (pvc takes the GIL back while holding its camera mutex; abort
takes the mutex while holding the GIL).  So an :class:`Acquisition` makes
every pyvcam call from start to finish on its own thread; other threads only
ask it to stop.  It polls with a short timeout, checks each frame's camera
frame number (from PVCAM metadata) for gaps and duplicates, copies the frame
out of the circular buffer, verifies it was not overwritten while copying,
and hands it to a sink (the HDF5 writer).  Memory stays flat: one reusable
frame copy and compact per-frame counters.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .stall import CameraAcquisitionError

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1
PROGRESS_INTERVAL_S = 0.1
# With metadata, a frame is [48-byte frame header][32-byte ROI header][pixels];
# the frame number sits 5 bytes into the frame header.
_HEADER_BYTES_BEFORE_PIXELS = 80
_FRAME_NUMBER_OFFSET = 5


@dataclass(frozen=True)
class Frame:
    """A frame, copied out of the camera buffer (valid until the sink returns)."""

    pixels: np.ndarray
    number: int  # the camera's frame number, from 1
    bof: float  # camera clock, seconds since the acquisition started
    eof: float
    time: float  # wall-clock time of the end of the frame


class Acquisition:
    """Acquire ``frames`` frames (0: until :meth:`stop`) in sequence or live mode.

    Callbacks run on the acquisition thread: ``sink(frame)`` for every good
    frame, ``on_lost(numbers)`` for frame numbers known to be lost,
    ``on_progress(acquisition)`` a few times a second and at the end,
    ``on_started(acquisition)`` once the camera runs and ``on_done(acquisition)``
    once it is stopped (``error`` says how it ended).
    """

    def __init__(
        self,
        camera,
        *,
        name: str,
        frames: int,
        live: bool,
        exposure: int,
        buffer_frames: int,
        sink: Callable[[Frame], None],
        on_lost: Callable[[list[int]], None] | None = None,
        on_progress: Callable[[Acquisition], None] | None = None,
        on_started: Callable[[Acquisition], None] | None = None,
        on_done: Callable[[Acquisition], None] | None = None,
        on_frame: Callable[[], None] | None = None,
        metadata: bool = True,
    ):
        if frames < 0 or (frames == 0 and not live):
            raise ValueError(f"frames={frames}: a sequence needs at least one frame")
        self._camera = camera
        self.name = name
        self.frames = frames
        self.live = live
        self.exposure = exposure
        self.buffer_frames = buffer_frames
        self._sink = sink
        self._on_lost = on_lost
        self._on_progress = on_progress
        self._on_started = on_started
        self._on_done = on_done
        self._on_frame = on_frame
        self._metadata = metadata
        self._stop = threading.Event()
        self._drain = False
        self.started = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.received = 0
        self.duplicates = 0
        self.queue_losses = 0  # frames pvc's queue dropped because we fell behind
        self.lost: list[int] = []
        self.last_number = 0
        self.last_frame_time: float | None = None  # wall clock
        self.camera_status = "not started"
        self.readout_time_s: float | None = None
        self.camera_lost = False
        self._copy: np.ndarray | None = None
        self._check_overwrite = metadata
        self._clock_offset: float | None = None
        self._last_count = 0
        self._last_progress = 0.0
        self._thread = threading.Thread(target=self._run, name=f"{name}-acquisition", daemon=True)

    # ---- control, from any thread -------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain: bool = True) -> None:
        """Stop acquiring; with ``drain`` the frames already queued are kept."""
        self._drain = drain
        self._stop.set()

    def fail(self, error: BaseException) -> None:
        """Stop now and end with ``error`` (unless it already ended otherwise)."""
        if self.error is None:
            self.error = error
        self.stop(drain=False)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def expected_period_s(self) -> float:
        readout = self.readout_time_s or 0.0
        return max(self.exposure * 1e-6, readout)

    # ---- the thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._start_camera()
        except Exception as error:
            self.error = self.error or CameraAcquisitionError(
                f"{self.name}: the camera refused to start: {error}"
            )
            self._end()
            return
        try:
            self._poll_until_done()
        except Exception as error:
            if self.error is None:
                self.error = error
        finally:
            self._finish_camera()
            self._end()

    def _start_camera(self) -> None:
        cam = self._camera
        if self.live:
            cam.start_live(exp_time=self.exposure, buffer_frame_count=self.buffer_frames)
        else:
            cam.start_seq(exp_time=self.exposure, num_frames=self.frames)
        self.camera_status = "started"
        try:
            self.readout_time_s = float(cam.readout_time) * 1e-6
        except (AttributeError, RuntimeError):
            self.readout_time_s = None
        self.started.set()
        if self._on_started:
            self._on_started(self)

    def _poll_until_done(self) -> None:
        cam = self._camera
        timeout_ms = int(POLL_INTERVAL_S * 1000)
        while not self._stop.is_set():
            if self.frames and self.last_number >= self.frames:
                return
            try:
                frame, _fps, count = cam.poll_frame(
                    timeout_ms=timeout_ms, oldestFrame=True, copyData=False
                )
            except RuntimeError as error:
                if str(error).startswith("Frame timeout"):
                    self.camera_status = cam.check_frame_status()
                    if not self.live and self.camera_status == "READOUT_COMPLETE":
                        self._drain_queue()  # nothing more will come
                        self._account_missing_tail()
                        return
                    continue
                raise self._camera_error(error) from error
            self._accept(frame, count)
        if self._drain and self.error is None:
            self._drain_queue()

    def _drain_queue(self) -> None:
        """Take the frames pvc has already queued (at most one buffer's worth)."""
        for _ in range(max(self.buffer_frames, self.frames or 0) + 1):
            try:
                frame, _fps, count = self._camera.poll_frame(
                    timeout_ms=0, oldestFrame=True, copyData=False
                )
            except RuntimeError:
                return
            self._accept(frame, count)

    def _account_missing_tail(self) -> None:
        if self.frames and self.last_number < self.frames:
            missing = list(range(self.last_number + 1, self.frames + 1))
            self._record_lost(missing)
            self.last_number = self.frames

    def _camera_error(self, error: RuntimeError) -> CameraAcquisitionError:
        text = str(error)
        if "disconnected" in text.lower():
            self.camera_lost = True
            return CameraAcquisitionError(
                f"{self.name}: the camera disconnected after frame {self.last_number} "
                f"({self.received} frames received). PVCAM says: {text}"
            )
        if "readout failed" in text.lower():
            return CameraAcquisitionError(
                f"{self.name}: the camera reported a readout failure after frame "
                f"{self.last_number} ({self.received} frames received). Frames up to then "
                "are saved; check the camera's connection and power, then retry."
            )
        return CameraAcquisitionError(f"{self.name}: acquisition failed: {text}")

    def _accept(self, frame: dict, count: int) -> None:
        view = frame["pixel_data"]
        header = frame.get("meta_data", {}).get("frame_header") if self._metadata else None
        number = int(header["frameNr"]) if header else int(count)
        if count > self._last_count + 1:
            self.queue_losses += count - self._last_count - 1
        self._last_count = count
        if self.frames and number > self.frames:
            self._stop.set()  # the camera ran past the target: not ours
            return
        if self._copy is None:
            self._copy = np.empty(view.shape, view.dtype)
            self._check_overwrite = bool(header) and self._header_readable(view, number, frame)
        np.copyto(self._copy, view)
        if self._check_overwrite and self._number_in_buffer(view) != number:
            # the camera overwrote this slot while we copied it: the copy is torn
            log.warning("%s: frame %d was overwritten in the buffer while read", self.name, number)
            self._record_lost([number])
            self.last_number = max(self.last_number, number)
            return
        if number <= self.last_number:
            self.duplicates += 1  # a slot we read late already held a newer frame
            return
        if number > self.last_number + 1:
            self._record_lost(list(range(self.last_number + 1, number)))
        self.last_number = number
        bof = header["timestampBofPs"] * 1e-12 if header else float("nan")
        eof = header["timestampEofPs"] * 1e-12 if header else float("nan")
        now = time.time()
        if self._clock_offset is None:
            self._clock_offset = now - (eof if header else 0.0)
        wall = self._clock_offset + eof if header else now
        self._sink(Frame(self._copy, number, bof, eof, wall))
        self.received += 1
        self.last_frame_time = now
        if self._on_frame:
            self._on_frame()
        if self._on_progress and time.monotonic() - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = time.monotonic()
            self._on_progress(self)

    def _record_lost(self, numbers: list[int]) -> None:
        self.lost.extend(numbers)
        log.warning(
            "%s: %d frame(s) lost (numbers %d..%d)", self.name, len(numbers), numbers[0], numbers[-1]
        )
        if self._on_lost:
            self._on_lost(numbers)

    @staticmethod
    def _number_in_buffer(view: np.ndarray) -> int:
        address = view.ctypes.data - _HEADER_BYTES_BEFORE_PIXELS + _FRAME_NUMBER_OFFSET
        return ctypes.c_uint32.from_address(address).value

    def _header_readable(self, view: np.ndarray, number: int, frame: dict) -> bool:
        """The overwrite check reads the frame header in place; make sure it is where
        we think (no extended metadata, one ROI) before relying on it."""
        meta = frame["meta_data"]
        plain = meta["frame_header"]["extendedMdSize"] == 0 and len(meta["roi_headers"]) == 1
        plain = plain and meta["roi_headers"][0]["extendedMdSize"] == 0
        if plain and self._number_in_buffer(view) == number:
            return True
        log.info("%s: frame headers not where expected; overwrite check disabled", self.name)
        return False

    def _finish_camera(self) -> None:
        try:
            self._camera.finish()
            self.camera_status = "stopped"
        except RuntimeError as error:
            self.camera_status = f"stop failed: {error}"
            if "disconnected" in str(error).lower():
                self.camera_lost = True
            log.warning("%s: stopping the camera failed: %s", self.name, error)
            if self.error is None:
                self.error = self._camera_error(error)

    def _end(self) -> None:
        self.done.set()
        if self._on_progress:
            try:
                self._on_progress(self)
            except Exception:
                log.exception("progress callback failed")
        if self._on_done:
            try:
                self._on_done(self)
            except Exception:
                log.exception("done callback failed")
