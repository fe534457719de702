"""Which folders a catalog reads frame files from, and why a path is refused.

A run references its frame files by absolute path (``file://`` URIs in tiled).
A catalog serves a file only when the file, with every symlink resolved,
lies inside one of its frames folders:

- a catalog server reads only the folders it was started with (``--frames``);
- the embedded catalog also *learns* the frames folder of every file a run
  registers, and keeps the list in ``frames-folders.txt`` beside its database,
  so any later process that opens it reads every run, wherever the camera
  wrote.  For a file in ophyd-pvcam's layout,
  ``<write_path>/YYYY/MM/DD/<run>/<file>.h5``, the folder learned is the
  camera's ``write_path``; for any other file it is the file's own folder.

Learning never widens access beyond the folder: a path with ``..`` in it is
refused outright, and a file (or a folder on its way) that is a symlink
leading out of its frames folder is refused when registered and when read.
"""

from __future__ import annotations

import fcntl
import os
import posixpath
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

LEARNED_FILE = "frames-folders.txt"
_DAY = (re.compile(r"\d{4}"), re.compile(r"\d{2}"), re.compile(r"\d{2}"))
_RUN_FOLDER = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|no-run-\d{6}-[0-9a-f]{8}"
)


class PathRefused(PermissionError):
    """A frame file the catalog will not register or serve; the message says why."""


def path_of(data_uri: str) -> str | None:
    """The local path a ``file://`` URI names, unnormalised; None for other schemes."""
    parsed = urlparse(data_uri)
    if parsed.scheme != "file":
        return None
    return unquote(parsed.path)


def real(path: str | os.PathLike) -> Path:
    """``path`` with every symlink resolved (the file need not exist)."""
    return Path(os.path.realpath(path))


def is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def require_plain(path: str) -> PurePosixPath:
    """Refuse relative paths and paths that are not in normal form (``..``, ``.``, ``//``)."""
    pure = PurePosixPath(path)
    if not pure.is_absolute() or ".." in pure.parts or posixpath.normpath(path) != path:
        raise PathRefused(
            f"refusing {path}: the path leaves its folder ('..' or not in normal form); "
            "a frame file must lie inside the frames folder it was written to"
        )
    return pure


def layout_root(path: PurePosixPath) -> PurePosixPath | None:
    """The camera's ``write_path`` when ``path`` is ``<root>/YYYY/MM/DD/<run>/<file>``."""
    parts = path.parts
    if len(parts) < 7:
        return None
    *_, year, month, day, run, _name = parts
    if not all(p.fullmatch(s) for p, s in zip(_DAY, (year, month, day), strict=True)):
        return None
    if not _RUN_FOLDER.fullmatch(run):
        return None
    return path.parents[4]


class LearnedFolders:
    """Frames folders an embedded catalog has learned, one absolute path a line.

    Several processes append to it (each under the catalog's write lock, and
    under a lock on the file itself); each re-reads it when it changes.
    """

    def __init__(self, path: Path):
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._folders: list[Path] = []

    def folders(self) -> list[Path]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            lines = self.path.read_text().splitlines()
            self._folders = [Path(s) for s in (x.strip() for x in lines) if s and s[0] != "#"]
            self._stamp = stamp
        return list(self._folders)

    def add(self, folder: Path) -> None:
        with open(self.path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            if str(folder) in (line.strip() for line in f):
                return
            if f.tell() == 0:
                f.write(
                    "# frames folders this catalog reads, learned from its runs "
                    "(ophyd-pvcam); one a line\n"
                )
            f.write(f"{folder}\n")
            f.flush()
            os.fsync(f.fileno())


class FramesFolders:
    """The folders one catalog may read frame files from, and the checks on a path.

    ``configured``: folders given when the catalog was opened or the server
    started (resolved here).  ``learned``: the embedded catalog's list, or None
    for a catalog that never learns (a server).  ``advice``: how to fix a
    refusal, appended to the message.
    """

    def __init__(
        self,
        configured: Iterable[str | os.PathLike],
        learned: LearnedFolders | None = None,
        advice: str = "",
    ):
        self.configured = sorted({real(Path(p).expanduser()) for p in configured})
        self.learned = learned
        self.advice = advice

    def folders(self) -> list[Path]:
        return [*self.configured, *(self.learned.folders() if self.learned else [])]

    def _within(self, resolved: Path) -> bool:
        return any(is_inside(resolved, folder) for folder in self.folders())

    def check_read(self, path: str) -> None:
        """Raise :class:`PathRefused` unless the file may be served."""
        require_plain(path)
        resolved = real(path)
        if not self._within(resolved):
            raise PathRefused(self._outside(path, resolved))

    def admit(self, path: str) -> Path | None:
        """Check a file a run registers; returns the folder learned, if any.

        Raises :class:`PathRefused` for a path with ``..``, a symlink leading
        out of its frames folder, or (when the catalog does not learn) a file
        outside the configured folders.
        """
        pure = require_plain(path)
        resolved = real(path)
        if self._within(resolved):
            return None
        if self.learned is None:
            raise PathRefused(self._outside(path, resolved))
        root = layout_root(pure)
        if root is None:
            # not ophyd-pvcam's layout: the file's own folder, which must not be a symlink
            root = pure.parent
            folder = real(root.parent) / root.name
        else:
            folder = real(root)
        if not is_inside(resolved, folder):
            raise PathRefused(
                f"refusing {path}: it resolves to {resolved}, outside its frames folder "
                f"{root} (a symlink leads out of it)"
            )
        if folder == Path("/"):
            raise PathRefused(f"refusing {path}: its frames folder would be the whole disk")
        self.learned.add(folder)
        return folder

    def learn(self, folder: str | os.PathLike) -> Path | None:
        """Learn a camera's ``write_path`` before it writes anything (the embedded
        catalog; :class:`~ophyd_pvcam.device.FramesFolderCheck` does it), so that
        recovery finds the files of a run that never got to register them."""
        if self.learned is None:
            return None
        resolved = real(Path(folder).expanduser())
        if self._within(resolved):
            return None
        if resolved == Path("/"):
            raise PathRefused("refusing / as a frames folder: it would be the whole disk")
        self.learned.add(resolved)
        return resolved

    def _outside(self, path: str, resolved: Path) -> str:
        where = f"{path}" + (f" (resolved: {resolved})" if str(resolved) != path else "")
        folders = ", ".join(map(str, self.folders())) or "none"
        message = f"refusing {where}: outside the folders this catalog reads frames from"
        message += f" ({folders})"
        return f"{message}; {self.advice}" if self.advice else message
