"""The state file of file mode: one JSON document, replaced atomically, edited under a lock.

A write goes to a temporary file in the same directory, is flushed and
fsynced, then renamed over the old file (and the directory fsynced), so a
crash at any instant leaves the old state or the new one, never a torn file.
Read-modify-write cycles hold ``FILE.lock`` (``flock``), so the controller and
``gatectl approve`` never lose each other's changes. ``FILE.leader`` is held
by the one controller process that may act.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from gatectl.errors import UsageError

__all__ = ["LeaderLock", "StateFile", "atomic_write_json"]

T = TypeVar("T")
FORMAT_VERSION = 1


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` so that readers see the old or the new file."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateFile:
    """``{"version": 1, "gates": {KEY: {"status": {...}, "requests": {...}}}}``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def read(self) -> dict[str, Any]:
        """The whole document (an empty one when the file does not exist yet)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"version": FORMAT_VERSION, "gates": {}}
        except OSError as exc:
            raise UsageError(f"cannot read state file {self.path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"state file {self.path} is not valid JSON (line {exc.lineno}): {exc.msg}"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("gates"), dict):
            raise UsageError(f"state file {self.path} is not a gatectl state file")
        return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Read, apply ``change`` (which edits the document in place), write atomically."""
        with self._locked():
            data = self.read()
            result = change(data)
            atomic_write_json(self.path, data)
            return result

    def gate(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        """The entry of ``key`` in ``data``, created empty when missing."""
        gates: dict[str, Any] = data.setdefault("gates", {})
        entry: dict[str, Any] = gates.setdefault(key, {})
        return entry


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
