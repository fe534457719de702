"""Frame files after the fact: what they hold by their own records, and whether they
were closed.

An HDF5 file written with ``libver="latest"`` has a version 2/3 superblock whose
"file consistency flags" byte says the file is open for writing (and for SWMR
writing); HDF5 sets it when a writer opens the file and clears it at close.  A
writer killed mid-file leaves it set, and HDF5 then refuses every open except a
SWMR read ("file is already open for write (may use <h5clear file> ...)").
:func:`mark_closed` does what ``h5clear -s`` does, for :mod:`ophyd_pvcam.catalog._recovery`
once the writer is known to be dead: it clears the flags and rewrites the
superblock's checksum, so any HDF5 reader (area-detector-handlers, Fiji, h5py
by default) opens the file again.  Nothing else in the file changes.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import h5py
import numpy as np

from ._layout import DATA_PATH, RECORDS_GROUP

_Node = TypeVar("_Node", h5py.Group, h5py.Dataset)

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MASK = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``: the checksum HDF5 puts on its metadata."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _MASK
    i = 0
    while length > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & _MASK
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & _MASK
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & _MASK
        a = (a - c) & _MASK
        a ^= _rot(c, 4)
        c = (c + b) & _MASK
        b = (b - a) & _MASK
        b ^= _rot(a, 6)
        a = (a + c) & _MASK
        c = (c - b) & _MASK
        c ^= _rot(b, 8)
        b = (b + a) & _MASK
        a = (a - c) & _MASK
        a ^= _rot(c, 16)
        c = (c + b) & _MASK
        b = (b - a) & _MASK
        b ^= _rot(a, 19)
        a = (a + c) & _MASK
        c = (c - b) & _MASK
        c ^= _rot(b, 4)
        b = (b + a) & _MASK
        length -= 12
        i += 12
    if length == 0:
        return c
    tail = data[i:] + bytes(12 - length)  # the missing bytes count as zeros
    a = (a + int.from_bytes(tail[0:4], "little")) & _MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & _MASK
    c = (c + int.from_bytes(tail[8:12], "little")) & _MASK
    c ^= b
    c = (c - _rot(b, 14)) & _MASK
    a ^= c
    a = (a - _rot(c, 11)) & _MASK
    b ^= a
    b = (b - _rot(a, 25)) & _MASK
    c ^= b
    c = (c - _rot(b, 16)) & _MASK
    a ^= c
    a = (a - _rot(c, 4)) & _MASK
    b ^= a
    b = (b - _rot(a, 14)) & _MASK
    c ^= b
    c = (c - _rot(b, 24)) & _MASK
    return c


def _superblock(path: str | os.PathLike) -> tuple[bytes, int] | None:
    """(superblock bytes up to its checksum, checksum offset) of a v2/v3 superblock at
    the start of the file, or None (an older superblock carries no flags)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if len(head) < 12 or head[:8] != _SIGNATURE or head[8] not in (2, 3):
        return None
    end = 12 + 4 * head[9]  # base, extension, end-of-file and root addresses
    if len(head) < end + 4:
        return None
    return head[:end], end


def is_closed(path: str | os.PathLike) -> bool:
    """Whether the file's superblock says nobody has it open for writing."""
    block = _superblock(path)
    return block is None or block[0][11] == 0


def mark_closed(path: str | os.PathLike) -> bool:
    """Clear the "open for writing" flags of a file whose writer is dead (``h5clear -s``).

    Returns True when the file was changed.  Refuses (ValueError) a superblock
    whose checksum does not match: then it is not what this code understands.
    """
    block = _superblock(path)
    if block is None or block[0][11] == 0:
        return False
    data, end = block
    with open(path, "r+b") as f:
        f.seek(end)
        stored = int.from_bytes(f.read(4), "little")
        if lookup3(data) != stored:
            raise ValueError(f"{path}: unexpected HDF5 superblock (checksum mismatch)")
        cleared = data[:11] + b"\x00" + data[12:]
        f.seek(0)
        f.write(cleared + lookup3(cleared).to_bytes(4, "little"))
        f.flush()
        os.fsync(f.fileno())
    return True


@dataclass
class RecordedFile:
    """What one frame file holds, by its own records (see ``docs/decisions/0004-...``)."""

    path: Path
    device: str
    kind: str
    run_uid: str
    created: float  # wall clock, s since the epoch
    settings: dict
    shape: tuple[int, int]
    rows: int  # rows in the dataset, recorded or not
    numbers: np.ndarray  # camera frame number per recorded row (0: a lost frame's placeholder)
    times: np.ndarray  # end of each recorded frame, wall clock
    closed: bool  # closed cleanly (else: open, or its writer died)

    @property
    def frames_per_point(self) -> int:
        if self.kind == "fly":
            return 1
        return max(1, int(self.settings.get("frames_per_point") or 1))

    @property
    def recorded(self) -> int:
        """Rows whose frames are on disk, per the file's records."""
        return len(self.numbers)


def open_frame_file(path: str | os.PathLike) -> h5py.File:
    """Open a frame file for reading, in SWMR mode when it is (or was left) open for
    writing: the only mode in which HDF5 reads a file whose writer died."""
    if is_closed(path):
        return h5py.File(path, "r")
    return h5py.File(path, "r", libver="latest", swmr=True)


def _epoch(text: str) -> float:
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return float("nan")


def _checked(node: object, path: str, kind: type[_Node]) -> _Node:
    """The file's ``path``, which must be a ``kind`` (a malformed file is unreadable)."""
    if not isinstance(node, kind):
        raise ValueError(f"{path} is not an HDF5 {kind.__name__}")
    return node


def read_frame_file(path: str | os.PathLike) -> RecordedFile:
    """Read a frame file's identity and per-frame records (never its pixels)."""
    path = Path(path)
    closed = is_closed(path)
    with open_frame_file(path) as f:
        entry = f["entry"]
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in entry.attrs.items()}
        data = _checked(f[DATA_PATH], DATA_PATH, h5py.Dataset)
        records = _checked(f[RECORDS_GROUP], RECORDS_GROUP, h5py.Group)
        columns = {name: node for name, node in records.items() if isinstance(node, h5py.Dataset)}
        lengths = [data.shape[0]]
        lengths += [columns[n].shape[0] for n in ("frame_number", "timestamp_eof") if n in columns]
        if "frame_time" in columns:
            lengths.append(columns["frame_time"].shape[0])
        n = min(lengths)
        numbers = columns["frame_number"][:n] if "frame_number" in columns else np.zeros(0, int)
        created = _epoch(attrs.get("created", ""))
        if "frame_time" in columns:
            times = columns["frame_time"][:n].astype(float)
        elif "timestamp_eof" in columns:
            # the camera's clock runs from the start of the acquisition, just after the
            # file was created: the file's creation time is the nearest wall-clock origin
            times = created + columns["timestamp_eof"][:n].astype(float)
        else:
            times = np.full(n, created)
        settings = attrs.get("camera_settings") or "{}"
        return RecordedFile(
            path=path,
            device=str(attrs.get("device", "")),
            kind=str(attrs.get("kind", "")),
            run_uid=str(attrs.get("run_uid", "")),
            created=created,
            settings=json.loads(settings) if isinstance(settings, str) else {},
            shape=(int(data.shape[1]), int(data.shape[2])),
            rows=int(data.shape[0]),
            numbers=np.asarray(numbers, dtype=np.int64),
            times=np.asarray(times, dtype=float),
            closed=closed,
        )
