"""The Bluesky documents that point a run at the rows of a frame file, shaped in one place.

Three writers make them: the device as it acquires (:class:`AssetDocs` for a step
scan's points, :class:`StreamAssets` for a fly scan's rows), the catalog's export,
which rebuilds a run's classic documents for databroker, and the catalog's recovery,
which writes what a run left open by a dead process lacks.  Whoever wrote them, a
reader (area-detector-handlers, tiled, databroker) must find the same thing, so their
shape is decided here and nowhere else (``docs/decisions/0004-...`` and ``0007-...``):

- a Resource of spec ``AD_HDF5`` per file, ``frame_per_point`` rows per point, and a
  ``slice`` of the rows used when the dataset holds more (it grew in blocks and was
  never trimmed, as a dead writer leaves it);
- a Datum per point, ``point_number`` in its kwargs and ``<resource uid>/<point>`` as
  its id, so an event can name a point's datum before the datum is handed over;
- a StreamResource per key of a declared fly stream, each read from its own dataset
  (the images with the parameters TiledWriter gives an ``AD_HDF5`` Resource), and a
  StreamDatum per key per range of rows;
- an Event per point, whose images are those datums, not filled.

The data keys a descriptor declares for a frame file live beside them, in
``_descriptors``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from event_model import (
    ComposeStreamResourceBundle,
    DocumentNames,
    StreamRange,
    compose_stream_resource,
    schema_validators,
)

from ._layout import DATA_PATH, SPEC

Document = dict[str, Any]  # what the RunEngine and the catalog writers take

STREAM_MIMETYPE = "application/x-hdf5"
IMAGE_PARAMETERS = {"spec": SPEC, "multiplier": 1}  # TiledWriter's form of an AD_HDF5 Resource


def rows_slice(rows: int) -> str:
    """How a document tells a reader to take only the first ``rows`` rows of a dataset."""
    return f"0:{rows}"


def resource_doc(
    root: str | Path,
    resource_path: str,
    frames_per_point: int,
    *,
    uid: str | None = None,
    run_start: str | None = None,
    only_rows: int | None = None,
    spec: str = SPEC,
) -> Document:
    """The Resource of one frame file: ``root`` / ``resource_path``, ``frames_per_point``
    rows per Datum.  ``only_rows``: the rows the run uses, when the dataset holds more.
    ``spec``: export may name another handler of the same layout (``AD_HDF5_SWMR``)."""
    kwargs: dict[str, Any] = {"frame_per_point": frames_per_point}
    if only_rows is not None:
        kwargs["slice"] = rows_slice(only_rows)
    doc: Document = {"uid": uid or str(uuid.uuid4())}
    if run_start is not None:
        doc["run_start"] = run_start
    doc |= {
        "spec": spec,
        "root": str(root),
        "resource_path": resource_path,
        "resource_kwargs": kwargs,
        "path_semantics": "posix",
    }
    return doc


def datum_id(resource_uid: str, point: int) -> str:
    """The id of the Datum of ``point``: known before the Datum itself is made."""
    return f"{resource_uid}/{point}"


def datum_doc(resource_uid: str, point: int) -> Document:
    """The Datum of ``point``: its ``frame_per_point`` rows of the resource's file."""
    return {
        "resource": resource_uid,
        "datum_id": datum_id(resource_uid, point),
        "datum_kwargs": {"point_number": point},
    }


def event_doc(
    descriptor: str,
    seq_num: int,
    time: float,
    data: Mapping[str, Any],
    timestamps: Mapping[str, float],
    filled: Mapping[str, bool],
    *,
    uid: str | None = None,
) -> Document:
    """One Event; ``filled`` names the keys whose values are datum ids (False: not read)."""
    return {
        "uid": uid or str(uuid.uuid4()),
        "descriptor": descriptor,
        "seq_num": seq_num,
        "time": time,
        "data": dict(data),
        "timestamps": dict(timestamps),
        "filled": dict(filled),
    }


