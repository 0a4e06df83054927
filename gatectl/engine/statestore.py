"""File mode's state store: one SQLite database (WAL), a row per gate, and a journal.

Writing a gate costs the same with 10 gates or 10,000: an upsert that
replaces that gate's row (its status as canonical JSON with a SHA-256
checksum) and, when the committed or pending step changed, appends to the
journal (the redundant record of the last safe share, for when a status
cannot be trusted). ``write_batch`` puts many such writes (and events) in one
transaction: the file store commits a pass's writes together rather than one
transaction each. SQLite's WAL makes each transaction atomic: a SIGKILL at
any instant leaves the old rows or the new ones. A status that records a
pending step is fsynced before traffic moves (``synchronous=FULL``); other
writes survive a crash of the process once committed (``NORMAL``). A JSON state file of the
previous format is migrated once, under ``FILE.lock``, keeping it as a backup.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gatectl.core.statecheck import canonical, checksum
from gatectl.core.timeparse import format_time
from gatectl.engine.filestate import FILE_KINDS, read_regular
from gatectl.engine.statemigrate import fill_from_legacy, migrate, read_legacy
from gatectl.errors import UsageError

__all__ = [
    "EVENT_KEEP",
    "FORMAT_VERSION",
    "JOURNAL_KEEP",
    "EventWrite",
    "Row",
    "StateStore",
    "StatusWrite",
]

log = logging.getLogger("gatectl.controller")
FORMAT_VERSION = "2"
JOURNAL_KEEP = 20
"""Journal records kept per gate (the newest decide; older ones are history)."""
EVENT_KEEP = 1000
_SQLITE = b"SQLite format 3\x00"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gates (
    key TEXT PRIMARY KEY,
    rev INTEGER NOT NULL DEFAULT 0,
    checksum TEXT,
    requests_checksum TEXT,
    updated_at TEXT NOT NULL,
    hold TEXT,
    requests TEXT,
    status TEXT
);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gate TEXT NOT NULL,
    at TEXT NOT NULL,
    checksum TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_by_gate ON journal (gate, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    gate TEXT NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class StatusWrite:
    """A gate's new status (canonical JSON) and, when its step moved, a journal record."""

    key: str
    text: str
    record: str | None = None


@dataclass(frozen=True, slots=True)
class EventWrite:
    """One entry of the event log."""

    gate: str
    type_: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Row:
    """One gate's row as stored (texts unparsed: the checksums are over them)."""

    key: str
    rev: int
    status: str | None
    checksum: str | None
    requests: str | None
    requests_checksum: str | None
    hold: str | None


def _now() -> str:
    return format_time(datetime.now(UTC))


def _decode(raw: bytes) -> str:
    # Damaged bytes must reach the checksum (and fail it), not raise while reading.
    return raw.decode("utf-8", "surrogateescape")


