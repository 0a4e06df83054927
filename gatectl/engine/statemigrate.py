"""A JSON state file of the previous format: read it, and turn it into the SQLite store.

The previous format was one JSON document (``{"version": 1, "gates": {KEY:
{"status", "requests"}}, "events": [...]}``). Migrating it writes the new
store beside it, keeps the JSON as ``FILE.bak`` (``FILE.json.bak`` when the
name does not end in ``.json``), then renames the new store over ``FILE``: a
crash at any point leaves the JSON file, and the next start migrates again.
Statuses are copied as they were; they are judged when first read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gatectl.core.statecheck import canonical, checksum
from gatectl.core.timeparse import format_time
from gatectl.engine.filestate import fsync_dir, read_regular
from gatectl.errors import UsageError

__all__ = ["fill_from_legacy", "migrate", "read_legacy"]

log = logging.getLogger("gatectl.controller")
_MAX = 1 << 30
_AWAY = "move it away to start afresh: see docs/operator.md, file mode"


def read_legacy(path: Path, name: str) -> Mapping[str, Any]:
    """The JSON document; ``UsageError`` (``name: ...``) when it is not a state file."""
    try:
        data = json.loads(read_regular(path, _MAX).decode("utf-8"))
    except UnicodeDecodeError:
        data = None
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{name}: a JSON state file of the previous format, not valid JSON"
            f" (line {exc.lineno}): {exc.msg}; {_AWAY}"
        ) from None
    except OSError as exc:
        raise UsageError(f"{name}: cannot read the state store: {exc.strerror or exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("gates"), dict):
        raise UsageError(
            f'{name}: not a gatectl state file (a JSON state file needs a "gates" object); {_AWAY}'
        )
    return data


def fill_from_legacy(
    db: sqlite3.Connection, data: Mapping[str, Any], *, schema: str, event_keep: int
) -> None:
    """Rows from the JSON document, as they were (they are checked when read).

    No journal is written: a migrated status is checked against its gate's steps
    and traffic file when first read, as nothing else records its rollout.
    """
    db.executescript(schema)
    now = format_time(datetime.now(UTC))
    db.execute("BEGIN")
    for key, stored in data["gates"].items():
        entry = stored if isinstance(stored, dict) else {"status": stored}
        texts = [
            canonical(entry[k]) if entry.get(k) is not None else None
            for k in ("status", "requests")
        ]
        sums = [checksum(t) if t is not None else None for t in texts]
        db.execute(
            "INSERT INTO gates (key, rev, checksum, requests_checksum, updated_at, requests,"
            " status) VALUES (?, 1, ?, ?, ?, ?, ?)",
            (str(key), sums[0], sums[1], now, texts[1], texts[0]),
        )
    for event in (data.get("events") or [])[-event_keep:]:
        if isinstance(event, dict):
            db.execute(
                "INSERT INTO events (time, gate, type, reason, message) VALUES (?, ?, ?, ?, ?)",
                tuple(str(event.get(k, "")) for k in ("time", "gate", "type", "reason", "message")),
            )
    db.execute("COMMIT")


def migrate(path: Path, name: str, *, schema: str, version: str, event_keep: int) -> Path:
    """Replace the JSON state file at ``path`` by the SQLite store; returns the backup's path."""
    data = read_legacy(path, name)
    backup = path.with_name(path.name + (".bak" if path.name.endswith(".json") else ".json.bak"))
    tmp = path.with_name(f".{path.name}.migrating")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=FULL")
        fill_from_legacy(db, data, schema=schema, event_keep=event_keep)
        db.execute("INSERT INTO meta VALUES ('format', ?)", (version,))
    finally:
        db.close()
    with open(backup, "wb") as handle:
        handle.write(read_regular(path, _MAX))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    log.warning(
        "%s: migrated the JSON state file of the previous format (%d gates) to the SQLite"
        " state store; the JSON file is kept as %s",
        name,
        len(data["gates"]),
        backup,
    )
    return backup
