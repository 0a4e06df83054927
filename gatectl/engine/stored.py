"""Reading file mode's state store back: rows judged before they are trusted.

A row's requests and the gate's journal are verified (checksum, shape), then
``gatectl.core.statecheck.judge`` decides whether the status can be used or
the gate is held. ``FileStore`` does this with the gate's policy (its steps,
its traffic file); ``gatectl status`` and friends without it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gatectl.core.statecheck import (
    Hold,
    Traffic,
    checksum,
    hold_for,
    judge,
    record_problem,
    requests_problem,
)
from gatectl.core.timeparse import format_time
from gatectl.engine.statestore import Row, StateStore
from gatectl.policy.models import Gate

__all__ = [
    "StoredGate",
    "describe",
    "held_view",
    "hold_record",
    "judge_row",
    "label",
    "read_journal",
    "read_requests",
    "released_status",
    "stored_gates",
]


def label(namespace: str, name: str) -> str:
    """How messages name a gate: ``name`` in the default namespace, else ``namespace/name``."""
    return name if namespace == "default" else f"{namespace}/{name}"


def read_requests(row: Row | None) -> tuple[dict[str, Any], str | None]:
    """A row's requests, and what is wrong with them (checksum, shape)."""
    if row is None or row.requests is None:
        return {}, None
    if row.requests_checksum != checksum(row.requests):
        return {}, "stored requests (approve, reset, pause) fail their checksum"
    try:
        body = json.loads(row.requests)
    except ValueError:
        return {}, "stored requests are not valid JSON"
    problem = requests_problem(body)
    if problem:
        return {}, f"stored requests: {problem}"
    return dict(body), None


def read_journal(entries: Sequence[Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Verified journal records, newest first, and a problem if the newest is damaged."""
    records: list[dict[str, Any]] = []
    problem = None
    for index, (digest, text) in enumerate(entries):
        body: Any = None
        if digest == checksum(text):
            try:
                body = json.loads(text)
            except ValueError:
                body = None
        if body is None or record_problem(body) is not None:
            if index == 0:
                problem = "the journal's last record is damaged"
            continue
        records.append(body)
    return records, problem


def hold_record(row: Row | None) -> dict[str, Any] | None:
    """The hold the controller recorded on a row (``{}`` if unreadable, ``None`` if none)."""
    if row is None or row.hold is None:
        return None
    try:
        body = json.loads(row.hold)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def judge_row(
    row: Row | None,
    journal_entries: Sequence[Any],
    *,
    traffic: Traffic,
    steps: Sequence[float] | None,
    now: datetime,
) -> Mapping[str, Any] | Hold | None:
    """``statecheck.judge`` of a stored row, with its journal and requests verified first."""
    journal, journal_problem = read_journal(journal_entries)
    _, problem = read_requests(row)
    if journal_problem or problem:
        return hold_for(journal_problem or problem or "", journal=journal, traffic=traffic)
    return judge(
        text=row.status if row else None,
        digest=row.checksum if row else None,
        journal=journal,
        traffic=traffic,
        steps=steps,
        now=now,
    )


def released_status(gate: Gate | None, hold: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """What a held gate restarts from once `gatectl reset` was run.

    Nothing in it moves traffic: ``prepare`` sees a reset token newer than the
    one recorded with the hold and starts the gate again at step 1.
    """
    body: dict[str, Any] = {
        "phase": "Invalid",
        "step": 0,
        "share": 0.0,
        "fallenBack": True,
        "stepStartedAt": format_time(now),
        "revision": (gate.revision or "") if gate is not None else "",
        "inconclusiveCount": 0,
        "history": [],
        "conditions": [],
    }
    if isinstance(hold.get("resetToken"), str):
        body["lastReset"] = hold["resetToken"]
    return body


@dataclass(frozen=True)
class StoredGate:
    """A gate as ``gatectl status`` shows it: its status, or why it is held."""

    key: str
    status: Mapping[str, Any]
    requests: Mapping[str, Any]
    held: str | None = None
    hold: Mapping[str, Any] | None = None


def describe(row: Row, journal_entries: Sequence[Any], *, file: str, now: datetime) -> StoredGate:
    """One stored gate, judged without its policy (its steps and traffic file unknown).

    A hold the controller recorded (it did know them) is shown as recorded.
    """
    namespace, _, name = row.key.partition("/")
    verdict = judge_row(row, journal_entries, traffic=Traffic(), steps=None, now=now)
    recorded = hold_record(row)
    requests, _ = read_requests(row)
    message = None
    if isinstance(verdict, Hold):
        message = verdict.message(file=file, gate=label(namespace, name))
    if recorded is not None:
        message = str(recorded.get("message") or message or "held")
    if message is None:
        return StoredGate(row.key, dict(verdict) if isinstance(verdict, Mapping) else {}, requests)
    share = (recorded or {}).get("share", verdict.share if isinstance(verdict, Hold) else None)
    since = (recorded or {}).get("since")
    view = held_view(message, share=share, since=since if isinstance(since, str) else None)
    return StoredGate(row.key, view, requests, message, recorded)


def held_view(message: str, *, share: Any, since: str | None) -> dict[str, Any]:
    """What a held gate shows as its status: phase Invalid, the message, a ``Held`` condition.

    Only shown, never stored as a status: the stored one stays as it was found.
    """
    view: dict[str, Any] = {"phase": "Invalid", "message": message}
    if isinstance(share, int | float) and not isinstance(share, bool):
        view["share"] = share
    condition = {"type": "Held", "status": "True", "reason": "InvalidState", "message": message}
    if since:
        condition["lastTransitionTime"] = since
    view["conditions"] = [condition]
    return view


def stored_gates(state: StateStore, *, now: datetime) -> list[StoredGate]:
    """Every gate in the store, as ``describe`` shows it, sorted by key."""
    journal = state.journal()
    return [
        describe(row, journal.get(row.key, []), file=state.name, now=now)
        for row in sorted(state.rows(), key=lambda r: r.key)
    ]
