"""Completing a run a dead process left open: the documents it lacks, composed from its
frame files, written into the catalog, and its stop document.

The frames are safe in the HDF5 files, whose per-frame records say which rows are
real; the catalog usually lacks the streams the camera had filled (the RunEngine hands
events to the catalog at ``collect`` or in batches).  The documents are shaped by the
storage layer's builders, as the device shapes them while it acquires, and written
through bluesky-tiled-plugins' own run writer, so a recovered run has exactly the
layout of a normal one.
"""

from __future__ import annotations

import datetime
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ophyd_pvcam.storage import (
    FileStreams,
    RecordedFile,
    datum_doc,
    event_doc,
    file_descriptor,
    image_key,
    point_frame_number,
    point_readings,
    read_frame_file,
    resource_doc,
    stream_datasets,
)

from ._folders import layout_root
from ._nodes import streams


@dataclass
class Recovered:
    """What recovery did to one run."""

    uid: str
    stop: dict
    frames: int  # frames made reachable through the run
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        where = ", ".join(p.name for p in self.files) or "no frame files"
        text = f"closed {self.uid[:8]}: {self.frames} frames reachable ({where})"
        return text + "".join(f"; {note}" for note in self.notes)


def _attached_writer(run_client: Any, existing: dict[str, Any]) -> Any:
    """bluesky-tiled-plugins' own run writer, attached to a run that already exists in
    the catalog (so a recovered run has exactly the layout of a normal one)."""
    from bluesky_tiled_plugins.writing.tiled_writer import RunNormalizer, _RunWriter

    class AttachedRunWriter(_RunWriter):
        def start(self, doc):
            self.root_node = run_client

        def descriptor(self, doc):
            name = doc.get("name")
            if name is None or name not in existing:
                return super().descriptor(doc)
            node = existing[name]
            self.data_keys.update(doc.get("data_keys", {}))
            self._desc_nodes[doc["uid"]] = self._desc_nodes[name] = node
            if "internal" in node:
                self._internal_tables[name] = node["internal"]
            return None

    normalizer = RunNormalizer()
    normalizer.subscribe(AttachedRunWriter(run_client.include_data_sources()))
    return normalizer


def _frames_root(path: Path) -> Path:
    """The frames folder a file in our layout lies under (else its own folder): the
    Resource's root, so the catalog learns that folder."""
    root = layout_root(PurePosixPath(str(path)))
    return Path(str(root)) if root is not None else path.parent


