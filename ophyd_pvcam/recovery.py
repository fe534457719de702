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
import fcntl
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)


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
