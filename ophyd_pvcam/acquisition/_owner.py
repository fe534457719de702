"""The one thread that talks to the camera.

pyvcam deadlocks when one thread polls for frames while another finishes the
acquisition, and PVCAM cameras have been seen to stop delivering frames when
their parameters are read while they stream (``docs/decisions/0002-...`` and
``0006-...``).  So each device has a :class:`CameraOwner`: a thread that makes every
backend call -- opening, settings, readings, start, poll, trigger, stop -- and, while
frames stream, nothing but the streaming calls.  Other threads hand it work and wait
for the answer.

While a :class:`Stream` runs, the owner polls frames into slots of the device's
:class:`~ophyd_pvcam.storage.FrameQueue` and hands each, with what the backend knows
about it, to the stream's :class:`FrameSink` (the session, which decides where it
goes).  Data flows one way: camera -> owner -> sink -> writer; nobody calls back up.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol, TypeVar

import numpy as np

from ophyd_pvcam.hardware import CameraBackend, CameraError, FrameInfo, Mode, Readings, StreamSpec
from ophyd_pvcam.storage import FrameQueue

log = logging.getLogger(__name__)

T = TypeVar("T")
POLL_S = 0.1  # a stop is noticed within this
_FINISHED = ("READOUT_COMPLETE", "READOUT_NOT_ACTIVE")  # a sequence has given all it will
CALL_TIMEOUT_S = 60.0


class FrameSink(Protocol):
    """What a stream does with frames; every method runs on the owner thread."""

    def started(self, readings: Readings) -> None: ...
    def want(self, point: int, count: int) -> None: ...
    def outstanding(self) -> int: ...  # software triggering: frames still wanted
    def triggered(self) -> None: ...
    def frame(self, info: FrameInfo, slot: int | None, now: float) -> None: ...
    def satisfied(self) -> bool: ...  # nothing more is wanted from this stream
    def ended(self, error: BaseException | None, readings: Readings | None) -> None: ...


class Stream:
    """One acquisition, as other threads see it: ask for frames, stop, wait."""

    def __init__(self, spec: StreamSpec, sink: FrameSink, queue_: FrameQueue, retrigger_s: float):
        self.spec = spec
        self.sink = sink
        self.queue = queue_
        self.retrigger_s = retrigger_s
        self.software_first = False
        self._control: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.started = threading.Event()
        self.done = threading.Event()
        self.camera_status = "not started"  # as the camera last reported it

    def take_requests(self) -> None:
        """Hand pending requests to the sink (owner thread)."""
        while not self._control.empty():
            self.sink.want(*self._control.get())

    def request(self, point: int, count: int) -> None:
        """Ask for ``count`` fresh frames for ``point`` (answered through the sink)."""
        self._control.put((point, count))
        self._wake.set()

    def stop(self) -> None:
        """Stop acquiring (frames already in the driver's queue are still taken)."""
        self._stop.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float) -> bool:
        return self.done.wait(timeout)


