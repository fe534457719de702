"""Where this face's frame files go when nobody says: the ophyd face's folder.

ophyd-async detectors are told where to write by a :class:`~ophyd_async.core.PathProvider`.
This camera's core lays a run's files out beneath one folder by date and run
(``YYYY/MM/DD/<run uid>/<name>_<kind>.h5``, docs/decisions/0005: recovery finds a run's
files by its uid), so a PathProvider given to :class:`~ophyd_pvcam.asyncio.PvcamDetector`
chooses, at each ``prepare``, that folder (``directory_path``) and ``<name>``
(``filename``); ``directory_uri`` and ``create_dir_depth`` are not used (the core makes
the folders it needs).
"""

from __future__ import annotations

from ophyd_async.core import PathInfo

from ophyd_pvcam.paths import default_write_path


class FramesPathProvider:
    """The default: ``<data root>/frames``, read anew at each call (so
    ``OPHYD_PVCAM_DATA`` set after the detector was made still counts), and files
    named by the device, as the ophyd face names them."""

    def __call__(self, datakey_name: str | None = None) -> PathInfo:
        folder = default_write_path().expanduser().resolve()
        return PathInfo(directory_path=folder, filename=datakey_name or "frames")