class FileStreams:
    """A StreamResource per key of one frame file, each read from its dataset, and
    StreamDatums over ranges of its rows.

    ``datasets`` maps each key to its dataset (:func:`~ophyd_pvcam.storage.stream_datasets`);
    ``only_rows``: the rows the run uses, when the image dataset holds more;
    ``rows_per_index``: rows one index of a StreamDatum covers (an event of several
    frames; its data keys' shapes start with it)."""

    def __init__(
        self,
        path: Path,
        datasets: Mapping[str, str],
        *,
        run_start: str | None = None,
        only_rows: int | None = None,
        rows_per_index: int = 1,
    ):
        uri = f"file://localhost{Path(path).absolute().as_posix()}"
        self._bundles: dict[str, ComposeStreamResourceBundle] = {}
        self.resources: dict[str, Document] = {}
        for key, dataset in datasets.items():
            parameters: dict[str, Any] = {"dataset": dataset}
            if dataset == DATA_PATH:
                parameters |= IMAGE_PARAMETERS | {"multiplier": rows_per_index}
                if only_rows is not None:
                    parameters["slice"] = rows_slice(only_rows)
            elif rows_per_index > 1:
                parameters["multiplier"] = rows_per_index
            bundle = compose_stream_resource(
                mimetype=STREAM_MIMETYPE, uri=uri, data_key=key, parameters=parameters
            )
            self._bundles[key] = bundle
            self.resources[key] = dict(bundle.stream_resource_doc)
            if run_start is not None:
                self.resources[key]["run_start"] = run_start

    def datum(
        self,
        key: str,
        start: int,
        stop: int,
        *,
        descriptor: str | None = None,
        first_seq_num: int | None = None,
    ) -> Document:
        """The StreamDatum of ``key`` for rows ``start`` to ``stop``.  The RunEngine fills in
        the descriptor and sequence numbers of the ones it is handed; a catalog writer
        that bypasses it gives them (``first_seq_num``: that of row ``start``)."""
        doc: Document = dict(
            self._bundles[key].compose_stream_datum(
                indices=StreamRange(start=start, stop=stop), validate=False
            )
        )
        if descriptor is not None:
            doc["descriptor"] = descriptor
        if first_seq_num is not None:
            doc["seq_nums"] = {"start": first_seq_num, "stop": first_seq_num + stop - start}
        return doc


class AssetDocs:
    """An ``AD_HDF5`` Resource for one file and one Datum per point of
    ``frames_per_point`` rows, queued until the RunEngine takes them."""

    def __init__(self, root: Path, resource_path: str, frames_per_point: int):
        self._resource = resource_doc(root, resource_path, frames_per_point)
        # checked once here, as event-model's composer would: a malformed one fails the
        # stage, not the catalog's writer later
        schema_validators[DocumentNames.resource].validate(self._resource)
        self._lock = threading.Lock()
        self._queued: list[tuple[str, Document]] = []
        self._resource_out = False  # the Resource was handed over (with a first Datum)
        self.points = 0  # datums made
        self.handed_over = 0  # datums the RunEngine has taken (it may yet drop some)

    @property
    def resource_uid(self) -> str:
        return self._resource["uid"]

    def rewind(self, points: int, resource_emitted: bool) -> None:
        """The RunEngine dropped Datums it had taken (a pause rewound the plan past the
        events that would have carried them): the next point is number ``points``
        again, and the Resource goes out again if it never went out."""
        with self._lock:
            self.points = self.handed_over = points
            self._queued.clear()
            self._resource_out = self._resource_out and resource_emitted

    def add_point(self) -> str:
        """The Datum of the next point; returns its id."""
        with self._lock:
            if not self._resource_out:
                self._resource_out = True
                self._queued.append(("resource", self._resource))
            datum = datum_doc(self._resource["uid"], self.points)
            self.points += 1
            self._queued.append(("datum", datum))
            return datum["datum_id"]

    def datum_id(self, point: int) -> str:
        """The id of the Datum :meth:`add_point` made (or will make) for ``point``."""
        return datum_id(self._resource["uid"], point)

    def take(self) -> Iterator[tuple[str, Document]]:
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

    Every key is read from the file: the images from the image dataset (the
    StreamResource has the shape TiledWriter gives an ``AD_HDF5`` Resource, so the catalog
    holds the same thing either way), the camera's frame numbers and times and the frames
    lost before each from the per-frame records beside them."""

    def __init__(self, path: Path, datasets: dict[str, str]):
        self._streams = FileStreams(path, datasets)
        self.rows = 0  # rows handed over

    def hand_over(self, rows: int) -> Iterator[tuple[str, Document]]:
        """Documents for the rows up to ``rows`` not handed over yet."""
        if rows <= self.rows:
            return
        streams = self._streams
        if self.rows == 0:
            for resource in streams.resources.values():
                yield "stream_resource", resource
        for key in streams.resources:
            yield "stream_datum", streams.datum(key, self.rows, rows)
        self.rows = rows