class Completion:
    """The documents a run lacks, composed from its frame files, then written."""

    def __init__(self, run: Any, uid: str):
        self.run, self.uid = run, uid
        self.start = dict(run.metadata["start"])
        self.streams = streams(run)
        self.counts: dict[str, int] = {}  # events the catalog already holds, per stream
        self.empty: dict[str, Any] = {}  # streams with a descriptor and no events
        for name, node in self.streams.items():
            self.counts[name] = len(node["internal"].read()) if "internal" in node else 0
            if self.counts[name] == 0:
                self.empty[name] = node
        self.documents: list[tuple[str, dict]] = []
        self.descriptors: dict[str, dict] = {}
        self.seq: dict[str, int] = {}
        self.frames = 0
        self.used: list[Path] = []
        self.notes: list[str] = []
        self.last_time = float(self.start.get("time", time.time()))

    def add_file(self, path: Path) -> None:
        """Every complete point (fly: every frame) ``path`` recorded, unless the run
        already holds events in its stream."""
        # the disk space a dead writer held for closing the file is given back
        path.with_name(path.name + ".reserve").unlink(missing_ok=True)
        try:
            file = read_frame_file(path)
        except (OSError, KeyError, ValueError) as error:
            self.notes.append(f"{path.name} unreadable ({error})")
            return
        if file.run_uid not in ("", self.uid):
            return  # another run's file in this run's folder: not ours
        stream = self._stream_for(file)
        if self.counts.get(stream, 0) > 0:
            self.notes.append(
                f"stream {stream!r} already holds {self.counts[stream]} events: "
                f"{file.path.name} left as it is"
            )
            return
        fpp = file.frames_per_point
        points = file.recorded // fpp
        if points == 0:
            self.notes.append(f"{file.path.name} holds no complete point")
            return
        descriptor = self._descriptor(stream, file)
        image = descriptor["data_keys"].get(image_key(file.device), {})
        if image.get("external") == "STREAM:":  # a declared stream: it reads the file itself
            self._stream_rows(file, descriptor)
            return
        self._points(file, descriptor, points)
        if points * fpp < file.recorded:
            self.notes.append(
                f"{file.recorded - points * fpp} frames of an unfinished point in "
                f"{file.path.name} left out"
            )

    def _stream_rows(self, file: RecordedFile, descriptor: dict) -> None:
        """A declared fly stream that got no rows before the process died: a
        StreamResource per key and one StreamDatum each for every recorded row (the
        image dataset was never trimmed, so it is read up to those rows)."""
        stream = descriptor["name"]
        if stream in self.streams and image_key(file.device) in self.streams[stream]:
            # rows already handed over: a StreamResource bluesky gave cannot be extended
            # from another process, so the frames after them stay in the file only
            self.notes.append(
                f"stream {stream!r} already references frames of {file.path.name}; the "
                "frames recorded after its last collect stay in the file only"
            )
            return
        rows = file.recorded
        datasets = {
            key: dataset
            for key, dataset in stream_datasets(file.device).items()
            if key in descriptor["data_keys"]
        }
        files = FileStreams(
            file.path,
            datasets,
            run_start=self.uid,
            only_rows=rows if file.rows > rows else None,
        )
        for key, resource in files.resources.items():
            datum = files.datum(key, 0, rows, descriptor=descriptor["uid"], first_seq_num=1)
            self.documents += [("stream_resource", resource), ("stream_datum", datum)]
        self.seq[stream] = rows
        self.frames += rows
        self.used.append(file.path)
        if file.recorded:
            self.last_time = max(self.last_time, float(np.nanmax(file.times)))

    def _stream_for(self, file: RecordedFile) -> str:
        if file.kind == "fly":
            return file.device
        for name, node in self.streams.items():
            if image_key(file.device) in (node.metadata.get("data_keys") or {}):
                return name
        return "primary"

    def _descriptor(self, stream: str, file: RecordedFile) -> dict:
        if stream in self.descriptors:
            return self.descriptors[stream]
        if stream in self.empty:
            from bluesky_tiled_plugins.exporters import build_descriptor_docs

            metadata = dict(self.empty[stream].metadata)
            descriptor = dict(build_descriptor_docs(metadata, stream, run_start_uid=self.uid)[-1])
        else:
            descriptor = file_descriptor(file) | {
                "uid": str(uuid.uuid4()),
                "run_start": self.uid,
                "name": stream,
                "time": float(file.times[0]) if file.recorded else file.created,
            }
        self.descriptors[stream] = descriptor
        self.seq[stream] = 0
        self.documents.append(("descriptor", descriptor))
        return descriptor

    def _points(self, file: RecordedFile, descriptor: dict, points: int) -> None:
        """A Resource for the file, and a Datum and an Event per complete point."""
        fpp = file.frames_per_point
        root = _frames_root(file.path)
        resource = resource_doc(
            root,
            str(file.path.relative_to(root)),
            fpp,
            run_start=self.uid,
            only_rows=points * fpp if file.rows > points * fpp else None,
        )
        self.documents.append(("resource", resource))
        previous = 0
        for point in range(points):
            previous = self._event(file, descriptor, resource["uid"], point, previous)
        self.frames += points * fpp
        self.used.append(file.path)

    def _event(
        self, file: RecordedFile, descriptor: dict, resource: str, point: int, previous: int
    ) -> int:
        """The Datum and Event of ``point``; returns the last frame number seen."""
        fpp = file.frames_per_point
        times = file.times[point * fpp : (point + 1) * fpp]
        when = float(np.nanmax(times)) if np.isfinite(times).any() else self.last_time
        datum = datum_doc(resource, point)
        self.documents.append(("datum", datum))
        image = image_key(file.device)
        data = {image: datum["datum_id"], **point_readings(file, point, previous, when)}
        data = {k: v for k, v in data.items() if k in descriptor["data_keys"]}
        stream = descriptor["name"]
        self.seq[stream] += 1
        event = event_doc(
            descriptor["uid"],
            self.seq[stream],
            when,
            data,
            dict.fromkeys(data, when),
            {image: False},
        )
        self.documents.append(("event", event))
        self.last_time = max(self.last_time, when)
        return point_frame_number(file, point) or previous

    def close(self, why: str) -> Recovered:
        """Write the documents and a stop document saying what happened."""
        now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        files = ", ".join(p.name for p in self.used)
        stop = {
            "uid": str(uuid.uuid4()),
            "run_start": self.uid,
            "time": self.last_time,
            "exit_status": "abort",
            "reason": "interrupted: the process recording this run ended without closing it "
            f"(killed, crashed, or it lost its catalog; {why}). Closed by 'ophyd-pvcam "
            f"recover' at {now}: {self.frames} frames on disk made reachable"
            + (f" from {files}" if files else "")
            + "; readings that were not in the frame files are lost.",
            "num_events": {**{k: v for k, v in self.counts.items() if v}, **self.seq},
            "recovered": {
                "by": "ophyd-pvcam recover",
                "at": now,
                "frames": self.frames,
                "files": [str(p) for p in self.used],
            },
        }
        writer = _attached_writer(self.run, self.empty)
        writer("start", self.start)
        for name, doc in self.documents:
            writer(name, doc)
        writer("stop", stop)
        return Recovered(self.uid, stop, self.frames, self.used, self.notes)
