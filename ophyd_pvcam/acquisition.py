"""One acquisition, on the one thread that owns the pyvcam camera while it runs.

pyvcam deadlocks when one thread polls for frames while another finishes the
acquisition (pvc takes the GIL back while holding its camera mutex; abort
takes the mutex while holding the GIL).  So an :class:`Acquisition` makes
every pyvcam call from start to finish on its own thread; other threads only
ask it for frames or to stop.

It polls with a short timeout, reads each frame's camera frame number (from
PVCAM metadata) to find gaps and duplicates, copies the frame out of the
circular buffer, checks the frame was not overwritten while being copied, and
hands it to a sink (the HDF5 writer).  Memory stays flat: one reusable frame
copy and a few counters.

Three ways to run:

- ``FREE``: the camera times itself (or follows hardware triggers); every
  frame goes to the sink.  Fly scans.
- ``SOFTWARE``: the camera waits for software triggers; :meth:`request` asks
  for a batch of frames, and this thread triggers them one by one, so every
  frame is exposed after the request.  Step scans.
- ``SEQUENCE``: a fixed number of frames; the fallback for step scans on a
  camera without software triggering.
"""

from __future__ import annotations

import ctypes
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .stall import CameraAcquisitionError

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1
PROGRESS_INTERVAL_S = 0.1
# With metadata, a frame is [48-byte frame header][32-byte ROI header][pixels];
# the frame number sits 5 bytes into the frame header.
_HEADER_BYTES_BEFORE_PIXELS = 80
_FRAME_NUMBER_OFFSET = 5


class Mode(enum.Enum):
    FREE = "free"
    SOFTWARE = "software"
    SEQUENCE = "sequence"


@dataclass(frozen=True)
class Frame:
    """A frame copied out of the camera buffer (valid until the sink returns)."""

    pixels: np.ndarray
    number: int  # the camera's frame number, from 1
    bof: float  # camera clock, seconds since the acquisition started
    eof: float
    time: float  # wall-clock time of the end of the frame


@dataclass
class Batch:
    """Frames asked for by one trigger(): ``rows`` counts frames and lost frames."""

    size: int
    on_done: Callable[[Batch], None]
    rows: int = 0
    lost: list[int] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def complete(self) -> bool:
        return self.rows >= self.size


