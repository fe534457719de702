"""Closing runs that a dead process left open, with every intact frame on disk.

A process killed mid-run (``kill -9``, a crash, a power cut, a full disk under
the catalog) leaves a run with a start document and no stop document, and
usually without the streams its camera had filled: the RunEngine hands events
to the catalog at ``collect`` (fly scans) or in batches (step scans).  The
frames themselves are safe in the HDF5 file, whose per-frame records say
which rows are real.

Is the run dead or still acquiring in another process?  The embedded
catalog keeps a marker file per open run, ``open-runs/<uid>.lock``, locked
(``flock``) by the process recording the run from its start document to its
stop document.  The kernel drops the lock when that process dies, however it
dies, so a marker nobody holds is a dead run, and a held one a live run.
Runs without a marker (recorded through a catalog server, or before markers
existed) count as dead once their frame files and start have been idle for
``idle`` seconds (an hour by default); ``force`` overrides both.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ophyd_pvcam.storage import RecordedFile, mark_closed, read_frame_file, stream_datasets

from ._folders import layout_root, path_of, real

log = logging.getLogger(__name__)

DEFAULT_IDLE_S = 3600.0


class RunIsLive(RuntimeError):
    """The run is still being recorded by a live process; the message names it."""


class RunMarkers:
    """Open-run markers of one embedded catalog (``<catalog>/open-runs``)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._held: dict[str, int] = {}

    def path(self, uid: str) -> Path:
        return self.folder / f"{uid}.lock"

    def opened(self, uid: str) -> None:
        """This process records run ``uid``: hold its marker until :meth:`closed`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path(uid), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()} {time.time():.3f}\n".encode())
        self._held[uid] = fd

    def closed(self, uid: str) -> None:
        """Run ``uid`` has its stop document: drop the marker."""
        fd = self._held.pop(uid, None)
        if fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path(uid).unlink()
        os.close(fd)

    def dead(self) -> list[str]:
        """Uids whose marker nobody holds: runs left open by a process that is gone."""
        found = []
        for path in sorted(self.folder.glob("*.lock")):
            uid = path.stem
            if uid in self._held:
                continue
            if self.holder(uid) is None and path.exists():
                found.append(uid)
        return found

    def holder(self, uid: str) -> str | None:
        """Who holds the marker ("pid 123 on host"), or None when nobody (or no marker)."""
        try:
            fd = os.open(self.path(uid), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 200, 0).decode(errors="replace").split()
                return f"pid {text[0]} on {text[1]}" if len(text) >= 2 else "another process"
            return None
        finally:
            os.close(fd)

    def exists(self, uid: str) -> bool:
        return self.path(uid).exists()

    def forget(self, uid: str) -> None:
        """Remove a marker nobody holds (its run was closed after all)."""
        try:
            fd = os.open(self.path(uid), os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.path(uid).unlink(missing_ok=True)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def claim(self, uid: str):
        """Hold the run's marker while recovering it (raises :class:`RunIsLive` when
        someone else holds it); the marker is removed afterwards."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path(uid), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 200, 0).decode(errors="replace").split()
                who = f"process {text[0]} on {text[1]}" if len(text) >= 2 else "another process"
                raise RunIsLive(
                    f"run {uid} is still being recorded (or recovered) by {who}"
                ) from None
            yield
            with contextlib.suppress(FileNotFoundError):
                self.path(uid).unlink()
        finally:
            os.close(fd)


def _natural(path: Path) -> tuple:
    """cam_fly.h5 < cam_fly_2.h5 < cam_fly_10.h5"""
    stem = path.stem
    head, _, tail = stem.rpartition("_")
    if tail.isdigit() and head:
        return (str(path.parent), head, int(tail))
    return (str(path.parent), stem, 1)


# ---- what a run lacks -----------------------------------------------------------------


@dataclass
class OpenRun:
    """A run with a start document and no stop document."""

    uid: str
    start: dict
    state: str  # "dead", "live" or "idle?" (no marker: judged by idle time)
    detail: str = ""

    @property
    def recoverable(self) -> bool:
        return self.state == "dead"