class StateStore:
    """The SQLite state store at ``path`` (a JSON state file is migrated on first open)."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.readonly = readonly
        self.migrated_from: Path | None = None
        self.legacy = False
        """Read-only view of a JSON state file of the previous format (not migrated)."""
        self._db: sqlite3.Connection | None = None
        self.identity: tuple[int, int] | None = None
        self._open()

    # -- opening ------------------------------------------------------------------------------

    def _fail(self, message: str) -> UsageError:
        return UsageError(f"{self.name}: {message}")

    def _kind(self) -> str:
        """``missing``, ``sqlite``, ``empty`` or ``json``; raises for anything else."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "missing"
        except OSError as exc:
            raise self._fail(f"cannot read the state store: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            kind = FILE_KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise self._fail(f"is {kind}, not a state store file")
        try:
            head = read_regular(self.path, 16)
        except OSError as exc:
            raise self._fail(f"cannot read the state store: {exc.strerror or exc}") from None
        if head == _SQLITE:
            return "sqlite"
        if not head:
            return "empty"
        if head.lstrip()[:1] in (b"{", b"["):
            return "json"
        raise self._fail(
            "not a gatectl state store (neither SQLite nor a JSON state file of the previous"
            " format); move it away to start afresh: see docs/operator.md, file mode"
        )

    def _open(self) -> None:
        kind = self._kind()
        if kind in ("missing", "empty") and self.readonly:
            self._db = self._connect(":memory:")
            self._db.executescript(_SCHEMA)
            self.identity = None
            return
        if kind == "json":
            if self.readonly:
                self._db = self._connect(":memory:")
                data = read_legacy(self.path, self.name)
                fill_from_legacy(self._db, data, schema=_SCHEMA, event_keep=EVENT_KEEP)
                self.legacy = True
                return
            with self._locked():
                if self._kind() == "json":
                    self.migrated_from = migrate(
                        self.path,
                        self.name,
                        schema=_SCHEMA,
                        version=FORMAT_VERSION,
                        event_keep=EVENT_KEEP,
                    )
        if kind == "empty":
            log.warning("%s is empty: no gate has a stored state", self.name)
        if not self.readonly:
            self._check_writable()
        self._db = self._connect(str(self.path))
        try:
            version = self._prepare(new=kind in ("missing", "empty") or self.migrated_from)
        except sqlite3.Error as exc:
            raise self._fail(f"cannot use the state store: {exc}") from None
        if version != FORMAT_VERSION:
            if version is None:
                raise self._fail("an SQLite database, but not a gatectl state store")
            raise self._fail(f"state store format {version!r}; this gatectl reads only 2")
        st = os.stat(self.path)
        self.identity = (st.st_dev, st.st_ino)

    def _prepare(self, *, new: object) -> str | None:
        """The store's format version (``None``: not a gatectl store); a new one is set up."""
        db = self.db
        db.execute("PRAGMA synchronous=NORMAL")
        tables = {str(n) for (n,) in db.execute("SELECT name FROM sqlite_master")}
        if "meta" not in tables and not new:
            return None
        if not self.readonly:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (FORMAT_VERSION,))
        found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        return str(found[0]) if found else None

    def _check_writable(self) -> None:
        directory = self.path.parent
        if not directory.is_dir():
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self._fail(f"cannot create its directory: {exc.strerror}") from None
        for where in (directory, self.path):
            if where.exists() and not os.access(where, os.R_OK | os.W_OK):
                raise self._fail(f"cannot write the state store: permission denied ({where})")

    def _connect(self, target: str) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(target, timeout=10.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._fail(f"cannot open the state store: {exc}") from None
        db.text_factory = _decode
        return db

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    # -- reading ------------------------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection (``UsageError`` once closed)."""
        if self._db is None:
            raise self._fail("the state store is closed")
        return self._db

    def _query(self, what: str, sql: str, params: Any = ()) -> list[Any]:
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._fail(f"cannot {what}: {exc}") from None

    def data_version(self) -> int:
        """Changes when another process commits to the store."""
        return int(self._query("read", "PRAGMA data_version")[0][0])

    def revisions(self) -> dict[str, int]:
        """Every stored gate's key and row revision (cheap: no status is read)."""
        return {str(k): int(r) for k, r in self._query("read", "SELECT key, rev FROM gates")}

    def rows(self, keys: list[str] | None = None) -> list[Row]:
        """The rows of ``keys`` (all rows when ``None``)."""
        query = "SELECT key, rev, status, checksum, requests, requests_checksum, hold FROM gates"
        if keys is None:
            found = self._query("read", query)
        else:
            found = []
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found += self._query("read", f"{query} WHERE key IN ({marks})", chunk)
        return [Row(str(r[0]), int(r[1]), *r[2:]) for r in found]

    def journal(self, keys: list[str] | None = None, *, newest: int = 3) -> dict[str, list[Any]]:
        """The ``newest`` journal entries per gate, newest first: (checksum, record text)."""
        query = (
            "SELECT gate, checksum, record FROM (SELECT gate, checksum, record, id, row_number()"
            " OVER (PARTITION BY gate ORDER BY id DESC) AS n FROM journal{where})"
            " WHERE n <= ? ORDER BY gate, id DESC"
        )
        result: dict[str, list[Any]] = {}
        chunks = [None] if keys is None else [keys[i : i + 500] for i in range(0, len(keys), 500)]
        for chunk in chunks:
            where = "" if chunk is None else f" WHERE gate IN ({','.join('?' * len(chunk))})"
            sql = query.format(where=where)
            for gate, digest, record in self._query(
                "read the journal", sql, [*(chunk or []), newest]
            ):
                result.setdefault(str(gate), []).append((digest, record))
        return result

    # -- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; ``durable``: fsynced before it returns."""
        db = self.db
        try:
            db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._fail(f"cannot write: {exc}") from None
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._fail(f"cannot write: {exc}") from None
            raise

    def write_status(self, key: str, text: str, *, record: str | None, durable: bool) -> int:
        """Replace ``key``'s status (clearing any hold); append ``record`` to its journal.

        ``text`` is the status's canonical JSON, ``record`` a journal record's;
        ``durable``: fsynced before returning (a pending step, before traffic moves).
        """
        (rev,) = self.write_batch([StatusWrite(key, text, record)], [], durable=durable)
        return rev

    def write_batch(
        self, statuses: list[StatusWrite], events: list[EventWrite], *, durable: bool
    ) -> list[int]:
        """Every write of ``statuses`` (in order) and ``events`` in one transaction.

        Returns each status write's new row revision. All or nothing: a crash
        leaves every row as it was before, or every row written.
        """
        now = _now()
        revs: list[int] = []
        with self.transaction(durable=durable) as db:
            for write in statuses:
                key = write.key
                db.execute(
                    "INSERT INTO gates (key, rev, checksum, updated_at, status)"
                    " VALUES (?, 1, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET rev = rev + 1,"
                    " checksum = excluded.checksum, updated_at = excluded.updated_at,"
                    " status = excluded.status, hold = NULL",
                    (key, checksum(write.text), now, write.text),
                )
                (rev,) = db.execute("SELECT rev FROM gates WHERE key = ?", (key,)).fetchone()
                revs.append(int(rev))
                if write.record is not None:
                    db.execute(
                        "INSERT INTO journal (gate, at, checksum, record) VALUES (?, ?, ?, ?)",
                        (key, now, checksum(write.record), write.record),
                    )
                    db.execute(
                        "DELETE FROM journal WHERE gate = ? AND id <= (SELECT id FROM journal"
                        " WHERE gate = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (key, key, JOURNAL_KEEP),
                    )
            if events:
                db.executemany(
                    "INSERT INTO events (time, gate, type, reason, message) VALUES (?, ?, ?, ?, ?)",
                    [(now, e.gate, e.type_, e.reason, e.message) for e in events],
                )
                (last,) = db.execute("SELECT max(id) FROM events").fetchone()
                db.execute("DELETE FROM events WHERE id <= ?", (int(last or 0) - EVENT_KEEP,))
        return revs

    def restore(self, rows: list[Row], journal: Mapping[str, list[Any]]) -> None:
        """Write rows and journal entries (newest first) read earlier, as they were."""
        now = _now()
        with self.transaction(durable=True) as db:
            for row in rows:
                db.execute(
                    "INSERT OR REPLACE INTO gates (key, rev, checksum, requests_checksum,"
                    " updated_at, hold, requests, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.key,
                        row.rev,
                        row.checksum,
                        row.requests_checksum,
                        now,
                        row.hold,
                        row.requests,
                        row.status,
                    ),
                )
            for gate, entries in journal.items():
                for digest, record in reversed(entries):
                    db.execute(
                        "INSERT INTO journal (gate, at, checksum, record) VALUES (?, ?, ?, ?)",
                        (gate, now, digest, record),
                    )

    def update_requests(
        self, key: str, change: Callable[[Row], tuple[Mapping[str, Any], str | None]]
    ) -> None:
        """Replace ``key``'s requests with what ``change(row)`` returns (and a hold, if any).

        Raises ``UsageError`` naming the known gates when there is no row for ``key``.
        """
        columns = "key, rev, status, checksum, requests, requests_checksum, hold"
        with self.transaction(durable=True) as db:
            found = db.execute(f"SELECT {columns} FROM gates WHERE key = ?", (key,)).fetchone()
            if found is None:
                known = [str(k) for (k,) in db.execute("SELECT key FROM gates ORDER BY key")]
                shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
                raise self._fail(f"no gate {key} (known: {shown or 'none yet'})")
            requests, hold = change(Row(str(found[0]), int(found[1]), *found[2:]))
            text = canonical(requests)
            db.execute(
                "UPDATE gates SET requests = ?, requests_checksum = ?, rev = rev + 1,"
                " hold = coalesce(?, hold) WHERE key = ?",
                (text, checksum(text), hold, key),
            )

    def write_hold(self, key: str, hold: Mapping[str, Any]) -> int:
        """Record that ``key`` is held (its status row, if any, is left as it is)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO gates (key, rev, updated_at, hold) VALUES (?, 1, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET rev = rev + 1, hold = excluded.hold",
                (key, _now(), canonical(hold)),
            )
            (rev,) = db.execute("SELECT rev FROM gates WHERE key = ?", (key,)).fetchone()
        return int(rev)

    def add_event(self, *, gate: str, type_: str, reason: str, message: str) -> None:
        """Append to the event log (the newest ``EVENT_KEEP`` are kept)."""
        self.write_batch([], [EventWrite(gate, type_, reason, message)], durable=False)

    def close(self) -> None:
        """Close the connection (a WAL checkpoint happens here)."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
