"""Where this face's frame files go when nobody says: the ophyd face's folder.

ophyd-async detectors are told where to write by a :class:`~ophyd_async.core.PathProvider`.
This camera's core lays a run's files out itself beneath one folder
(``YYYY/MM/DD/<run uid>/<device>_<kind>.h5``, docs/decisions/0005), so a PathProvider
given to :class:`~ophyd_pvcam.asyncio.PvcamDetector` chooses that folder, at each
``prepare``; its file name is not used.
"""

from __future__ import annotations

from ophyd_async.core import PathInfo

from ophyd_pvcam.paths import default_write_path


class FramesPathProvider:
    """The default: ``<data root>/frames``, read anew at each call (so
    ``OPHYD_PVCAM_DATA`` set after the detector was made still counts)."""

    def __call__(self, datakey_name: str | None = None) -> PathInfo:
        folder = default_write_path().expanduser().resolve()
        return PathInfo(directory_path=folder, filename=datakey_name or "frames")
