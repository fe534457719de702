"""What a descriptor declares for a frame file, and what its events carry, from the file
alone.

Recovery writes the events of a run whose process died before it described the
camera's stream to the catalog.  All it has then is the frame file; its identity,
settings and per-row records (``docs/decisions/0004-...``) are enough to describe the
image and the per-row records the way the device would have, and to give each point's
event its values.  The keys and their values are shaped here, beside the Resource and
Datum documents (``_documents``), so the two cannot drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from ._reader import RecordedFile

IMAGE_DTYPE = "<u2"  # the camera's pixels, as every frame file stores them
FLY_RECORD_KEYS = {  # a fly scan's per-row records, as event data beside the image
    "frame_time": {
        "dtype": "number",
        "shape": [],
        "units": "s",
        "doc": "end of the frame: the camera's clock mapped to wall time",
    },
    "lost_before": {"dtype": "integer", "shape": [], "doc": "frames lost just before this one"},
    "lost_after": {
        "dtype": "integer",
        "shape": [],
        "doc": "frames lost after this one: non-zero only on the last frame",
    },
}


def image_key(device: str) -> str:
    """The data key of a device's images."""
    return f"{device}_image"


def _data_key(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"dtype": "boolean", "shape": []}
    if isinstance(value, int):
        return {"dtype": "integer", "shape": []}
    if isinstance(value, float):
        return {"dtype": "number", "shape": []}
    if isinstance(value, list):
        return {"dtype": "array", "shape": [len(value)]}
    return {"dtype": "string", "shape": []}


def _configuration(file: RecordedFile) -> dict[str, Any]:
    """The device's configuration as the file's settings recorded it."""
    dev, source = file.device, f"file:{file.path.name}"
    data: dict[str, Any] = {}
    keys: dict[str, Any] = {}
    for name, value in sorted(file.settings.items()):
        if isinstance(value, dict) or value is None:
            value = json.dumps(value, default=str)
        data[f"{dev}_{name}"] = value
        keys[f"{dev}_{name}"] = {"source": source, **_data_key(value)}
    return {dev: {"data": data, "timestamps": dict.fromkeys(data, file.created), "data_keys": keys}}


def file_descriptor(file: RecordedFile) -> dict[str, Any]:
    """``data_keys``, ``configuration`` and ``object_keys`` of a descriptor for the events
    of ``file``: one per point of ``frames_per_point`` frames, its image a Datum."""
    dev, source = file.device, f"file:{file.path.name}"
    keys: dict[str, Any] = {
        image_key(dev): {
            "source": source,
            "dtype": "array",
            "dtype_numpy": IMAGE_DTYPE,
            "shape": [file.frames_per_point, *file.shape],
            "external": "FILESTORE:",
        },
        f"{dev}_frame_number": {"source": source, "dtype": "integer", "shape": []},
    }
    if file.kind == "fly":
        keys |= {f"{dev}_{name}": {"source": source, **k} for name, k in FLY_RECORD_KEYS.items()}
    return {
        "data_keys": keys,
        "configuration": _configuration(file),
        "object_keys": {dev: list(keys)},
    }


def point_frame_number(file: RecordedFile, point: int) -> int:
    """The camera's number of the last frame of ``point`` (0: a lost frame's row)."""
    fpp = file.frames_per_point
    return int(file.numbers[point * fpp : (point + 1) * fpp][-1])


def point_readings(file: RecordedFile, point: int, previous: int, when: float) -> dict[str, Any]:
    """The values besides the image that the event of ``point`` carries: the number of
    its last frame and, in a fly scan, the frame's time (``when``) and the frames lost
    since frame ``previous``."""
    number = point_frame_number(file, point)
    readings: dict[str, Any] = {f"{file.device}_frame_number": number}
    if file.kind == "fly":
        readings |= {
            f"{file.device}_frame_time": when,
            f"{file.device}_lost_before": max(0, number - previous - 1) if number else 0,
            f"{file.device}_lost_after": 0,
        }
    return readings
