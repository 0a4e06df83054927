"""The decision log: records chained, kept in an on-disk buffer, delivered in the background.

``AuditLog.append`` links a record into the chain (``gatectl.core.chain``)
and appends it to the buffer: segment files ``DIR/segment-<first seq>.jsonl``,
one canonical JSON record a line. That is all a decision waits for (a write
to a local file; ``sync`` fsyncs, which the controller calls before it moves
traffic and after each pass). One worker thread per sink (file, stdout,
HTTP) reads the buffer and delivers, retrying with a backoff for as long as it
takes; a sink's position is ``DIR/cursor-<sink>`` (``SEQ:SHA256``), so after
a crash delivery resumes after the last record the sink took — the file sink
also reads its own last line, so it never writes a record twice. A segment is
deleted once every sink has it. The buffer is bounded (``capacity`` bytes):
when it is full, the oldest segment goes, and the records it held that a sink
had not taken are counted as dropped for that sink. Nothing is dropped while
the buffer has room.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from gatectl.core.chain import Head, canonical, digest, link, parse_head
from gatectl.engine.auditsinks import (
    Backoff,
    DeliveryError,
    FileSink,
    Sink,
    StdoutSink,
    last_record,
)
from gatectl.engine.filestate import fsync_dir
from gatectl.errors import GatectlError, UsageError

__all__ = [
    "DEFAULT_CAPACITY",
    "AuditLog",
    "AuditMetrics",
    "Backoff",
    "DeliveryError",
    "FileSink",
    "Sink",
    "StdoutSink",
    "last_record",
]

log = logging.getLogger("gatectl.audit")

DEFAULT_CAPACITY = 256 * 1024 * 1024
"""Bytes the buffer holds before the oldest undelivered records are dropped."""
SEGMENT_BYTES = 4 * 1024 * 1024
LINGER = 0.5
"""Seconds a worker lets records gather before it delivers them (a pass appends many)."""


class AuditMetrics(Protocol):
    """What the log reports (``gatectl.adapters.exposition.Recorder`` implements it)."""

    def audit_sinks(self, sinks: Sequence[str]) -> None: ...
    def count_audit(self, sink: str, outcome: str, records: int = 1) -> None: ...
    def set_audit_backlog(self, sink: str, records: int) -> None: ...
    def set_audit_head(self, seq: int, sha256: str) -> None: ...


@dataclass
class _Segment:
    path: Path
    first: int
    offsets: list[int] = field(default_factory=list)
    size: int = 0

    @property
    def last(self) -> int:
        return self.first + len(self.offsets) - 1


@dataclass
class _Lane:
    """One sink's worker: where it stands and its thread."""

    sink: Sink
    cursor: int = 0
    cursor_hash: str = ""
    thread: threading.Thread | None = None