class CameraOwner:
    """Owns one camera backend on its own thread for the device's whole life."""

    def __init__(self, name: str, open_backend: Callable[[], CameraBackend]):
        self.name = name
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._backend: CameraBackend | None = None
        self._heartbeat: Callable[[], None] = _nothing
        self.stream_running: Stream | None = None
        opened: Future = Future()
        self._thread = threading.Thread(
            target=self._main, args=(open_backend, opened), name=f"{name}-camera", daemon=True
        )
        self._thread.start()
        self.capabilities = opened.result(CALL_TIMEOUT_S)  # raises what opening raised

    # ---- from any thread ----------------------------------------------------------

    def call(self, fn: Callable[[CameraBackend], T], timeout: float = CALL_TIMEOUT_S) -> T:
        """Run ``fn(backend)`` on the owner thread once it is idle; its result or error."""
        if threading.current_thread() is self._thread:
            # work running on the owner thread: the backend opened before any work ran
            assert self._backend is not None
            return fn(self._backend)
        if not self._thread.is_alive():
            raise RuntimeError(f"{self.name}: the camera has been closed")
        future: Future = Future()
        self._commands.put((fn, future))
        try:
            return future.result(timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{self.name}: the camera did not answer within {timeout:g} s"
            ) from None

    @property
    def idle(self) -> bool:
        return self.stream_running is None

    def stream(self, stream: Stream) -> Stream:
        """Start ``stream`` once the owner is idle; returns it at once."""
        self._commands.put((stream, None))
        return stream

    def set_heartbeat(self, beat: Callable[[], None] | None) -> None:
        """Called on the owner thread for every frame that arrives (the stall monitor)."""
        self._heartbeat = beat or _nothing

    def close(self, timeout: float = 10.0) -> None:
        """Release the camera and end the thread (after any stream ends)."""
        if not self._thread.is_alive():
            return
        self._commands.put((None, None))
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("%s: the camera thread did not end within %g s", self.name, timeout)

    # ---- the owner thread ------------------------------------------------------

    def _main(self, open_backend: Callable[[], CameraBackend], opened: Future) -> None:
        try:
            backend = self._backend = open_backend()
        except BaseException as error:
            opened.set_exception(error)
            return
        opened.set_result(backend.capabilities)
        while True:
            work, future = self._commands.get()
            if work is None:
                break
            if isinstance(work, Stream):
                try:
                    self._run(backend, work)
                except Exception:  # never lose the owner thread: the device needs it
                    log.exception("%s: the acquisition ended badly", self.name)
                continue
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work(backend))
                except BaseException as error:
                    future.set_exception(error)
        try:
            backend.close()
        except Exception:
            log.exception("%s: closing the camera failed", self.name)

    def _run(self, backend: CameraBackend, stream: Stream) -> None:
        sink = stream.sink
        self.stream_running = stream
        error: BaseException | None = None
        readings: Readings | None = None
        started = False
        try:
            backend.ensure_open()
            readings = backend.read()  # the last values before frames stream
            backend.start(stream.spec)
            started = True
            if stream.software_first:
                backend.trigger()
            stream.started.set()
            sink.started(readings)
            self._loop(backend, stream)
        except BaseException as exc:  # a camera failure, or a bug: either way, stop
            error = exc
        finally:
            if started:
                try:
                    backend.stop()
                except Exception as exc:  # the camera is gone; the stream is over anyway
                    log.exception("%s: stopping the camera failed", self.name)
                    error = error or exc
            try:
                readings = backend.read()  # idle again: safe to read
            except Exception:
                log.debug("%s: no readings after the acquisition", self.name, exc_info=True)
            self.stream_running = None
            try:
                sink.ended(error, readings)
            except Exception:
                log.exception("%s: ending the acquisition failed", self.name)
            stream.started.set()
            stream.done.set()

    def _loop(self, backend: CameraBackend, stream: Stream) -> None:
        sink, frames = stream.sink, stream.queue
        scratch = np.empty(frames.shape, np.uint16)
        software = stream.spec.mode is Mode.SOFTWARE
        triggered_at = -math.inf
        while not stream.stopping:
            stream.take_requests()
            if sink.satisfied():
                return
            if software:
                if sink.outstanding() == 0:
                    stream._wake.wait(POLL_S)
                    stream._wake.clear()
                    triggered_at = -math.inf
                    continue
                # the first trigger, or a frame that never came: (re)trigger; a trigger
                # the camera ignores (busy) is retried after a short poll
                due = time.monotonic() - triggered_at >= stream.retrigger_s
                if due and backend.trigger():
                    sink.triggered()
                    triggered_at = time.monotonic()
            slot = frames.slot()
            info = backend.poll(POLL_S, scratch if slot is None else frames.buffer(slot))
            if info is None:
                if slot is not None:
                    frames.release(slot)
                stream.camera_status = backend.status()  # for a stall's diagnosis
                if stream.spec.mode is Mode.SEQUENCE and stream.camera_status in _FINISHED:
                    self._drain(backend, stream, scratch)
                    return
                continue
            triggered_at = -math.inf if software else triggered_at
            self._heartbeat()
            stream.take_requests()  # a request made before this frame's trigger edge
            sink.frame(info, slot, time.time())
        self._drain(backend, stream, scratch)

    def _drain(self, backend: CameraBackend, stream: Stream, scratch: np.ndarray) -> None:
        """Take the frames the driver already holds (at most a buffer's worth)."""
        frames = stream.queue
        for _ in range(stream.spec.buffer_frames + max(stream.spec.frames, 0) + 1):
            slot = frames.slot()
            try:
                info = backend.poll(0, scratch if slot is None else frames.buffer(slot))
            except CameraError:
                info = None
            if info is None:
                if slot is not None:
                    frames.release(slot)
                return
            stream.sink.frame(info, slot, time.time())


def _nothing() -> None:
    pass