@dataclass
class Recovered:
    """What :func:`recover_run` did to one run."""

    uid: str
    stop: dict
    frames: int  # frames made reachable through the run
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        where = ", ".join(p.name for p in self.files) or "no frame files"
        text = f"closed {self.uid[:8]}: {self.frames} frames reachable ({where})"
        return text + "".join(f"; {note}" for note in self.notes)


def _markers(catalog: Any) -> RunMarkers | None:
    from ._catalog import guard_of

    guard = guard_of(catalog)
    return getattr(guard, "runs", None)


def _search_roots(catalog: Any, frames: Iterable[str | os.PathLike]) -> list[Path]:
    from ophyd_pvcam.paths import default_write_path

    from ._catalog import guard_of

    guard = guard_of(catalog)
    roots = [Path(f).expanduser() for f in frames]
    if guard is not None:
        roots += guard.frames.folders()
    roots.append(default_write_path())
    seen, unique = set(), []
    for root in roots:
        resolved = real(root)
        if resolved not in seen and resolved.is_dir():
            seen.add(resolved)
            unique.append(resolved)
    return unique


def _streams(run: Any) -> dict[str, Any]:
    base = getattr(run, "base", run)
    return {name: base[name] for name in base}


def _registered_files(run: Any) -> list[Path]:
    found = []
    for stream in _streams(run).values():
        stream_base = getattr(stream, "base", stream)
        for key in stream_base:
            node = stream_base[key]
            try:
                sources = node.data_sources() or []
            except Exception:  # a table or a container: no files
                continue
            for source in sources:
                for asset in source.assets or []:
                    path = path_of(asset.data_uri)
                    if path is not None and path.endswith((".h5", ".hdf5")):
                        found.append(Path(path))
    return found


