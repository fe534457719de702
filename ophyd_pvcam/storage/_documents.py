"""The Resource and Datum documents that point a run at the rows of a frame file."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from event_model import ComposeResource, compose_stream_resource


class AssetDocs:
    """An ``AD_HDF5`` Resource for one file and one Datum per point of
    ``frames_per_point`` rows, queued until the RunEngine takes them."""

    def __init__(self, root: Path, resource_path: str, frames_per_point: int):
        bundle = ComposeResource(start=None)(
            spec="AD_HDF5",
            root=str(root),
            resource_path=resource_path,
            resource_kwargs={"frame_per_point": frames_per_point},
        )
        self._resource, self._compose_datum = bundle.resource_doc, bundle.compose_datum
        self._lock = threading.Lock()
        self._queued: list[tuple[str, dict]] = []
        self.points = 0  # datums made
        self.handed_over = 0  # datums the RunEngine has taken: the run references these

    def add_point(self) -> str:
        """The Datum of the next point; returns its id."""
        with self._lock:
            if self.points == 0:
                self._queued.append(("resource", self._resource))
            datum = self._compose_datum(datum_kwargs={"point_number": self.points}, validate=False)
            self.points += 1
            self._queued.append(("datum", datum))
            return datum["datum_id"]

    def datum_id(self, point: int) -> str:
        """The id of the Datum :meth:`add_point` made (or will make) for ``point``."""
        return f"{self._resource['uid']}/{point}"

    def take(self) -> Iterator[tuple[str, dict]]:
        """Yield (and forget) the documents not yet handed over."""
        with self._lock:
            docs, self._queued = self._queued, []
        for name, doc in docs:
            yield name, doc
            if name == "datum":
                self.handed_over += 1


class StreamAssets:
    """StreamResources for one fly-scan file and a StreamDatum per key per batch of rows:
    a fly scan hands over any number of frames with a few documents, not one per frame.

    Every key is read from the file: the images from ``/entry/data/data`` (the
    StreamResource has the shape TiledWriter gives an ``AD_HDF5`` Resource, so the catalog
    holds the same thing either way), the camera's frame numbers and times and the frames
    lost before each from the per-frame records beside them."""

    def __init__(self, path: Path, datasets: dict[str, str]):
        uri = f"file://localhost{Path(path).absolute().as_posix()}"
        self._bundles = {
            key: compose_stream_resource(
                mimetype="application/x-hdf5",
                uri=uri,
                data_key=key,
                parameters={"dataset": dataset}
                | ({"spec": "AD_HDF5", "multiplier": 1} if dataset == "/entry/data/data" else {}),
            )
            for key, dataset in datasets.items()
        }
        self.rows = 0  # rows handed over

    def hand_over(self, rows: int) -> Iterator[tuple[str, dict]]:
        """Documents for the rows up to ``rows`` not handed over yet."""
        if rows <= self.rows:
            return
        if self.rows == 0:
            for bundle in self._bundles.values():
                yield "stream_resource", bundle.stream_resource_doc
        for bundle in self._bundles.values():
            indices = {"start": self.rows, "stop": rows}
            yield "stream_datum", bundle.compose_stream_datum(indices=indices, validate=False)
        self.rows = rows
