"""Getting a run out of the catalog: its documents (for databroker), its frame files,
and its frames as TIFF stacks for Fiji/ImageJ.

:func:`documents` rebuilds a run's Bluesky documents in the classic form
(start, descriptor, resource, datum, event, stop) from the catalog, with the
frame files referenced as ``AD_HDF5`` resources, which area-detector-handlers
reads.  Its handler opens a file plainly (not in SWMR mode) and keeps it open;
our catalogs open a closed file the same way (see ``_tiled.hdf5_adapter``), so
one process can read a run through databroker and through tiled, and
``ophyd-pvcam recover`` closes the files of a killed writer, so recovered runs
read the same way::

    import databroker
    db = databroker.temp()                    # or any databroker 2 catalog
    for name, doc in documents(catalog[uid]):
        db.v1.insert(name, doc)
    images = db[uid].primary.read()["cam_image"]   # filled by area-detector-handlers

(tiled's own ``run.documents()`` also works on our catalogs; it yields
``stream_resource``/``stream_datum`` documents, which databroker 2 does not fill.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ophyd_pvcam.storage import (
    DATA_PATH,
    SPEC,
    datum_doc,
    event_doc,
    open_frame_file,
    resource_doc,
)

from ._nodes import is_image, node_files, streams

_NAMESPACE = uuid.UUID("5d0c1f9e-0b7a-4c52-9a67-6f1c2d3e4b5a")  # stable ids for rebuilt docs


def _uid(*parts: Any) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(map(str, parts))))


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON-able Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def frame_files(run: Any) -> dict[str, list[Path]]:
    """Every frame file a run references, by ``stream/key``."""
    found = {}
    for stream, node in streams(run).items():
        for key, spec in (node.metadata.get("data_keys") or {}).items():
            if is_image(spec) and key in node:
                files = node_files(node[key])
                if files:
                    found[f"{stream}/{key}"] = files
    return found


def _rows_in(path: Path) -> int:
    """Rows of a frame file's image dataset (recorded or not)."""
    with open_frame_file(path) as f:
        data = f[DATA_PATH]
        if not isinstance(data, h5py.Dataset):
            raise ValueError(f"{path}: {DATA_PATH} is not a dataset")
        return int(data.shape[0])