def run_files(catalog: Any, uid: str, frames: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Frame files of a run: those its streams reference, and those in its run folder
    (``<frames folder>/YYYY/MM/DD/<uid>/``) under any folder the catalog reads or
    ``frames`` names."""
    run = catalog[uid]
    files = {real(p): p for p in _registered_files(run)}
    for root in _search_roots(catalog, frames):
        for path in root.glob(f"*/*/*/{uid}/*.h5"):
            files.setdefault(real(path), path)
    return sorted(files.values(), key=_natural)


def _idle_seconds(start: dict, files: list[Path]) -> float:
    latest = float(start.get("time", 0.0))
    for path in files:
        with contextlib.suppress(OSError):
            latest = max(latest, path.stat().st_mtime)
    return time.time() - latest


def open_runs(
    catalog: Any, *, idle: float = DEFAULT_IDLE_S, frames: Iterable[str | os.PathLike] = ()
) -> list[OpenRun]:
    """Runs with no stop document, each judged dead, live or idle (see the module doc)."""
    from tiled.queries import KeyPresent

    found = []
    for uid, run in catalog.search(KeyPresent("stop", exists=False)).items():
        start = run.metadata.get("start")
        if start is None:
            continue
        found.append(_judge(catalog, uid, start, idle=idle, frames=frames))
    return found


def _judge(catalog, uid, start, *, idle, frames) -> OpenRun:
    markers = _markers(catalog)
    if markers is not None and markers.exists(uid):
        holder = markers.holder(uid)
        if holder is None:
            return OpenRun(uid, start, "dead", "the process recording it is gone")
        return OpenRun(uid, start, "live", f"being recorded by {holder}")
    files = run_files(catalog, uid, frames)
    quiet = _idle_seconds(start, files)
    if quiet >= idle:
        return OpenRun(uid, start, "dead", f"nothing written for {quiet / 60:.0f} min")
    return OpenRun(
        uid,
        start,
        "idle?",
        f"no marker says who records it, and it wrote {quiet:.0f} s ago "
        f"(a run counts as dead after {idle:.0f} s idle; --force to close it now)",
    )


# ---- writing what the run lacks --------------------------------------------------------


def _attached_writer(run_client: Any, existing: dict[str, Any]):
    """bluesky-tiled-plugins' own run writer, attached to a run that already exists in
    the catalog (so a recovered run has exactly the layout of a normal one)."""
    from bluesky_tiled_plugins.writing.tiled_writer import RunNormalizer, _RunWriter

    class AttachedRunWriter(_RunWriter):
        def start(self, doc):
            self.root_node = run_client

        def descriptor(self, doc):
            node = existing.get(doc["name"])
            if node is None:
                return super().descriptor(doc)
            self.data_keys.update(doc.get("data_keys", {}))
            self._desc_nodes[doc["uid"]] = self._desc_nodes[doc["name"]] = node
            if "internal" in node:
                self._internal_tables[doc["name"]] = node["internal"]
            return None

    normalizer = RunNormalizer()
    normalizer.subscribe(AttachedRunWriter(run_client.include_data_sources()))
    return normalizer


def _data_key(value: Any) -> dict:
    if isinstance(value, bool):
        return {"dtype": "boolean", "shape": []}
    if isinstance(value, int):
        return {"dtype": "integer", "shape": []}
    if isinstance(value, float):
        return {"dtype": "number", "shape": []}
    if isinstance(value, list):
        return {"dtype": "array", "shape": [len(value)]}
    return {"dtype": "string", "shape": []}


def _configuration(file: RecordedFile) -> dict:
    dev, source = file.device, f"file:{file.path.name}"
    data, keys = {}, {}
    for name, value in sorted(file.settings.items()):
        if isinstance(value, dict) or value is None:
            value = json.dumps(value, default=str)
        data[f"{dev}_{name}"] = value
        keys[f"{dev}_{name}"] = {"source": source, **_data_key(value)}
    return {dev: {"data": data, "timestamps": dict.fromkeys(data, file.created), "data_keys": keys}}


def _new_descriptor(file: RecordedFile, points_shape: list[int]) -> dict:
    dev, source = file.device, f"file:{file.path.name}"
    keys = {
        f"{dev}_image": {
            "source": source,
            "dtype": "array",
            "dtype_numpy": "<u2",
            "shape": points_shape,
            "external": "FILESTORE:",
        },
        f"{dev}_frame_number": {"source": source, "dtype": "integer", "shape": []},
    }
    if file.kind == "fly":
        keys |= {
            f"{dev}_frame_time": {
                "source": source,
                "dtype": "number",
                "shape": [],
                "units": "s",
                "doc": "end of the frame: the camera's clock mapped to wall time",
            },
            f"{dev}_lost_before": {
                "source": source,
                "dtype": "integer",
                "shape": [],
                "doc": "frames lost just before this one",
            },
            f"{dev}_lost_after": {
                "source": source,
                "dtype": "integer",
                "shape": [],
                "doc": "frames lost after this one: non-zero only on the last frame",
            },
        }
    return {
        "data_keys": keys,
        "configuration": _configuration(file),
        "object_keys": {dev: list(keys)},
    }


def _frames_root(path: Path) -> Path:
    root = layout_root(PurePosixPath(str(path)))
    return Path(str(root)) if root is not None else path.parent


def recover_run(
    catalog: Any,
    uid: str,
    *,
    frames: Iterable[str | os.PathLike] = (),
    force: bool = False,
    idle: float = DEFAULT_IDLE_S,
) -> Recovered:
    """Close run ``uid`` (a start, no stop) left open by a process that is gone.

    Every intact frame of its frame files (per the files' own records) becomes
    reachable through the run: a fly file gives one event per recorded frame in
    the stream named after the device; a step file gives one event per complete
    point in the stream that declares the device's image (``primary`` if none
    does).  Streams the catalog already holds events for are left as they are.
    The stop document has exit status ``abort`` and a reason naming the
    interruption.  Refuses (:class:`RunIsLive`) a run another process is still
    recording, unless ``force``.
    """
    from ._catalog import find_run

    run = find_run(catalog, uid)
    uid = run.metadata["start"]["uid"]
    if run.metadata.get("stop") is not None:
        raise ValueError(f"run {uid} is already closed")
    verdict = _judge(catalog, uid, run.metadata["start"], idle=idle, frames=frames)
    if not verdict.recoverable and not force:
        raise RunIsLive(f"run {uid[:8]} is still open: {verdict.detail}")
    markers = _markers(catalog)
    claim = markers.claim(uid) if markers is not None else contextlib.nullcontext()
    with claim:
        run = catalog[uid]  # afresh: it may have been closed meanwhile
        if run.metadata.get("stop") is not None:
            raise ValueError(f"run {uid} was closed meanwhile")
        completion = _Completion(run, uid)
        for path in run_files(catalog, uid, frames):
            completion.add_file(path)
        if verdict.recoverable:  # the writer is gone: close its files, as h5clear -s would
            for path in completion.used:
                try:
                    mark_closed(path)
                except (OSError, ValueError) as error:
                    completion.notes.append(f"{path.name} left flagged open ({error})")
        return completion.close(verdict.detail if verdict.recoverable else "closed with --force")


class _Completion:
    """The documents a run lacks, composed from its frame files, then written."""

    def __init__(self, run: Any, uid: str):
        self.run, self.uid = run, uid
        self.start = dict(run.metadata["start"])
        self.streams = _streams(run)
        self.counts: dict[str, int] = {}  # events the catalog already holds, per stream
        self.empty: dict[str, Any] = {}  # streams with a descriptor and no events
        for name, stream in self.streams.items():
            node = getattr(stream, "base", stream)
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
        image = descriptor["data_keys"].get(f"{file.device}_image", {})
        if image.get("external") == "STREAM:":  # a declared stream: it reads the file itself
            self._stream_rows(file, descriptor)
            return
        resource = self._resource(file, points)
        previous = 0
        for point in range(points):
            previous = self._event(file, descriptor, resource, point, previous)
        self.frames += points * fpp
        self.used.append(file.path)
        if points * fpp < file.recorded:
            self.notes.append(
                f"{file.recorded - points * fpp} frames of an unfinished point in "
                f"{file.path.name} left out"
            )

    def _stream_rows(self, file: RecordedFile, descriptor: dict) -> None:
        """A declared fly stream that got no rows before the process died: a
        StreamResource per key and one StreamDatum each for every recorded row (the
        image dataset was never trimmed, so it is read up to those rows)."""
        from event_model import compose_stream_resource

        stream = descriptor["name"]
        if stream in self.streams and f"{file.device}_image" in self.streams[stream]:
            # rows already handed over: a StreamResource bluesky gave cannot be extended
            # from another process, so the frames after them stay in the file only
            self.notes.append(
                f"stream {stream!r} already references frames of {file.path.name}; the "
                "frames recorded after its last collect stay in the file only"
            )
            return
        rows = file.recorded
        uri = f"file://localhost{file.path.absolute().as_posix()}"
        for key, dataset in stream_datasets(file.device).items():
            if key not in descriptor["data_keys"]:
                continue
            parameters: dict[str, Any] = {"dataset": dataset}
            if key == f"{file.device}_image":
                parameters |= {"spec": "AD_HDF5", "multiplier": 1}
                if file.rows > rows:
                    parameters["slice"] = f"0:{rows}"
            bundle = compose_stream_resource(
                mimetype="application/x-hdf5", uri=uri, data_key=key, parameters=parameters
            )
            resource = dict(bundle.stream_resource_doc, run_start=self.uid)
            datum = bundle.compose_stream_datum(indices={"start": 0, "stop": rows}, validate=False)
            datum["descriptor"] = descriptor["uid"]
            datum["seq_nums"] = {"start": 1, "stop": rows + 1}
            self.documents += [("stream_resource", resource), ("stream_datum", datum)]
        self.seq[stream] = rows
        self.frames += rows
        self.used.append(file.path)
        if file.recorded:
            self.last_time = max(self.last_time, float(np.nanmax(file.times)))

    def _stream_for(self, file: RecordedFile) -> str:
        if file.kind == "fly":
            return file.device
        image_key = f"{file.device}_image"
        for name, stream in self.streams.items():
            if image_key in (stream.metadata.get("data_keys") or {}):
                return name
        return "primary"

    def _descriptor(self, stream: str, file: RecordedFile) -> dict:
        if stream in self.descriptors:
            return self.descriptors[stream]
        if stream in self.empty:
            from bluesky_tiled_plugins.exporters import build_descriptor_docs

            metadata = dict(self.empty[stream].metadata)
            descriptor = build_descriptor_docs(metadata, stream, run_start_uid=self.uid)[-1]
        else:
            descriptor = _new_descriptor(file, [file.frames_per_point, *file.shape])
            descriptor |= {
                "uid": str(uuid.uuid4()),
                "run_start": self.uid,
                "name": stream,
                "time": float(file.times[0]) if file.recorded else file.created,
            }
        self.descriptors[stream] = descriptor
        self.seq[stream] = 0
        self.documents.append(("descriptor", descriptor))
        return descriptor

    def _resource(self, file: RecordedFile, points: int) -> dict:
        root = _frames_root(file.path)
        kwargs = {"frame_per_point": file.frames_per_point}
        if file.rows > points * file.frames_per_point:
            # the dataset grew in blocks and was never trimmed: read only the rows used
            kwargs["slice"] = f"0:{points * file.frames_per_point}"
        resource = {
            "uid": str(uuid.uuid4()),
            "run_start": self.uid,
            "spec": "AD_HDF5",
            "root": str(root),
            "resource_path": str(file.path.relative_to(root)),
            "resource_kwargs": kwargs,
            "path_semantics": "posix",
        }
        self.documents.append(("resource", resource))
        return resource

    def _event(self, file: RecordedFile, descriptor: dict, resource: dict, point, previous) -> int:
        dev, fpp = file.device, file.frames_per_point
        rows = slice(point * fpp, (point + 1) * fpp)
        times = file.times[rows]
        when = float(np.nanmax(times)) if np.isfinite(times).any() else self.last_time
        number = int(file.numbers[rows][-1])
        datum_id = f"{resource['uid']}/{point}"
        datum = {"resource": resource["uid"], "datum_id": datum_id}
        self.documents.append(("datum", {**datum, "datum_kwargs": {"point_number": point}}))
        data = {f"{dev}_image": datum_id, f"{dev}_frame_number": number}
        if file.kind == "fly":
            data[f"{dev}_frame_time"] = when
            data[f"{dev}_lost_before"] = max(0, number - previous - 1) if number else 0
            data[f"{dev}_lost_after"] = 0
        data = {k: v for k, v in data.items() if k in descriptor["data_keys"]}
        stream = descriptor["name"]
        self.seq[stream] += 1
        self.documents.append(
            (
                "event",
                {
                    "uid": str(uuid.uuid4()),
                    "descriptor": descriptor["uid"],
                    "seq_num": self.seq[stream],
                    "time": when,
                    "data": data,
                    "timestamps": dict.fromkeys(data, when),
                    "filled": {f"{dev}_image": False},
                },
            )
        )
        self.last_time = max(self.last_time, when)
        return number or previous

    def close(self, why: str) -> Recovered:
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


def left_open(catalog: Any) -> list[str]:
    """Uids of runs left open by a process that is gone (embedded catalog: by their
    markers); markers of runs that were closed after all are removed on the way."""
    markers = _markers(catalog)
    if markers is None:
        return []
    found = []
    for uid in markers.dead():
        try:
            stopped = catalog[uid].metadata.get("stop") is not None
        except KeyError:
            stopped = True  # no such run: nothing to recover
        if stopped:
            markers.forget(uid)
        else:
            found.append(uid)
    return found


def recover(
    catalog: Any,
    uids: Iterable[str] = (),
    *,
    frames: Iterable[str | os.PathLike] = (),
    force: bool = False,
    idle: float = DEFAULT_IDLE_S,
) -> tuple[list[Recovered], list[OpenRun]]:
    """Close the given runs (default: every open run judged dead).  Returns what was
    recovered and the open runs left alone (live, or too recently active)."""
    uids = list(uids)
    if uids:
        targets = [(u, None) for u in uids]
    else:
        targets = [(r.uid, r) for r in open_runs(catalog, idle=idle, frames=frames)]
    done, left = [], []
    for uid, verdict in targets:
        if verdict is not None and not verdict.recoverable and not force:
            left.append(verdict)
            continue
        done.append(recover_run(catalog, uid, frames=frames, force=force, idle=idle))
    return done, left
