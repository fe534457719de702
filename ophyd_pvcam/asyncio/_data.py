"""Data logic: StreamResource and StreamDatum documents over the core's frame files.

Step and fly scans both describe the camera with the same keys, every one read from
the file: the images and, per frame, the camera's frame number, its time and the
frames lost just before it (so a drop shows in the run itself, where it happened).
An event holds ``frames_per_event`` frames (every exposure of its collections).

- A fly scan's documents are the core's own (``CameraController.collect_asset_docs``,
  the same the ophyd face emits for a declared stream): they hand over every row on
  disk -- up to bluesky's index, when it passes one (several detectors collected
  together) -- and the core counts them, so its file keeps exactly the rows handed
  over.
- A step scan's come from here, one StreamDatum per point, over the core's step file,
  for the points the core has finished; the core keeps in that file the points whose
  StreamDatums the RunEngine really emitted (``EngineRun``), so a pause between read
  and save rewinds both.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
from bluesky.protocols import StreamAsset
from event_model import DataKey
from ophyd_async.core import (
    DetectorDataLogic,
    SignalR,
    StreamableDataProvider,
    soft_signal_r_and_setter,
)

from ophyd_pvcam.acquisition import CameraController, EngineRun, Settings
from ophyd_pvcam.storage import FileStreams, stream_datasets

from ._plan import Plan

log = logging.getLogger(__name__)


class PvcamDataProvider(StreamableDataProvider):
    """The keys of one prepared acquisition and the documents that fill them."""

    def __init__(
        self,
        name: str,
        controller: CameraController,
        plan: Plan,
        settings: Callable[[], Awaitable[Settings]],
        source: str,
    ):
        self._name = name
        self._controller = controller
        self._plan = plan
        self._settings = settings
        self._source = source
        self.collections_written_signal: SignalR[int]
        self.collections_written_signal, self._set_written = soft_signal_r_and_setter(int)
        self._step_streams: tuple[object, FileStreams] | None = None  # (session, its streams)
        self._handed = 0  # points of the step file handed over
        self._resources_out = False  # its StreamResources went out

    def set_collections_written(self, collections: int) -> None:
        """Called on the event loop when the core reports progress."""
        self._set_written(collections)

    async def make_datakeys(self, collections_per_event: int) -> dict[str, DataKey]:
        settings = await self._settings()
        rows, columns = settings.image_shape
        per_event = self._plan.frames_per_event
        scalar = [] if per_event == 1 else [per_event]

        def key(dtype, numpy_dtype, shape, **extra) -> DataKey:
            return DataKey(source=self._source, dtype=dtype,
                           dtype_numpy=np.dtype(numpy_dtype).str, shape=shape,
                           external="STREAM:", **extra)  # fmt: skip

        number = "array" if scalar else "integer"
        name = self._name
        return {
            f"{name}_image": key("array", np.uint16, [per_event, rows, columns]),
            f"{name}_frame_number": key(number, np.int64, scalar),
            f"{name}_frame_time": key("array" if scalar else "number", np.float64, scalar,
                                      units="s", doc="end of the frame: camera clock as wall time"),
            f"{name}_lost_before": key(number, np.int64, scalar,
                                       doc="frames lost just before this one"),
        }  # fmt: skip

    async def make_stream_docs(
        self, collections_written: int, collections_per_event: int
    ) -> AsyncIterator[StreamAsset]:
        """Everything on disk not yet handed over (``collections_written`` is not used:
        ophyd-async passes what the signal last showed, which lags the disk; see
        :meth:`asset_docs` for a bound bluesky gives)."""
        for name, doc in self.asset_docs():
            yield name, doc  # type: ignore[misc]

    def asset_docs(self, up_to_events: int | None = None) -> list[tuple[str, dict]]:
        """The documents for what is on disk and not yet handed over: a step scan's
        finished points, a fly scan's rows (below ``up_to_events`` only, if given:
        bluesky's index when it collects several detectors together).

        A fly scan's collect waits for the writer's flush (milliseconds; on a failing
        disk up to 30 s) on the event loop, on purpose: the core counts the rows
        handed over as it makes the documents, so a collect in a worker thread that a
        pause or an abort cancelled would lose documents the file then keeps."""
        controller = self._controller
        fly, step = controller.fly, controller.step
        if step is not None and controller.last is step:
            return self._step_docs(step)
        if fly is not None and controller.last is fly:
            # the core's own (it decided "stream" at prepare)
            up_to = None if up_to_events is None else up_to_events * self._plan.frames_per_event
            return list(controller.collect_asset_docs(up_to))
        return []

    def _step_docs(self, step) -> list[tuple[str, dict]]:
        """The StreamResources of the step file (again, if a pause dropped them) and a
        StreamDatum for the points finished and not yet handed over."""
        run = step.ctx.run
        streams = self._step_streams
        if streams is None or streams[0] is not step:
            files = FileStreams(
                step.path, stream_datasets(self._name), rows_per_index=self._plan.frames_per_event
            )
            streams = self._step_streams = (step, files)
            self._handed = 0
            self._resources_out = False
            if isinstance(run, EngineRun):
                run.image_resource = files.resources[f"{self._name}_image"]["uid"]
        files = streams[1]
        if isinstance(run, EngineRun):
            # everything handed over before was either emitted by the RunEngine or
            # dropped (a pause between read and save): the core retakes dropped points
            # in the same rows, so they are handed over again, the resources too
            emitted = run.datums_emitted("")
            self._resources_out = emitted is not None
            self._handed = min(self._handed, emitted or 0)
        docs: list[tuple[str, dict]] = []
        done = step.points_done
        if done > self._handed:
            if not self._resources_out:
                docs += [("stream_resource", doc) for doc in files.resources.values()]
                self._resources_out = True
            docs += [("stream_datum", files.datum(key, self._handed, done))
                     for key in files.resources]  # fmt: skip
            self._handed = done
        return docs


class PvcamDataLogic(DetectorDataLogic):
    """Makes the data provider of each prepared acquisition."""

    def __init__(
        self,
        controller: CameraController,
        plan: Plan,
        settings: Callable[[], Awaitable[Settings]],
        on_provider: Callable[[PvcamDataProvider], None],
    ):
        self._controller = controller
        self._plan = plan
        self._settings = settings
        self._on_provider = on_provider

    async def prepare_unbounded(self, datakey_name: str) -> StreamableDataProvider:
        source = f"PVCAM:{self._controller.capabilities.name}"
        provider = PvcamDataProvider(
            datakey_name, self._controller, self._plan, self._settings, source
        )
        self._on_provider(provider)
        return provider

    def get_hinted_fields(self, datakey_name: str) -> list[str]:
        return []  # images are not plotted
