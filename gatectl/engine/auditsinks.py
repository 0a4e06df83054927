"""The audit log's sinks (a file, standard output) and what every sink promises.

A sink takes canonical JSON lines, in order, and either takes a whole batch
or raises a ``GatectlError`` saying why not (the worker in
``gatectl.engine.audit`` tries again later). ``holds`` says what a sink
already has, when it can tell: the file sink reads its own last line (and
cuts off a line a crash left half-written), so a restart never writes a
record twice. The HTTP sink lives in ``gatectl.adapters.cloudevents``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from gatectl.core.chain import Head, digest
from gatectl.errors import GatectlError

__all__ = ["Backoff", "DeliveryError", "FileSink", "Sink", "StdoutSink", "last_record"]

log = logging.getLogger("gatectl.audit")


class DeliveryError(GatectlError):
    """A sink did not take a batch; it is tried again later."""


class Sink(Protocol):
    """Where records go. ``deliver`` takes canonical JSON lines (each ending in a newline)."""

    name: str
    batch: int
    """Records per ``deliver`` call at most."""

    def holds(self) -> Head | None:
        """The newest record the sink is known to have (``None``: unknown, use the cursor)."""
        ...

    def deliver(self, lines: Sequence[bytes]) -> None:
        """Take ``lines`` or raise a ``GatectlError`` saying why not (it is tried again)."""
        ...

    def close(self) -> None:
        """Release what the sink holds open."""
        ...


@dataclass(frozen=True)
class Backoff:
    """Waits between delivery attempts: ``first``, doubling, at most ``cap`` seconds."""

    first: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failed attempts in a row."""
        return float(min(self.cap, self.first * 2 ** max(0, failures - 1)))


def last_record(path: Path) -> tuple[Head | None, int]:
    """The last whole record of a JSON Lines file, and the length of the file up to it.

    A last line cut short (a crash mid-write) is not counted: the returned length
    ends before it, so a writer can cut it off and write the record again.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None, 0
    with handle:
        size = handle.seek(0, os.SEEK_END)
        end, chunk = size, 65536
        tail = b""
        while end > 0:
            start = max(0, end - chunk)
            handle.seek(start)
            tail = handle.read(end - start) + tail
            end = start
            if tail.count(b"\n") >= 2 or (end == 0 and tail):
                break
        whole = tail.rfind(b"\n") + 1
        good = size - (len(tail) - whole)
        lines = tail[:whole].splitlines()
        if not lines:
            return None, good
        try:
            record = json.loads(lines[-1])
        except ValueError:
            return None, good
        if not isinstance(record, dict) or type(record.get("seq")) is not int:
            return None, good
        return Head(record["seq"], digest(record), str(path)), good


class FileSink:
    """Appends to a JSON Lines file (fsynced per batch); never writes a record twice."""

    name = "file"
    batch = 1000

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._handle: BinaryIO | None = None

    def holds(self) -> Head | None:
        head, good = last_record(self.path)
        if self.path.exists() and good < self.path.stat().st_size:
            log.warning("%s: a last line cut short (a crash mid-write) is written again", self.path)
            with open(self.path, "r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())
        return head

    def deliver(self, lines: Sequence[bytes]) -> None:
        try:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self.path, "ab")  # noqa: SIM115 - kept open
            self._handle.write(b"".join(lines))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            self.close()
            raise DeliveryError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None


class StdoutSink:
    """Writes each record as one line on standard output (the controller logs on stderr)."""

    name = "stdout"
    batch = 1000

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self.stream = stream

    def holds(self) -> Head | None:
        return None

    def deliver(self, lines: Sequence[bytes]) -> None:
        stream = self.stream or sys.stdout.buffer
        try:
            stream.write(b"".join(lines))
            stream.flush()
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"cannot write to standard output: {exc}") from exc

    def close(self) -> None:
        return None
