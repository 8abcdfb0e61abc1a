"""Exclusive run directories: one writer at a time, a killed writer's lock taken over with a warning.

The lock is ``<run dir>/.harness.lock`` held with ``fcntl.flock`` for as long as the run writes the
directory. The kernel drops a flock when its process dies, however it dies, so a lock file left
by a killed run is stale exactly when its flock can be taken; the file names the holder (pid,
host, start time, command) for the error a second run gets and for the stale-lock warning.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from harness.errors import RunLockedError

LOCK_FILE = ".harness.lock"


def _holder_text(info: dict[str, Any] | None) -> str:
    if not info:
        return "holder unknown"
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started {info.get('started', '?')}"
            + (f": {info['command']}" if info.get("command") else ""))


def _read_holder(fd: int) -> dict[str, Any] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 1 << 16)
    try:
        info = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return info if isinstance(info, dict) else None


class RunLock:
    """The lock of one run directory. :meth:`acquire` takes it or raises; :meth:`release` gives it back."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> dict[str, Any] | None:
        """Take the lock and write this process's details into it.

        Returns the details a previous holder left (a stale lock: that process died without
        releasing it), or None. Raises :class:`RunLockedError` naming the holder's pid, host, start
        time and command when a live process holds the lock.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunLockedError(f"{self.run_dir} is being written by another run ({_holder_text(holder)}): wait for it "
                                     "to finish, or give this run another directory (hydra.run.dir=...)") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder released and removed the file between our open and flock: retry on the new file
        previous = _read_holder(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode())
        os.fsync(fd)
        self._fd = fd
        return previous

    def release(self) -> None:
        """Remove the lock file (while still holding it) and drop the lock; a no-op when not held."""
        if self._fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None


def stale_warning(run_dir: str | Path, previous: dict[str, Any]) -> str:
    """The warning printed when a run takes over the lock a dead process left in ``run_dir``."""
    return (f"took over the stale lock of {run_dir} left by a run that is no longer running ({_holder_text(previous)}); "
            "its outputs may be incomplete")
