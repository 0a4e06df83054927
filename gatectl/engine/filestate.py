"""File mode's files: the traffic file written atomically, the leader lock, safe reads.

``atomic_write_json`` writes a file so that readers see the old or the new
one, never a torn file (the ``file`` actuator's traffic file). ``FILE.leader``
is held by the one controller process that may act on a state store
(``statestore``). Reads never wait on a FIFO or a device.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from gatectl.core.statecheck import Traffic, traffic_from_text

__all__ = [
    "FILE_KINDS",
    "LeaderLock",
    "atomic_write_json",
    "atomic_write_text",
    "fsync_dir",
    "read_regular",
    "read_traffic",
]

FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}
"""How a path that is not a regular file is named in messages."""


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` so that readers see the old or the new file."""
    atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True) + "\n")


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, durably.

    A temporary file in the same directory is written, fsynced, renamed over
    ``path`` and the directory fsynced; ``mode`` sets the new file's permissions.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_regular(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file; never waits on a FIFO or a device."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise IsADirectoryError(
                f"not a regular file ({FILE_KINDS.get(stat.S_IFMT(mode), '?')})"
            )
        with open(fd, "rb", closefd=False) as handle:
            return handle.read(limit)
    finally:
        os.close(fd)


def read_traffic(path: str | os.PathLike[str]) -> Traffic:
    """What a ``file`` actuator's file shows: its share, or missing, or unreadable."""
    try:
        raw = read_regular(Path(path), 65536)
    except FileNotFoundError:
        return Traffic("missing")
    except OSError:
        return Traffic("unreadable")
    return traffic_from_text(raw.decode("utf-8", "replace"))


class LeaderLock:
    """An exclusive, non-blocking ``flock`` on ``FILE.leader``: one acting controller per file."""

    def __init__(self, state_path: str | os.PathLike[str]) -> None:
        path = Path(state_path)
        self.path = path.with_name(path.name + ".leader")
        self._handle: Any = None

    def try_acquire(self) -> bool:
        """True when this process holds (or just took) the lock."""
        if self._handle is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        """Give the lock up (also happens when the process dies)."""
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
