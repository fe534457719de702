"""The camera as Bluesky uses it, without ophyd: step and fly sessions over one owner thread.

:class:`~ophyd_pvcam.device.PrimeBSI` is signals and delegation; this is what it
delegates to.  It holds the parts that live as long as the device -- the owner thread
(the only caller of the camera), the stall watchdog, the memory between camera and
disk -- and the sessions that live for a run.  It never reads a signal: the device
hands it the settings (a :class:`~ophyd_pvcam.acquisition.Settings`) with each call, and
it reports back through one callback, so data flows one way.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ophyd_pvcam.errors import AcquisitionInterrupted, FrameStallError
from ophyd_pvcam.hardware import (
    CameraBackend,
    CameraSetup,
    Capabilities,
    Mode,
    Readings,
    StreamSpec,
)
from ophyd_pvcam.storage import FrameQueue

from ._diagnosis import describe_stall, snapshot_of
from ._fly import FlySession
from ._owner import CameraOwner, Stream
from ._preview import LiveStream
from ._pulse import Pulse
from ._readout import ReadoutModel
from ._seams import Completion, Progress, RunLink
from ._session import Session, SessionContext
from ._settings import Settings, SettingsChecker, automatic_memory_buffer_mib
from ._step import StepSession
from ._watchdog import StallMonitor

log = logging.getLogger(__name__)

SOFTWARE_EDGE = "Software Trigger Edge"
SOFTWARE_FIRST = "Software Trigger First"
HARDWARE_TRIGGER_MODES = {"Edge Trigger", "Trigger First"}
READINGS_MAX_AGE_S = 1.0
PULSE_INTERVAL_S = 0.1  # the status signals follow the ledger 10 times a second


class CameraController:
    """Stage, trigger, kickoff, complete, collect, unstage, stop, pause for one camera.

    ``report(controller)`` is called whenever what the device shows may have changed
    (frames acquired, lost, stalled, the last point).  ``find_run()`` tells which run
    a new session belongs to (None outside one); ``announce(error)`` is told a failure
    that no pending completion carries, for the face to deliver to the plan.
    """

    def __init__(
        self,
        name: str,
        open_backend: Callable[[], CameraBackend],
        write_path: Path,
        report: Callable[[CameraController], None],
        find_run: Callable[[], RunLink | None] = lambda: None,
        announce: Callable[[BaseException], None] = lambda error: None,
    ):
        self.name = name
        self.write_path = write_path
        self.file_stem: str | None = None  # files are <stem>_<kind>.h5 (None: the name)
        self._report = report
        self._find_run = find_run
        self._announce = announce
        self._lock = threading.RLock()
        self.owner = CameraOwner(name, open_backend)
        self.capabilities: Capabilities = self.owner.capabilities
        self.checker = SettingsChecker(self.capabilities)
        self.monitor = StallMonitor(name)
        self.readout = ReadoutModel()
        # frames acquired and lost follow the ledger while frames stream (_pulse.py)
        self.pulse = Pulse(
            name, PULSE_INTERVAL_S, lambda: self._report(self), lambda: self.acquiring
        )
        self.owner.set_heartbeat(self.monitor.feed)
        self._frames: FrameQueue | None = None
        # the automatic memory buffer, decided once: sized again at every run from what is
        # available then, it changed with the page cache and remade (and remapped) the
        # queue between runs for nothing
        self._automatic_mib = 0
        self.step: StepSession | None = None
        self.fly: FlySession | None = None
        self.last: Session | None = None  # the session the status signals describe
        self._staged: Settings | None = None
        self._readings: Readings | None = None
        self.live_stream: LiveStream | None = None
        self._flies = 0  # fly scans started
        self._declared_for = 0  # the fly scan whose stream bluesky has declared
        self.stall_timeout_s = 1.0  # the timeout in force (automatic unless set)

    # ---- what the camera says, read only while it is idle ------------------------------

    def readings(self) -> Readings | None:
        """Temperature and readout time as last read, refreshed if the camera is idle.

        While frames stream nothing is read from the camera (parameter reads have
        stopped real cameras mid-stream): the values are those read just before it
        started, with the time they were read."""
        session = self.last
        cached = self._readings
        latest = session.readings if session is not None else None
        if latest is not None and (cached is None or latest.read_at > cached.read_at):
            cached = latest
        if self.owner.idle and (
            cached is None or time.time() - cached.read_at > READINGS_MAX_AGE_S
        ):
            try:
                cached = self.owner.call(lambda backend: backend.read(), timeout=5.0)
            except Exception as error:  # the camera is busy starting, or gone
                log.debug("%s: no fresh readings: %s", self.name, error)
        self._readings = cached
        return cached

    def apply_environment(self, settings: Settings) -> None:
        """Temperature setpoint and fan speed take effect at once if the camera is idle
        (otherwise when the acquisition ends: they are part of every setup)."""
        if self.owner.idle:
            setup = settings.camera_setup(self._idle_trigger_mode())
            self.owner.call(lambda backend: backend.apply(setup))

    # ---- state ------------------------------------------------------------------------

    @property
    def acquiring(self) -> bool:
        """Frames are due: a fly scan or a live view runs, or a step point waits for its
        frames.  (Between points a step scan's camera idles: settings may change then.)"""
        fly, step, live = self.fly, self.step, self.live_stream
        flying = fly is not None and fly.stream is not None and not fly.stream.done.is_set()
        viewing = live is not None and not live.done.is_set()
        return flying or viewing or (step is not None and step.waiting)

    @property
    def stall_error(self) -> FrameStallError | None:
        session = self.last
        return session.stall if session is not None else None

    def _context(self, settings: Settings, setup: CameraSetup, kind: str) -> SessionContext:
        frames = self._frame_queue(settings)
        return SessionContext(
            name=self.name,
            owner=self.owner,
            monitor=self.monitor,
            frames=frames,
            root=self.write_path,
            run=self._find_run(),
            setup=setup,
            frames_per_point=settings.frames_per_point if kind == "step" else 1,
            buffer_frames=self._buffer_frames(settings),
            attributes={
                "camera": self.capabilities.name,
                "model": self.capabilities.model,
                "serial_number": self.capabilities.serial_number,
                "simulated": self.capabilities.simulated,
                "mode": kind,
                **vars(settings),
            },
            compression=settings.compression,
            stall_timeout=lambda: self.stall_timeout_s,
            period_s=self.readout.period_s(setup),
            readout=self.readout,
            diagnose=lambda session, silent: self._diagnose(session, silent, settings),
            report=self._session_changed,
            announce_failure=self._announce,
            file_stem=self.file_stem,
        )

    def _frame_queue(self, settings: Settings) -> FrameQueue:
        """The memory between camera and disk, kept while the frame size stays."""
        shape = settings.image_shape
        if not (mib := settings.memory_buffer):
            self._automatic_mib = self._automatic_mib or automatic_memory_buffer_mib()
            mib = self._automatic_mib
        slots = max(2, (mib << 20) // settings.frame_bytes)
        frames = self._frames
        if frames is None or frames.shape != shape or frames.capacity != slots:
            if frames is not None:
                frames.close()
            frames = self._frames = FrameQueue(shape, "uint16", slots)
        return frames

    def _buffer_frames(self, settings: Settings) -> int:
        """The camera's circular buffer: as set, or ~0.25 s of frames (16 at least, 256 MiB
        at most)."""
        if settings.buffer_frames:
            return settings.buffer_frames
        period = max(settings.exposure_time, 1e-6)
        most = max(16, (256 << 20) // settings.frame_bytes)
        return int(min(most, max(16, math.ceil(0.25 / period))))

    def _idle_trigger_mode(self) -> str:
        modes = self.capabilities.trigger_modes
        return "Internal Trigger" if "Internal Trigger" in modes else next(iter(modes))

    def _prepare(self, settings: Settings, trigger_mode: str) -> CameraSetup:
        """Check everything together and apply it; nothing starts before this."""
        self.checker.check_all(settings)
        setup = settings.camera_setup(trigger_mode)
        self.owner.call(lambda backend: backend.apply(setup))
        return setup

    def frame_period(self, settings: Settings) -> float:
        """The frame period these settings give when the camera times itself, from the
        readout model (no camera call): the exposure alone until an acquisition at this
        readout speed has told the model its row time."""
        return self.readout.period_s(settings.camera_setup(self._idle_trigger_mode()))

    def readout_time(self, settings: Settings) -> float | None:
        """The readout time these settings give (None: its speed not seen yet)."""
        return self.readout.readout_s(settings.camera_setup(self._idle_trigger_mode()))

    # ---- step scans ----------------------------------------------------------------

    def _no_live_view(self) -> None:
        live = self.live_stream
        if live is not None and not live.done.is_set():
            raise RuntimeError(
                f"{self.name} is busy with a live view; stop it (its stop(), or close the "
                "window) before a scan"
            )

    def stage(self, settings: Settings) -> None:
        """Check and apply the settings; the camera starts at the first trigger (inside
        the run, so the file is named by it)."""
        self._no_live_view()
        with self._lock:
            if self.fly is not None and not self.fly.closed and not self.fly.drained:
                raise RuntimeError(
                    f"{self.name} is busy with a fly scan; complete it before staging"
                )
            self._prepare(settings, self._step_trigger_mode(settings))
            self._staged = settings

    def _step_trigger_mode(self, settings: Settings) -> str:
        modes = self.capabilities.trigger_modes
        if settings.trigger_mode in HARDWARE_TRIGGER_MODES or SOFTWARE_EDGE not in modes:
            return settings.trigger_mode
        return SOFTWARE_EDGE

    def _step_mode(self, settings: Settings) -> Mode:
        if settings.trigger_mode in HARDWARE_TRIGGER_MODES:
            return Mode.FREE
        return Mode.SOFTWARE if SOFTWARE_EDGE in self.capabilities.trigger_modes else Mode.SEQUENCE

    def trigger(self, settings: Settings, status: Progress) -> None:
        self._no_live_view()
        with self._lock:
            staged = self._staged
            if staged is None:
                raise RuntimeError(f"{self.name} must be staged before it is triggered")
            if (settings.image_shape, settings.frames_per_point) != (
                staged.image_shape,
                staged.frames_per_point,
            ):
                status.set_exception(
                    RuntimeError(
                        f"{self.name}: roi, binning and frames_per_point cannot change while "
                        "staged (the open file has a fixed frame layout); unstage, change, "
                        "stage again"
                    )
                )
                return
            step = self.step
            if step is not None and step.closed and step.error is None:
                step = None  # its run ended: a new run gets a new session
            if step is None:
                self._close_fly()
                setup = self._prepare(settings, self._step_trigger_mode(settings))
                self._set_stall_timeout(settings, setup)
                step = self.step = StepSession(
                    self._context(settings, setup, "step"), self._step_mode(settings)
                )
                self.last = step
                self._staged = settings
            elif settings != self._staged:  # settings changed between points: restart
                if step.waiting:
                    status.set_exception(
                        RuntimeError(f"{self.name}: the previous trigger has not finished")
                    )
                    return
                step.restart_camera()
                setup = self._prepare(settings, self._step_trigger_mode(settings))
                step.ctx.setup = setup
                self._set_stall_timeout(settings, setup)
                self._staged = settings
        step.trigger(status)
        self.pulse.start()

    def unstage(self) -> None:
        with self._lock:
            step, self.step = self.step, None
            self._staged = None
        if step is not None:
            step.close("unstaged")

    def read_point(self) -> dict[str, Any]:
        step = self.step or (self.last if isinstance(self.last, StepSession) else None)
        return step.read_result() if step is not None else {}

    # ---- fly scans --------------------------------------------------------------------

    def kickoff(self, settings: Settings, status: Completion) -> None:
        self._no_live_view()
        with self._lock:
            if self.step is not None and not self.step.closed:
                raise RuntimeError(
                    f"{self.name} is busy: staged for a step scan; unstage it before a fly scan"
                )
            fly = self.fly
            replayed = fly is not None and not fly.closed and fly.replay_due
            if replayed and fly is not None and self._same_run(fly):
                # the RunEngine redoes the plan since its last checkpoint after a pause:
                # this fly scan goes on (resume() restarted it), even if its frames are
                # all in already; the session's table decides (join; refuse while it fails)
                fly.kickoff(status)
                return
            if fly is not None and not fly.closed and not fly.drained:
                raise RuntimeError(f"{self.name} is busy with a fly scan; complete() it first")
            self._close_fly()
            software = settings.trigger_mode in (SOFTWARE_EDGE, SOFTWARE_FIRST)
            setup = self._prepare(settings, SOFTWARE_FIRST if software else settings.trigger_mode)
            self._set_stall_timeout(settings, setup)
            self._flies += 1
            fly = FlySession(self._context(settings, setup, "fly"), settings.num_frames, software)
            fly.number = self._flies
            self.fly = self.last = fly
        self._report(self)
        fly.kickoff(status)
        self.pulse.start()
        log.info(
            "%s: fly scan of %s frames into %s", self.name, settings.num_frames or "unbounded",
            fly.path,
        )  # fmt: skip

    def _same_run(self, session: Session) -> bool:
        run, now = session.ctx.run, self._find_run()
        return run is not None and now is not None and run.uid == now.uid

    def complete(self, status: Progress) -> None:
        fly = self.fly
        if fly is None:
            raise RuntimeError(f"{self.name}: complete() without a kickoff()")
        fly.complete(status)  # an ended scan fails it, with the scan's error if it had one

    def describe_collect_mode(self) -> str:
        """How a fly scan is described: bluesky asks before the kickoff only when a plan
        declares the camera's stream (then a StreamResource and one StreamDatum per
        collect, cheap); otherwise at the first collect, and each frame's image then needs
        a Datum in its event."""
        fly = self.fly
        if fly is None or fly.closed:
            self._declared_for = self._flies + 1  # the next fly scan's stream is declared
            return "stream"
        return "stream" if self._stream_documents(fly) else "datum"

    def _stream_documents(self, fly: FlySession) -> bool:
        """Whether ``fly``'s stream was declared (described before its kickoff)."""
        if fly.stream_documents is not None:
            return fly.stream_documents
        return fly.number == self._declared_for

    @property
    def collects_pages(self) -> bool:
        """The current fly scan hands its frames over as events (not a declared stream)."""
        fly = self.fly
        return fly is None or not self._stream_documents(fly)

    def collect_asset_docs(self, up_to: int | None = None) -> Iterator[tuple[str, dict]]:
        """The fly scan's documents for its rows on disk not yet handed over (below
        ``up_to`` only, if given)."""
        fly = self.fly
        if fly is not None:
            run = fly.ctx.run
            final = run is not None and run.ending
            yield from fly.asset_docs(final, stream=self._stream_documents(fly), up_to=up_to)

    def collect_pages(self) -> Iterator[dict]:
        fly = self.fly
        if fly is not None:
            yield from fly.pages(self.name)

    def _close_fly(self) -> None:
        fly = self.fly
        if fly is not None and not fly.closed:
            fly.close("a new acquisition started")

    # ---- looking without recording -----------------------------------------------------

    def _require_idle(self, what: str) -> None:
        busy = self.acquiring or (
            self.live_stream is not None and not self.live_stream.done.is_set()
        )
        fly, step = self.fly, self.step
        busy = busy or (fly is not None and not fly.closed and not fly.drained)
        busy = busy or (step is not None and not step.closed)
        if busy:
            raise RuntimeError(f"{self.name} is busy (a scan or a live view); {what} needs it idle")

    def snap(self, settings: Settings, timeout: float | None = None) -> np.ndarray:
        """One fresh frame with the current settings: no run, no file."""
        with self._lock:
            self._require_idle("snap()")
            self.checker.check_all(settings)
            setup = settings.camera_setup(self._idle_trigger_mode())
            period = self.readout.period_s(setup)
            deadline_s = timeout if timeout is not None else max(5.0, 10 * period)
            frame = np.empty(setup.image_shape, np.uint16)

            def take(backend: CameraBackend) -> None:
                backend.apply(setup)
                backend.start(StreamSpec(Mode.SEQUENCE, 1, 1))
                try:
                    end = time.monotonic() + deadline_s
                    while backend.poll(min(0.1, deadline_s), frame) is None:
                        if time.monotonic() > end:
                            raise FrameStallError(
                                f"{self.name}: no frame within {deadline_s:g} s of a snap "
                                f"(exposure {settings.exposure_time:g} s)"
                            )
                finally:
                    backend.stop()

            self.owner.call(take, timeout=deadline_s + 30)
        return frame

    def live(self, settings: Settings, on_frame=None) -> LiveStream:
        """Stream for a viewer, writing nothing, until ``stop()``."""
        with self._lock:
            self._require_idle("a live view")
            self._prepare(settings, self._idle_trigger_mode())
            frames = FrameQueue(settings.image_shape, "uint16", 4)  # only the newest counts
            live = self.live_stream = LiveStream(self.name, frames, on_frame)
            spec = StreamSpec(Mode.FREE, 0, self._buffer_frames(settings))
            live.stream = self.owner.stream(Stream(spec, live, frames, retrigger_s=1.0))
        return live

    # ---- stopping ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the camera now; the files keep what was acquired."""
        if self.live_stream is not None:
            self.live_stream.stop()
        for session in (self.fly, self.step):
            if session is not None and not session.closed:
                session.interrupt(AcquisitionInterrupted(f"{self.name} was stopped"))

    def pause(self) -> None:
        for session in (self.fly, self.step):
            if session is not None and not session.closed:
                session.pause()

    def resume(self) -> None:
        """A paused fly scan goes on; a step scan's next trigger starts the camera."""
        for session in (self.fly, self.step):
            if session is not None and not session.closed:
                session.resume()
        if self.acquiring:
            self.pulse.start()

    def close(self) -> None:
        if self.live_stream is not None:
            self.live_stream.stop()
        for session in (self.fly, self.step):
            if session is not None:
                session.close("the device was closed")
        self.step = self.fly = self.last = None
        self.monitor.close()
        self.pulse.close()
        self.owner.close()
        if self._frames is not None:
            self._frames.close()
            self._frames = None  # the memory goes with the last reference

    # ---- stalls ------------------------------------------------------------------------

    def _set_stall_timeout(self, settings: Settings, setup: CameraSetup) -> None:
        self.stall_timeout_s = settings.stall_timeout or self.auto_stall_timeout(settings, setup)

    def auto_stall_timeout(self, settings: Settings, setup: CameraSetup | None = None) -> float:
        """Several frame periods, never less than a second; longer for hardware triggers."""
        setup = setup or settings.camera_setup(settings.trigger_mode)
        timeout = max(1.0, 2.0 * self.readout.period_s(setup) + 0.5)
        if settings.trigger_mode in HARDWARE_TRIGGER_MODES:
            timeout = max(timeout, 10.0)
        return round(timeout, 3)

    def set_stall_timeout(self, timeout: float) -> None:
        self.stall_timeout_s = timeout
        self.monitor.set_timeout(timeout)

    def _session_changed(self, session: Session) -> None:
        self._report(self)

    def _diagnose(self, session: Session, silent_for: float, s: Settings) -> str:
        return describe_stall(
            snapshot_of(
                session,
                s,
                self.capabilities,
                self.readout,
                silent_for_s=silent_for,
                timeout_s=self.stall_timeout_s,
                hardware_triggered=s.trigger_mode in HARDWARE_TRIGGER_MODES,
            )
        )
