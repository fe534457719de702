"""Which open runs are still being recorded: a marker file per open run, locked by the
process recording it.

The embedded catalog keeps ``open-runs/<uid>.lock`` for each run from its start
document to its stop document, locked (``flock``) by the process recording the run.
The kernel drops the lock when that process dies, however it dies (``kill -9``, a
crash, a power cut), so a marker nobody holds is a dead run and a held one a live
run; recovery holds the marker itself while it closes a run, so two recoveries never
close the same run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path


class RunIsLive(RuntimeError):
    """The run is still being recorded by a live process; the message names it."""


class RunMarkers:
    """Open-run markers of one embedded catalog (``<catalog>/open-runs``)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._held: dict[str, int] = {}

    def path(self, uid: str) -> Path:
        """The marker of run ``uid``."""
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
        os.ftruncate(fd, 0)  # who records it, for whoever finds the marker held
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
                recorder = _recorder(fd)
                return f"pid {recorder[0]} on {recorder[1]}" if recorder else "another process"
            return None
        finally:
            os.close(fd)

    def exists(self, uid: str) -> bool:
        """Whether run ``uid`` has a marker (held or not)."""
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
    def claim(self, uid: str) -> Iterator[None]:
        """Hold the run's marker while recovering it (raises :class:`RunIsLive` when
        someone else holds it); the marker is removed afterwards."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path(uid), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                recorder = _recorder(fd)
                who = f"process {recorder[0]} on {recorder[1]}" if recorder else "another process"
                raise RunIsLive(
                    f"run {uid} is still being recorded (or recovered) by {who}"
                ) from None
            yield
            with contextlib.suppress(FileNotFoundError):
                self.path(uid).unlink()
        finally:
            os.close(fd)


def _recorder(fd: int) -> tuple[str, str] | None:
    """(pid, host) the holder of a marker wrote into it, or None when it wrote nothing."""
    text = os.pread(fd, 200, 0).decode(errors="replace").split()
    return (text[0], text[1]) if len(text) >= 2 else None
