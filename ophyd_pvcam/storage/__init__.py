"""Frames on their way to disk, and back: the memory queue, compression, the HDF5
layout (one module), the writer thread, the reader, and the Resource/Datum and
StreamResource/StreamDatum documents that point a run at the rows of a file.
Imports no ophyd, bluesky or tiled.
"""

from ._compression import BLOCK_ELEMENTS, COMPRESSIONS, Bslz4
from ._descriptors import file_descriptor, image_key, point_frame_number, point_readings
from ._documents import (
    AssetDocs,
    FileStreams,
    StreamAssets,
    datum_doc,
    datum_id,
    event_doc,
    resource_doc,
)
from ._layout import (
    DATA_PATH,
    LOST_NUMBERS,
    RECORD_DTYPES,
    RECORDS_GROUP,
    SPEC,
    UNREFERENCED_NUMBERS,
    UNREFERENCED_PATH,
    record_path,
    stream_datasets,
)
from ._queue import FrameQueue
from ._reader import (
    RecordedFile,
    is_closed,
    lookup3,
    mark_closed,
    open_frame_file,
    read_frame_file,
)
from ._records import read_record
from ._writer import FrameFile, FrameWriter, Row, check_free_space, frames_per_chunk

__all__ = [
    "BLOCK_ELEMENTS",
    "COMPRESSIONS",
    "DATA_PATH",
    "LOST_NUMBERS",
    "RECORDS_GROUP",
    "RECORD_DTYPES",
    "SPEC",
    "UNREFERENCED_NUMBERS",
    "UNREFERENCED_PATH",
    "AssetDocs",
    "Bslz4",
    "FileStreams",
    "FrameFile",
    "FrameQueue",
    "FrameWriter",
    "RecordedFile",
    "Row",
    "StreamAssets",
    "check_free_space",
    "datum_doc",
    "datum_id",
    "event_doc",
    "file_descriptor",
    "frames_per_chunk",
    "image_key",
    "is_closed",
    "lookup3",
    "mark_closed",
    "open_frame_file",
    "point_frame_number",
    "point_readings",
    "read_frame_file",
    "read_record",
    "record_path",
    "resource_doc",
    "stream_datasets",
]
