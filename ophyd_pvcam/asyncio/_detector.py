"""The PVCAM camera as an ophyd-async ``StandardDetector``, over the acquisition core.

Configuration is soft signals: they hold values and never touch the camera, whatever
the camera is doing; the whole set is checked (:class:`~ophyd_pvcam.acquisition.SettingsChecker`)
at ``prepare`` and handed to the core with each start, as the ophyd face does.  The
trigger, acquire and data logic are this package's; ``trigger``, ``kickoff`` and
``complete`` are overridden so that what a plan waits on is the core's own status: a
stall, a readout failure, a disconnect or a full disk fails it with the core's
diagnosis, not with a timeout on a counter (docs/decisions/0011).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from bluesky.protocols import StreamAsset
from ophyd_async.core import (
    Array1D,
    AsyncStatus,
    PathProvider,
    SignalRW,
    StandardDetector,
    TriggerInfo,
    WatchableAsyncStatus,
    WatcherUpdate,
    soft_signal_r_and_setter,
    soft_signal_rw,
)

from ophyd_pvcam.acquisition import CameraController, EngineRun, Settings
from ophyd_pvcam.errors import AcquisitionInterrupted, CameraAcquisitionError
from ophyd_pvcam.hardware import CameraBackend

from ._acquire import PvcamAcquireLogic, find_run
from ._data import PvcamDataLogic, PvcamDataProvider
from ._paths import FramesPathProvider
from ._plan import Plan
from ._status import LoopProgress, _Silent
from ._trigger import PvcamTriggerLogic

log = logging.getLogger(__name__)

KICKOFF_TIMEOUT_S = 60.0  # the camera starts (a setup applied, a file opened) well within
SILENCE_MARGIN_S = 45.0  # beyond the stall timeout: the core's stop and flush (30 s) and more

# detectors whose camera is open, closed at interpreter exit (see _close_all)
_open_detectors: weakref.WeakSet = weakref.WeakSet()


class PvcamDetector(StandardDetector):
    """A PVCAM camera (the Prime BSI first) for ophyd-async plans.

    ``sim=True`` uses the simulated camera, ``False`` the vendor PVCAM, ``None`` the
    simulator only if ``OPHYD_PVCAM_SIM=1``; ``camera_name`` picks one of several
    cameras.  ``path_provider`` decides, at each ``prepare``, the folder frame files
    go under (default: the same folder as the ophyd face, ``<data root>/frames``) and
    their name: ``<directory_path>/YYYY/MM/DD/<run uid>/<filename>_<step|fly>.h5``.
    ``backend``: another camera backend's factory (the fake one in tests).  The
    camera is opened here: a camera another device holds is refused at once, with one
    line naming the holder.
    """

    def __init__(
        self,
        name: str = "",
        *,
        sim: bool | None = None,
        camera_name: str | None = None,
        path_provider: PathProvider | None = None,
        backend: Callable[[], CameraBackend] | None = None,
    ):
        self._path_provider = path_provider or FramesPathProvider()
        label = name or "pvcam"
        if backend is None:
            from ophyd_pvcam.hardware import PyvcamBackend

            def pyvcam_backend() -> CameraBackend:
                return PyvcamBackend(f"PvcamDetector {label!r}", camera_name, sim)

            backend = pyvcam_backend
        self._run: EngineRun | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._provider: PvcamDataProvider | None = None
        # what prepare() was given since the last stage() (None: nothing)
        self._prepared: TriggerInfo | None = None
        # a failure no status carried, and the uid of the run it happened in
        self._announced: tuple[BaseException, str | None] | None = None
        self._controller = CameraController(
            label,
            backend,
            Path(self._path_provider().directory_path),
            report=self._reported,
            find_run=lambda: self._run,
            announce=self._announce,
        )
        _open_detectors.add(self)
        caps = self._controller.capabilities
        port = caps.ports[0]
        low, high = caps.temperature_setpoint_range
        # configuration: values only, read by the core when an acquisition starts
        self.exposure_time = soft_signal_rw(float, 0.01, units="s")
        self.roi = soft_signal_rw(
            Array1D[np.int64],
            np.array([0, 0, caps.sensor_width, caps.sensor_height], dtype=np.int64),
        )
        self.binning = soft_signal_rw(int, 1)
        self.readout_port = soft_signal_rw(str, port.name)
        self.speed_index = soft_signal_rw(int, port.speeds[0].index)
        self.gain_index = soft_signal_rw(int, port.speeds[0].gains[0].index)
        self.clear_mode = soft_signal_rw(str, next(iter(caps.clear_modes), ""))
        self.expose_out_mode = soft_signal_rw(str, next(iter(caps.expose_out_modes), ""))
        self.temperature_setpoint = soft_signal_rw(float, min(max(-20.0, low), high), units="degC")
        self.fan_speed = soft_signal_rw(str, next(iter(caps.fan_speeds), ""))
        self.stall_timeout = soft_signal_rw(float, 0.0, units="s")
        self.buffer_frames = soft_signal_rw(int, 0)
        self.memory_buffer = soft_signal_rw(int, 0, units="MiB")
        self.compression = soft_signal_rw(str, "bslz4")
        # what the core reports
        self.frames_acquired, self._set_acquired = soft_signal_r_and_setter(int, 0)
        self.dropped_frames, self._set_dropped = soft_signal_r_and_setter(int, 0)
        self.stalled, self._set_stalled = soft_signal_r_and_setter(bool, False)
        self._plan = Plan()
        self.add_detector_logics(
            PvcamTriggerLogic(
                self._controller, self._plan, self._settings_signals(), self._settings_of
            ),
            PvcamAcquireLogic(self._controller, self._set_run),
            PvcamDataLogic(self._controller, self._plan, self.settings, self._provided),
        )
        super().__init__(name=name)

    # ---- settings --------------------------------------------------------------------

    def _settings_signals(self) -> dict[str, SignalRW]:
        return {
            "exposure_time": self.exposure_time, "roi": self.roi, "binning": self.binning,
            "readout_port": self.readout_port, "speed_index": self.speed_index,
            "gain_index": self.gain_index, "clear_mode": self.clear_mode,
            "expose_out_mode": self.expose_out_mode,
            "temperature_setpoint": self.temperature_setpoint, "fan_speed": self.fan_speed,
            "stall_timeout": self.stall_timeout, "buffer_frames": self.buffer_frames,
            "memory_buffer": self.memory_buffer, "compression": self.compression,
        }  # fmt: skip

    def _settings_of(self, values: Mapping[str, Any]) -> Settings:
        """The core's settings: these signal values and what ``prepare`` decided."""
        plan = self._plan
        exposure = plan.livetime or values["exposure_time"]
        return Settings(
            exposure_time=float(exposure),
            roi=tuple(int(v) for v in values["roi"]),  # type: ignore[arg-type]
            binning=int(values["binning"]),
            readout_port=values["readout_port"],
            speed_index=int(values["speed_index"]),
            gain_index=int(values["gain_index"]),
            clear_mode=values["clear_mode"],
            trigger_mode=plan.trigger_mode,
            expose_out_mode=values["expose_out_mode"],
            frames_per_point=plan.frames_per_event,
            num_frames=plan.frames,
            buffer_frames=int(values["buffer_frames"]),
            temperature_setpoint=float(values["temperature_setpoint"]),
            fan_speed=values["fan_speed"],
            stall_timeout=plan.stall_timeout or float(values["stall_timeout"]),
            memory_buffer=int(values["memory_buffer"]),
            compression=values["compression"],
        )

    async def settings(self) -> Settings:
        """The settings an acquisition started now would use."""
        signals = self._settings_signals()
        values = await asyncio.gather(*(signal.get_value() for signal in signals.values()))
        return self._settings_of(dict(zip(signals, values, strict=True)))

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        """Named by ``init_devices`` after it is made: the core names keys and files by it."""
        super().set_name(name, child_name_separator=child_name_separator)
        if name:
            self._controller.name = name

    @property
    def controller(self) -> CameraController:
        """The acquisition core this face drives (the ophyd face drives the same)."""
        return self._controller

    # ---- stage, prepare, trigger, kickoff, complete -------------------------------------

    @AsyncStatus.wrap
    async def stage(self) -> None:
        """ophyd-async's stage (whatever a previous plan left open ends); the next
        trigger without a prepare prepares one internally triggered frame."""
        self._prepared = None
        await StandardDetector.stage(self)

    @AsyncStatus.wrap
    async def prepare(self, value: TriggerInfo) -> None:
        """Check everything against the camera (one line naming the value and what is
        allowed) before anything starts; then ophyd-async's prepare, through the logic."""
        self._loop = asyncio.get_running_loop()
        plan = Plan.of(value)
        for field in dataclasses.fields(Plan):
            setattr(self._plan, field.name, getattr(plan, field.name))
        settings = await self.settings()
        self._controller.checker.check_all(settings)
        where = self._path_provider(self.name)
        self._controller.write_path = Path(where.directory_path)
        self._controller.file_stem = _file_stem(self.name, where.filename)
        await StandardDetector.prepare(self, value)
        self._prepared = value

    @WatchableAsyncStatus.wrap
    async def trigger(self) -> AsyncIterator[WatcherUpdate[int]]:
        """One event of fresh frames (``exposures_per_collection`` x
        ``collections_per_event``), done once they are on disk."""
        self._raise_announced()
        prepared = self._prepared
        if prepared is None:
            await self.prepare(TriggerInfo())
        elif prepared.number_of_events != 1:
            raise ValueError(
                f"{self.name}: trigger() takes one event, but the detector was prepared "
                f"with number_of_events={prepared.number_of_events}; prepare it "
                "with number_of_events=1 for a step scan, or kickoff() for a fly scan"
            )
        settings = await self.settings()
        acquire = self._acquire
        progress = await acquire.start_point(settings)
        async for update in self._follow(progress, self._plan.frames_per_event, settings):
            yield update
        self._refresh()

    @AsyncStatus.wrap
    async def kickoff(self) -> None:
        """Start a fly scan of ``number_of_events`` events (0: until complete()); done
        once the camera runs (for edge triggers: waits for them)."""
        self._raise_announced()
        if self._prepared is None:
            raise RuntimeError(f"{self.name}: kickoff() needs prepare(TriggerInfo(...)) first")
        plan = self._plan
        if plan.frames_per_event != 1:
            raise ValueError(
                f"{self.name}: a fly scan takes one frame per event (exposures_per_collection"
                f"=1, collections_per_event=1); got {plan.exposures_per_collection} x "
                f"{plan.collections_per_event}: use a step scan (trigger) for several"
            )
        progress = await self._acquire.kickoff(await self.settings())
        try:
            await progress.wait(KICKOFF_TIMEOUT_S)
        except _Silent as silent:
            raise await self._silent(silent) from None

    @WatchableAsyncStatus.wrap
    async def complete(self) -> AsyncIterator[WatcherUpdate[int]]:
        """Done once every frame of the fly scan is on disk (for number_of_events=0, the
        camera is stopped first)."""
        self._raise_announced()
        settings = await self.settings()
        progress = self._acquire.complete()
        async for update in self._follow(progress, self._plan.frames, settings):
            yield update
        self._refresh()

    async def _follow(
        self, progress: LoopProgress, target: int, settings: Settings
    ) -> AsyncIterator[WatcherUpdate[int]]:
        """Progress for bluesky's progress bar until the core finishes; its error (the
        diagnosis) is raised as the core wrote it.  A status the RunEngine's teardown
        interrupted (an abort, a stop or a halt ended its run) ends quietly: nothing
        waits on it, and failing it would make ``RE.abort()`` raise."""
        start = time.monotonic()
        silence = self._controller.stall_timeout_s + SILENCE_MARGIN_S
        run = self._run
        try:
            async for done in progress.updates(silence):
                yield WatcherUpdate(
                    name=self.name, current=done, initial=0, target=target or max(done, 1),
                    unit="frames", precision=0, time_elapsed=time.monotonic() - start,
                )  # fmt: skip
        except _Silent as silent:
            raise await self._silent(silent) from None
        except AcquisitionInterrupted:
            if run is None or not run.ending:
                raise
            log.info("%s: the run was torn down while it acquired", self.name)

    async def _silent(self, silent: _Silent) -> CameraAcquisitionError:
        """The core reported nothing for far longer than its stall timeout (its writer
        reports ten times a second, also while no frame comes or while paused, so its
        threads have hung): stop the camera (the files keep what arrived; the wait for
        it runs in a worker thread, off the event loop) and say so."""
        await asyncio.to_thread(self._controller.stop)
        return CameraAcquisitionError(
            f"{self.name}: no word from the camera's acquisition for {silent.seconds:g} s "
            f"(stall timeout {self._controller.stall_timeout_s:g} s): the camera was stopped; "
            "frames up to then are saved. Check the camera's connection and its trigger "
            "source, then retry."
        )

    @property
    def _acquire(self) -> PvcamAcquireLogic:
        logic = self._acquire_logic
        assert isinstance(logic, PvcamAcquireLogic)
        return logic

    async def collect_asset_docs(self, index: int | None = None) -> AsyncIterator[StreamAsset]:
        """StreamResource/StreamDatum for what is on disk and not yet handed over.
        ``index``: bluesky passes the lowest ``get_index()`` of several detectors it
        collects together; then this one hands over its events below ``index`` only,
        the rest at a later collect, so the detectors' rows stay aligned event for
        event.  Alone, every row on disk (``get_index()`` lags the disk)."""
        provider = self._provider
        if self._prepared is None or provider is None:
            raise RuntimeError(f"{self.name}: collect() needs prepare(TriggerInfo(...)) first")
        for doc in provider.asset_docs(index):
            yield doc  # type: ignore[misc]

    # ---- what the core reports ----------------------------------------------------------

    def _set_run(self, run: EngineRun | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._run = run

    def _provided(self, provider: PvcamDataProvider) -> None:
        self._provider = provider

    def _reported(self, controller: CameraController) -> None:
        """The core's report (any thread): the status signals follow on the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._refresh)

    def _refresh(self) -> None:
        session = self._controller.last
        if session is None:
            return
        self._set_acquired(len(session.ledger.numbers))
        self._set_dropped(session.ledger.lost.total)
        self._set_stalled(session.stall is not None)
        provider, plan = self._provider, self._plan
        if provider is not None:
            step = self._controller.step
            if step is not None and session is step:
                provider.set_collections_written(step.points_done * plan.collections_per_event)
            else:
                rows = session.rows_on_disk // plan.frames_per_event
                provider.set_collections_written(rows * plan.collections_per_event)

    def _announce(self, error: BaseException) -> None:
        """A failure no pending status of ours carries (the camera stalled while the plan
        waited on something else): it fails the plan's next call to this detector in
        the same run.  A stop someone asked for (``stop()``, an abort) is no news to
        deliver: the session already ended as asked."""
        if isinstance(error, AcquisitionInterrupted):
            log.info("%s", error)
            return
        run = self._run
        self._announced = self._announced or (error, run.uid if run is not None else None)
        log.error("%s", error)

    def _raise_announced(self) -> None:
        """Raise the failure announced in this run; one from a run that has ended was
        logged when it happened and is not thrown into a later plan."""
        announced, self._announced = self._announced, None
        if announced is None:
            return
        error, uid = announced
        run = find_run()
        if (run.uid if run is not None else None) == uid:
            raise error
        log.info("%s: not raised in a later run: %s", self.name, error)

    # ---- the rest ------------------------------------------------------------------------

    def loss_summary(self) -> str | None:
        """The latest acquisition's one line if it lost frames, else None."""
        session = self._controller.last
        return session.summary_line() if session is not None and session.had_losses else None

    @property
    def last_file(self) -> Path | None:
        session = self._controller.last
        return None if session is None else session.path

    async def stop(self, success: bool = False) -> None:
        """Stop whatever the camera does now; files keep what was acquired.  Returns
        once the camera has stopped.  The RunEngine calls it as ``stop(success=...)``
        on every device a plan kicked off, when the plan ends or is stopped; the
        wait for the camera runs in a worker thread, off the event loop."""
        await asyncio.to_thread(self._controller.stop)

    async def pause(self) -> None:
        """The RunEngine pauses: the camera stops and the frames it gave reach the disk
        (docs/decisions/0009, 0011); returns once they have, waiting in a worker
        thread, off the event loop."""
        await asyncio.to_thread(self._controller.pause)

    async def resume(self) -> None:
        """The RunEngine resumes: a paused fly scan goes on for its missing frames (the
        camera restarted from a worker thread, off the event loop)."""
        await asyncio.to_thread(self._controller.resume)

    def close(self) -> None:
        """Stop any acquisition, close its files and release the camera."""
        self._controller.close()
        _open_detectors.discard(self)


def _file_stem(name: str, filename: str) -> str:
    """The PathProvider's file name, checked to be one (``<it>_<kind>.h5`` is made
    in the run's folder beneath its directory, docs/decisions/0011)."""
    stem = filename.removesuffix(".h5")
    if not stem or stem in (".", "..") or Path(stem).name != stem or "\\" in stem:
        raise ValueError(
            f"{name}: the PathProvider gave filename={filename!r}; a file name without "
            "folders is needed (the folder is its directory_path)"
        )
    return stem


@atexit.register
def _close_all() -> None:
    """A session that ends without ``close()`` (a script's end, an IPython exit) still
    stops the camera and closes its files, so they are readable and the next process
    can open the camera; as the ophyd face does."""
    for detector in list(_open_detectors):
        try:
            detector.close()
        except Exception:  # interpreter shutdown: report, never hang
            log.exception("closing %s at exit failed", detector.name)