class AuditLog:
    """The controller's one chain: ``append`` records, workers deliver them to ``sinks``."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        sinks: Sequence[Sink],
        capacity: int = DEFAULT_CAPACITY,
        segment_bytes: int = SEGMENT_BYTES,
        backoff: Backoff | None = None,
        metrics: AuditMetrics | None = None,
        linger: float = LINGER,
    ) -> None:
        self.directory = Path(directory)
        self.linger = linger
        self._hurry = 0
        self.capacity = capacity
        self.segment_bytes = segment_bytes
        self.backoff = backoff or Backoff()
        self.metrics = metrics
        self._lanes = [_Lane(sink) for sink in sinks]
        self._segments: list[_Segment] = []
        self._writer: BinaryIO | None = None
        self._head: Head | None = None
        self._unsynced = False
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._lock_handle: Any = None
        self.opened = False
        if metrics is not None:
            metrics.audit_sinks([lane.sink.name for lane in self._lanes])

    # -- opening ------------------------------------------------------------------------------

    @property
    def head(self) -> Head | None:
        """The newest record of the chain."""
        return self._head

    def open(self) -> None:
        """Lock the buffer, recover the chain head and each sink's position, start the workers."""
        if self.opened:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self.directory / "lock", "a+")  # noqa: SIM115 - held while open
        except OSError as exc:
            raise UsageError(f"audit buffer {self.directory}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UsageError(
                f"audit buffer {self.directory}: another gatectl process uses it"
            ) from None
        self._lock_handle = handle
        self._recover()
        self.opened = True
        for lane in self._lanes:
            lane.thread = threading.Thread(
                target=self._work, args=(lane,), name=f"audit-{lane.sink.name}", daemon=True
            )
            lane.thread.start()
        if self._head is not None and self.metrics is not None:
            self.metrics.set_audit_head(self._head.seq, self._head.sha256)

    def _recover(self) -> None:
        import json

        paths = sorted(
            self.directory.glob("segment-*.jsonl"), key=lambda p: int(p.stem.split("-")[1])
        )
        last: dict[str, Any] | None = None
        for path in paths:
            segment = _Segment(path, int(path.stem.split("-")[1]))
            data = path.read_bytes()
            offset = 0
            for raw in data.splitlines(keepends=True):
                if not raw.endswith(b"\n"):
                    break  # cut short by a crash: never acknowledged, so never referenced
                try:
                    record = json.loads(raw)
                except ValueError:
                    break
                segment.offsets.append(offset)
                offset += len(raw)
                last = record
            if offset < len(data):
                with open(path, "r+b") as handle:
                    handle.truncate(offset)
            segment.size = offset
            if segment.offsets:
                self._segments.append(segment)
            else:
                path.unlink()
        buffered = Head(int(last["seq"]), digest(last), "buffer") if last else None
        first = self._segments[0].first if self._segments else (buffered.seq + 1 if buffered else 1)
        heads = [buffered]
        for lane in self._lanes:
            held = [h for h in (lane.sink.holds(), self._read_cursor(lane)) if h is not None]
            best = max(held, key=lambda h: h.seq) if held else None
            lane.cursor = best.seq if best else first - 1
            lane.cursor_hash = best.sha256 if best else ""
            heads.append(best)
        known = [h for h in heads if h is not None]
        self._head = max(known, key=lambda h: h.seq) if known else None
        self._report_backlog()

    def _cursor_path(self, lane: _Lane) -> Path:
        return self.directory / f"cursor-{lane.sink.name}"

    def _read_cursor(self, lane: _Lane) -> Head | None:
        try:
            return parse_head(self._cursor_path(lane).read_text(encoding="ascii"))
        except (OSError, ValueError, UnicodeDecodeError):
            return None

    # -- appending ----------------------------------------------------------------------------

    def adopt(self, head: Head) -> None:
        """Continue from ``head`` if it is newer than ours (another replica led before us)."""
        with self._cond:
            if self._head is None or head.seq > self._head.seq:
                log.info("audit chain continues from seq %d (%s)", head.seq, head.source)
                self._head = Head(head.seq, head.sha256, "adopted")
                for lane in self._lanes:
                    if lane.cursor < head.seq and not self._segments:
                        lane.cursor = head.seq

    def append(self, body: Mapping[str, Any]) -> Head | None:
        """Chain ``body`` and buffer it; ``None`` (counted as dropped) if it cannot be buffered."""
        with self._cond:
            if not self.opened:
                for lane in self._lanes:
                    self._count(lane, "dropped")
                return None
            record, head = link(body, head=self._head)
            line = canonical(record) + b"\n"
            waiting = [self._backlog(lane) for lane in self._lanes]
            try:
                self._write(head.seq, line)
            except OSError as exc:
                log.error("audit record seq %d not buffered: %s", head.seq, exc.strerror or exc)
                for lane in self._lanes:
                    self._count(lane, "dropped")
                return None
            self._head = head
            self._enforce_capacity()
            self._report_backlog()
            full = [lane.sink.batch - 1 for lane in self._lanes]
            if any(n in (0, f) for n, f in zip(waiting, full, strict=True)):
                self._cond.notify_all()  # a sink was idle, or has a full batch now
        if self.metrics is not None:
            self.metrics.set_audit_head(head.seq, head.sha256)
        return head

    def _write(self, seq: int, line: bytes) -> None:
        segment = self._segments[-1] if self._segments else None
        if segment is None or segment.size >= self.segment_bytes or segment.last + 1 != seq:
            # A new segment when full, or when the chain continues from an adopted head.
            segment = _Segment(self.directory / f"segment-{seq}.jsonl", seq)
            self._segments.append(segment)
            self._close_writer()
        if self._writer is None:
            self._writer = open(segment.path, "ab")  # noqa: SIM115 - kept open
        self._writer.write(line)
        self._writer.flush()
        self._unsynced = True
        segment.offsets.append(segment.size)
        segment.size += len(line)

    def sync(self) -> None:
        """Make every buffered record durable (fsync)."""
        with self._cond:
            if self._writer is not None and self._unsynced:
                try:
                    os.fsync(self._writer.fileno())
                    self._unsynced = False
                except OSError as exc:
                    log.error("audit buffer not synced: %s", exc.strerror or exc)

    def _enforce_capacity(self) -> None:
        while len(self._segments) > 1 and sum(s.size for s in self._segments) > self.capacity:
            oldest = self._segments.pop(0)
            for lane in self._lanes:
                lost = oldest.last - max(lane.cursor, oldest.first - 1)
                if lost > 0:
                    self._count(lane, "dropped", lost)
                    lane.cursor = oldest.last
            log.error(
                "audit buffer full (%d bytes): records %d-%d dropped for sinks that lag",
                self.capacity,
                oldest.first,
                oldest.last,
            )
            oldest.path.unlink(missing_ok=True)

    # -- delivering ---------------------------------------------------------------------------

    def _work(self, lane: _Lane) -> None:
        failures = 0
        while True:
            with self._cond:
                while not self._stop.is_set() and not self._pending(lane):
                    self._cond.wait(timeout=1.0)
                self._linger(lane)
                if self._stop.is_set():
                    return
                lines, first = self._take(lane)
            try:
                lane.sink.deliver(lines)
            except GatectlError as exc:  # DeliveryError, or an adapter's QueryError
                failures += 1
                self._count(lane, "retried", len(lines))
                wait = self.backoff.delay(failures)
                level = logging.WARNING if failures in (1, 10, 100) else logging.DEBUG
                log.log(level, "audit sink %s: %s; retry #%d in %gs", lane.sink.name, exc,
                        failures + 1, wait)  # fmt: skip
                if self._stop.wait(wait):
                    return
                continue
            except Exception:
                log.exception("audit sink %s failed (a bug); retrying", lane.sink.name)
                if self._stop.wait(self.backoff.cap):
                    return
                continue
            failures = 0
            self._delivered(lane, first, lines)

    def _linger(self, lane: _Lane) -> None:
        """Let records gather for up to ``linger`` seconds (unless a batch is full or
        ``flush`` waits): one delivery, fsync and cursor write for many records."""
        deadline = time.monotonic() + self.linger
        while not self._stop.is_set() and not self._hurry and self._backlog(lane) < lane.sink.batch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(timeout=left)

    def _backlog(self, lane: _Lane) -> int:
        return (self._segments[-1].last - lane.cursor) if self._segments else 0

    def _pending(self, lane: _Lane) -> bool:
        return bool(self._segments) and lane.cursor < self._segments[-1].last

    def _take(self, lane: _Lane) -> tuple[list[bytes], int]:
        """Up to ``batch`` records after the lane's cursor, from one segment of the buffer."""
        segment = next(s for s in self._segments if s.last > lane.cursor)
        first = max(lane.cursor + 1, segment.first)
        start = first - segment.first
        stop = min(len(segment.offsets), start + lane.sink.batch)
        with open(segment.path, "rb") as handle:
            handle.seek(segment.offsets[start])
            end = segment.offsets[stop] if stop < len(segment.offsets) else segment.size
            data = handle.read(end - segment.offsets[start])
        return data.splitlines(keepends=True), first

    def _delivered(self, lane: _Lane, first: int, lines: list[bytes]) -> None:
        import json

        seq = first + len(lines) - 1
        sha = digest(json.loads(lines[-1]))
        with self._cond:
            if seq > lane.cursor:
                lane.cursor, lane.cursor_hash = seq, sha
            self._save_cursor(lane)
            self._count(lane, "written", len(lines))
            self._trim()
            self._report_backlog()
            self._cond.notify_all()

    def _save_cursor(self, lane: _Lane) -> None:
        path = self._cursor_path(lane)
        temporary = path.with_name(path.name + ".tmp")
        try:
            temporary.write_text(f"{lane.cursor}:{lane.cursor_hash}\n", encoding="ascii")
            os.replace(temporary, path)
        except OSError as exc:
            log.warning("audit cursor of %s not saved: %s", lane.sink.name, exc.strerror or exc)

    def _trim(self) -> None:
        """Delete segments every sink has taken (never the one being written)."""
        floor = min((lane.cursor for lane in self._lanes), default=0)
        while len(self._segments) > 1 and self._segments[0].last <= floor:
            self._segments.pop(0).path.unlink(missing_ok=True)

    def _count(self, lane: _Lane, outcome: str, records: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.count_audit(lane.sink.name, outcome, records)

    def _report_backlog(self) -> None:
        if self.metrics is None:
            return
        last = self._segments[-1].last if self._segments else 0
        for lane in self._lanes:
            self.metrics.set_audit_backlog(lane.sink.name, max(0, last - lane.cursor))

    def backlog(self) -> dict[str, int]:
        """Records each sink has yet to take."""
        with self._cond:
            last = self._segments[-1].last if self._segments else 0
            return {lane.sink.name: max(0, last - lane.cursor) for lane in self._lanes}

    def flush(self, *, timeout: float, clock: Callable[[], float] | None = None) -> bool:
        """Wait up to ``timeout`` seconds for every sink to take every record; True if they did."""
        now = clock or time.monotonic
        deadline = now() + timeout
        with self._cond:
            self._hurry += 1
            self._cond.notify_all()
            try:
                while any(self._pending(lane) for lane in self._lanes):
                    left = deadline - now()
                    if left <= 0:
                        return False
                    self._cond.wait(timeout=min(left, 0.05))
            finally:
                self._hurry -= 1
        return True

    # -- closing ------------------------------------------------------------------------------

    def _close_writer(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.flush()
                os.fsync(self._writer.fileno())
                self._writer.close()
            self._writer = None

    def close(self, *, drain: float = 0.0) -> None:
        """Stop the workers (after up to ``drain`` seconds of delivery); keep what is buffered."""
        if not self.opened:
            return
        if drain > 0:
            self.flush(timeout=drain)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for lane in self._lanes:
            if lane.thread is not None:
                lane.thread.join(timeout=5.0)
            lane.sink.close()
        with self._cond:
            self._close_writer()
        with contextlib.suppress(OSError):
            fsync_dir(self.directory)
            self._lock_handle.close()
        self.opened = False