class Acquisition:
    """Runs one acquisition on its own thread.

    Callbacks run on that thread: ``sink(frame)`` for every frame kept,
    ``on_lost(numbers)`` for frame numbers known to be lost, ``on_frame()``
    for every frame that arrives (the stall monitor's heartbeat),
    ``on_progress(acquisition)`` a few times a second, ``on_started`` once the
    camera runs and ``on_done`` once it has stopped (``error`` says how).
    """

    def __init__(
        self,
        camera,
        *,
        name: str,
        mode: Mode,
        exposure: int,
        frames: int = 0,
        buffer_frames: int = 16,
        sink: Callable[[Frame], None],
        on_lost: Callable[[list[int]], None] | None = None,
        on_frame: Callable[[], None] | None = None,
        on_progress: Callable[[Acquisition], None] | None = None,
        on_started: Callable[[Acquisition], None] | None = None,
        on_done: Callable[[Acquisition], None] | None = None,
        metadata: bool = True,
        software_first: bool = False,
        batched: bool = False,
    ):
        if mode is Mode.SEQUENCE and frames < 1:
            raise ValueError(f"frames={frames}: a sequence needs at least one frame")
        self._camera = camera
        self.name = name
        self.mode = mode
        self.exposure = exposure  # in microseconds
        self.frames = frames  # camera frame numbers 1..frames; 0: until stopped
        self.buffer_frames = buffer_frames
        self._sink = sink
        self._on_lost = on_lost
        self._on_frame = on_frame
        self._on_progress = on_progress
        self._on_started = on_started
        self._on_done = on_done
        self._metadata = metadata
        self._software_first = software_first
        # step scans: only frames asked for by request() are kept
        self._batched = batched or mode is Mode.SOFTWARE
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._drain = True
        self._batch: Batch | None = None
        self._batch_lock = threading.Lock()
        self.started = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.received = 0
        self.duplicates = 0
        self.unrequested = 0  # frames that came while no trigger() waited for them
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
        self._triggered_at = 0.0  # monotonic time of the last software trigger
        self._awaiting = False  # a software trigger was sent and its frame is due
        self._thread = threading.Thread(target=self._run, name=f"{name}-acquisition", daemon=True)

    # ---- control, from any thread -------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def request(self, size: int, on_done: Callable[[Batch], None]) -> Batch:
        """Ask for the next ``size`` frames (batched acquisitions: step scans)."""
        batch = Batch(size, on_done)
        with self._batch_lock:
            if self._batch is not None and not self._batch.done.is_set():
                raise RuntimeError(f"{self.name}: the previous trigger has not finished")
            self._batch = batch
        self._wake.set()
        return batch

    def stop(self, drain: bool = True) -> None:
        """Stop acquiring; with ``drain`` the frames already queued are kept."""
        self._drain = drain
        self._stop.set()
        self._wake.set()

    def fail(self, error: BaseException) -> None:
        """Stop now and end with ``error`` (unless it already ended otherwise)."""
        if self.error is None:
            self.error = error
        self.stop(drain=False)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    @property
    def stopping(self) -> bool:
        """Asked to stop (or failed) but not yet done."""
        return self._stop.is_set() and not self.done.is_set()

    @property
    def thread(self) -> threading.Thread:
        """The thread that owns the camera while this acquisition runs."""
        return self._thread

    @property
    def expected_period_s(self) -> float:
        return max(self.exposure * 1e-6, self.readout_time_s or 0.0)

    # ---- the thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._start_camera()
        except Exception as error:
            if self.error is None:
                self.error = CameraAcquisitionError(
                    f"{self.name}: the camera refused to start: {error}"
                )
            self._end()
            return
        try:
            self._loop()
        except Exception as error:
            if self.error is None:
                self.error = error
        finally:
            self._finish_camera()
            self._end()

    def _start_camera(self) -> None:
        cam = self._camera
        if self.mode is Mode.SEQUENCE:
            cam.start_seq(exp_time=self.exposure, num_frames=self.frames)
        else:
            cam.start_live(exp_time=self.exposure, buffer_frame_count=self.buffer_frames)
        self.camera_status = "started"
        try:
            self.readout_time_s = float(cam.readout_time) * 1e-6
        except (AttributeError, RuntimeError):
            self.readout_time_s = None
        if self._software_first:
            self._software_trigger()
        self.started.set()
        if self._on_started:
            self._on_started(self)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.frames and self.last_number >= self.frames:
                return
            if self.mode is Mode.SOFTWARE and not self._trigger_if_needed():
                # nothing asked for: sleep until a request or a stop
                self._wake.wait(POLL_INTERVAL_S)
                self._wake.clear()
                continue
            if not self._poll_once(int(POLL_INTERVAL_S * 1000)):
                self.camera_status = self._camera.check_frame_status()
                if self.mode is Mode.SEQUENCE and self.camera_status == "READOUT_COMPLETE":
                    self._drain_queue()  # nothing more will come
                    self._account_missing_tail()
                    return
        if self._drain and self.error is None:
            self._drain_queue()

    def _poll_once(self, timeout_ms: int) -> bool:
        """Take one frame if one comes within the timeout; False if none came."""
        try:
            frame, _fps, count = self._camera.poll_frame(
                timeout_ms=timeout_ms, oldestFrame=True, copyData=False
            )
        except RuntimeError as error:
            if str(error).startswith("Frame timeout"):
                return False
            raise self._camera_error(error) from error
        self._accept(frame, count)
        return True

    def _drain_queue(self) -> None:
        """Take the frames pvc has already queued (at most one buffer's worth)."""
        limit = self.frames if self.mode is Mode.SEQUENCE else self.buffer_frames
        for _ in range(limit + 1):
            try:
                if not self._poll_once(0):
                    return
            except CameraAcquisitionError:
                return

    def _trigger_if_needed(self) -> bool:
        """SOFTWARE mode: trigger the next frame of the pending batch.  Returns
        False when no batch is pending (nothing to poll for)."""
        batch = self._batch
        if batch is None or batch.done.is_set():
            return False
        due = max(0.5, 3 * self.expected_period_s)
        if self._awaiting and time.monotonic() - self._triggered_at < due:
            return True
        # no frame yet for the last trigger (a lost frame, or a trigger the
        # camera ignored while busy): trigger again; gaps show as lost frames
        self._software_trigger()
        return True

    def _software_trigger(self) -> None:
        try:
            self._camera.sw_trigger()
        except ValueError:
            log.debug("%s: software trigger ignored (camera busy); retrying", self.name)
        self._triggered_at = time.monotonic()
        self._awaiting = True

    def _account_missing_tail(self) -> None:
        if self.frames and self.last_number < self.frames:
            self._record_lost(list(range(self.last_number + 1, self.frames + 1)))
            self.last_number = self.frames

    def _camera_error(self, error: RuntimeError) -> CameraAcquisitionError:
        text = str(error)
        where = f"after frame {self.last_number} ({self.received} frames received)"
        if "disconnected" in text.lower():
            self.camera_lost = True
            return CameraAcquisitionError(
                f"{self.name}: the camera disconnected {where}; frames up to then are saved. "
                f"Check its cable and power; it is reopened on the next acquisition. "
                f"PVCAM says: {text}"
            )
        if "readout failed" in text.lower():
            return CameraAcquisitionError(
                f"{self.name}: the camera reported a readout failure {where}; frames up to "
                "then are saved. Check the camera's connection and power, then retry."
            )
        return CameraAcquisitionError(f"{self.name}: acquisition failed {where}: {text}")

    def _accept(self, frame: dict, count: int) -> None:
        view = frame["pixel_data"]
        header = frame.get("meta_data", {}).get("frame_header") if self._metadata else None
        number = int(header["frameNr"]) if header else int(count)
        if count > self._last_count + 1:
            self.queue_losses += count - self._last_count - 1
        self._last_count = count
        self._awaiting = False
        if self._on_frame:
            self._on_frame()
        if self.frames and number > self.frames:
            self._gap_to(self.frames + 1)  # the target's last frames never came
            self._stop.set()  # the camera ran past the target: not ours
            return
        if self._copy is None:
            self._copy = np.empty(view.shape, view.dtype)
            self._check_overwrite = bool(header) and self._header_in_place(view, number, frame)
        np.copyto(self._copy, view)
        if self._check_overwrite and self._number_in_buffer(view) != number:
            # the camera overwrote this slot while we copied it: the copy is torn
            log.warning("%s: frame %d was overwritten in the buffer while read", self.name, number)
            self._gap_to(number + 1)
            return
        if number <= self.last_number:
            self.duplicates += 1  # a slot read late already held a newer frame
            return
        batch = self._batch
        if self._batched and (batch is None or batch.done.is_set()):
            self.unrequested += 1
            self.last_number = number
            return
        self._gap_to(number)
        self.last_number = number
        if self._batched and batch.done.is_set():
            self.unrequested += 1  # the lost frames before it completed the batch
            return
        bof = header["timestampBofPs"] * 1e-12 if header else float("nan")
        eof = header["timestampEofPs"] * 1e-12 if header else float("nan")
        now = time.time()
        if self._clock_offset is None:
            self._clock_offset = now - (eof if header else 0.0)
        wall = self._clock_offset + eof if header else now
        self._sink(Frame(self._copy, number, bof, eof, wall))
        self.received += 1
        self.last_frame_time = now
        self._count_rows(1)
        if self._on_progress and time.monotonic() - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = time.monotonic()
            self._on_progress(self)

    def _gap_to(self, number: int) -> None:
        """Frames between the last one and ``number`` never came: record them lost."""
        if number > self.last_number + 1:
            self._record_lost(list(range(self.last_number + 1, number)))
        self.last_number = max(self.last_number, number - 1)

    def _record_lost(self, numbers: list[int]) -> None:
        batch = self._batch
        if batch is not None and not batch.done.is_set():
            numbers = numbers[: batch.size - batch.rows]  # a batch never overflows
            batch.lost.extend(numbers)
        if not numbers:
            return
        self.lost.extend(numbers)
        log.warning(
            "%s: %d frame(s) lost (numbers %d..%d)",
            self.name,
            len(numbers),
            numbers[0],
            numbers[-1],
        )
        if self._on_lost:
            self._on_lost(numbers)
        self._count_rows(len(numbers))

    def _count_rows(self, rows: int) -> None:
        batch = self._batch
        if batch is None or batch.done.is_set():
            return
        batch.rows += rows
        if batch.complete:
            self._finish_batch(batch)

    def _finish_batch(self, batch: Batch, error: BaseException | None = None) -> None:
        batch.error = error
        batch.done.set()
        try:
            batch.on_done(batch)
        except Exception:
            log.exception("%s: trigger completion failed", self.name)

    @staticmethod
    def _number_in_buffer(view: np.ndarray) -> int:
        address = view.ctypes.data - _HEADER_BYTES_BEFORE_PIXELS + _FRAME_NUMBER_OFFSET
        return ctypes.c_uint32.from_address(address).value

    def _header_in_place(self, view: np.ndarray, number: int, frame: dict) -> bool:
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
            log.warning("%s: stopping the camera failed: %s", self.name, error)
            converted = self._camera_error(error)
            if self.error is None:
                self.error = converted

    def _end(self) -> None:
        batch = self._batch
        if batch is not None and not batch.done.is_set():
            self._finish_batch(
                batch,
                self.error
                or CameraAcquisitionError(f"{self.name}: the acquisition stopped mid-trigger"),
            )
        for callback in (self._on_progress, self._on_done):
            if callback:
                try:
                    callback(self)
                except Exception:
                    log.exception("%s: acquisition callback failed", self.name)
        self.done.set()