def documents(run: Any, *, spec: str = SPEC, validate: bool = True) -> Iterator[tuple[str, dict]]:
    """A run's documents, rebuilt from the catalog (start, descriptors, resources,
    datums, events, stop), each checked against event-model's schema.

    Images are datums of ``spec`` resources (``AD_HDF5`` by default; pass
    ``"AD_HDF5_SWMR"`` for a reader registered under that name) with
    ``frame_per_point`` frames per event, exactly as the camera declared them.
    """
    from bluesky_tiled_plugins.exporters import build_descriptor_docs
    from event_model import DocumentNames, schema_validators

    def checked(name: str, doc: dict) -> tuple[str, dict]:
        if validate:
            schema_validators[getattr(DocumentNames, name)].validate(doc)
        return name, doc

    start = dict(run.metadata["start"])
    uid = start["uid"]
    yield checked("start", start)
    pending: list[tuple[float, int, str, dict]] = []
    for stream, node in streams(run).items():
        descriptors: list[dict[str, Any]] = [
            dict(d) for d in build_descriptor_docs(dict(node.metadata), stream, run_start_uid=uid)
        ]
        data_keys = descriptors[0]["data_keys"]
        external = [k for k, v in data_keys.items() if v.get("external") is not None]
        # images become datums; values a declared stream read from the file (a fly scan's
        # frame numbers and times) are plain event data in the classic documents
        images = [k for k in external if is_image(data_keys[k])]
        values = {k: node[k].read() for k in external if k not in images and k in node}
        for descriptor in descriptors:
            for key in values:
                descriptor["data_keys"][key].pop("external", None)
            yield checked("descriptor", descriptor)
        table = node["internal"].read() if "internal" in node else None
        rows = [] if table is None else table.to_dict(orient="records")
        datums: dict[str, list[str]] = {}
        for key in images:
            if key not in node:
                continue
            per_point = int(data_keys[key]["shape"][0]) if data_keys[key].get("shape") else 1
            ids = []
            files = node_files(node[key])
            total = int(node[key].shape[0])
            for number, path in enumerate(files):
                last = number == len(files) - 1
                points = total - len(ids) if last else _rows_in(path) // per_point
                resource = resource_doc(
                    path.parent,
                    path.name,
                    per_point,
                    uid=_uid(uid, stream, key, number),
                    run_start=uid,
                    spec=spec,
                )
                yield checked("resource", resource)
                for point in range(points):
                    datum = datum_doc(resource["uid"], point)
                    yield checked("datum", datum)
                    ids.append(datum["datum_id"])
            datums[key] = ids
        times = [d["time"] for d in descriptors]
        count = max(
            [len(rows), *(len(v) for v in datums.values()), *(len(v) for v in values.values())],
            default=0,
        )
        for index in range(count):
            row = rows[index] if index < len(rows) else {}
            seq_num = int(row.get("seq_num", index + 1))
            when = float(row.get("time", times[0]))
            descriptor = descriptors[0]
            for candidate, t in zip(descriptors, times, strict=True):
                if t <= when:
                    descriptor = candidate
            data, stamps = {}, {}
            for key in data_keys:
                if key in datums and index < len(datums[key]):
                    data[key] = datums[key][index]
                    stamps[key] = float(row.get(f"ts_{key}", when))
                elif key in values and index < len(values[key]):
                    data[key] = _plain(values[key][index])
                    stamps[key] = when
                elif key in row:
                    data[key] = _plain(row[key])
                    stamps[key] = float(row.get(f"ts_{key}", when))
            event = event_doc(
                descriptor["uid"],
                seq_num,
                when,
                data,
                stamps,
                {k: False for k in datums if k in data},
                uid=_uid(descriptor["uid"], seq_num),
            )
            pending.append((when, len(pending), "event", event))
    for _, _, name, doc in sorted(pending, key=lambda item: item[:2]):
        yield checked(name, doc)
    stop = run.metadata.get("stop")
    if stop is not None:
        yield checked("stop", dict(stop))


def image_keys(run: Any) -> list[tuple[str, str]]:
    """(stream, key) of every camera image in a run."""
    return [
        (stream, key)
        for stream, node in streams(run).items()
        for key, spec in (node.metadata.get("data_keys") or {}).items()
        if is_image(spec)
    ]


def export_tiff(
    run: Any, folder: str | Path, *, stream: str | None = None, block_bytes: int = 64 << 20
) -> list[Path]:
    """Write each camera image series of a run as one multi-page TIFF (an ImageJ stack,
    frames in order) in ``folder``: ``<uid8>_<stream>_<key>.tif``.  Returns the paths."""
    import tifffile

    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    uid = run.metadata["start"]["uid"]
    written = []
    for name, key in image_keys(run):
        if stream is not None and name != stream:
            continue
        array = run[name][key]
        shape = tuple(int(n) for n in array.shape)
        height, width = shape[-2:]
        frames = int(np.prod(shape[:-2]))
        per_point = int(np.prod(shape[1:-2])) or 1
        frame_bytes = height * width * np.dtype(array.dtype).itemsize
        step = max(1, block_bytes // max(1, frame_bytes * per_point))

        def pages(array=array, points=shape[0], step=step, height=height, width=width):
            for first in range(0, points, step):
                block = np.asarray(array[first : first + step])
                yield from block.reshape(-1, height, width)

        path = folder / f"{uid[:8]}_{name}_{key}.tif"
        big = frames * frame_bytes > (2 << 30)
        with tifffile.TiffWriter(path, imagej=not big, bigtiff=big) as tiff:
            tiff.write(
                pages(),
                shape=(frames, height, width),
                dtype=array.dtype,
                metadata={"axes": "TYX"} if not big else {"run": uid, "key": key},
                description=None if not big else f"run {uid}, {name}/{key}",
            )
        written.append(path)
    return written
