"""Where gates and their status live: the Store interface and file mode's implementation.

The controller only sees ``Store``: list the gates (each valid, or invalid
with its message, or held because its stored state cannot be trusted), write
one gate's status (``ConflictError`` when it changed underneath), record an
event. File mode reads policies from a directory and keeps status in the
SQLite state store (``filestate``), trusting a stored status only after it
was judged (``stored``); Kubernetes mode (``kubestore``) reads ReleaseGate
objects and writes their ``status`` subresource.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gatectl.core.packed import pack_history, plain
from gatectl.core.statecheck import (
    Hold,
    Traffic,
    canonical,
    checksum,
    journal_record,
    record_steps,
    same_step,
    status_problem_free,
)
from gatectl.core.status import GateRequests, GateStatus, fallback_due
from gatectl.core.timeparse import format_time
from gatectl.engine.compact import compact
from gatectl.engine.filestate import read_traffic
from gatectl.engine.statestore import EventWrite, Row, StateStore, StatusWrite
from gatectl.engine.stored import (
    held_view,
    hold_record,
    judge_row,
    label,
    read_journal,
    read_requests,
    released_status,
)
from gatectl.errors import GatectlError
from gatectl.policy import load_policies
from gatectl.policy.models import Gate

__all__ = ["FileStore", "GateEntry", "Held", "Store", "requests_from_mapping"]

log = logging.getLogger("gatectl.controller")
_Loaded = tuple[str, str, Gate | None, str | None]
_Files = tuple[tuple[str, float, int], ...]


@dataclass(frozen=True, slots=True)
class Held:
    """A gate whose stored state is not trusted: not evaluated; traffic never moves up."""

    message: str
    share: float | None
    """The share it is held at (``None``: no record of it; traffic is left where it is)."""
    lower_to: float | None = None
    """Traffic must go down to this (it shows more than the last safe share)."""
    new: bool = True
    """The problem is reported for the first time: log it, record an event."""


@dataclass(frozen=True, slots=True)
class GateEntry:
    """One gate as a store sees it: the validated gate or why it is invalid, and its status."""

    key: str
    namespace: str
    name: str
    gate: Gate | None
    error: str | None
    status: Mapping[str, Any]
    requests: GateRequests = field(default_factory=GateRequests)
    handle: Any = None
    """Store-specific: the Kubernetes object (with its resourceVersion)."""
    held: Held | None = None
    """File mode: the stored state failed its checks; the gate is held until a reset."""


class Store(Protocol):
    """What the controller needs from where gates live."""

    def list_gates(self) -> list[GateEntry]:
        """Every gate, valid or not."""
        ...

    def write_status(self, entry: GateEntry, status: Mapping[str, Any]) -> GateEntry:
        """Persist ``status``; raises ``ConflictError`` if the gate changed since it was read."""
        ...

    def record_event(self, entry: GateEntry, *, reason: str, message: str, warning: bool) -> None:
        """Tell people that something changed (Kubernetes Event, or the state store's log)."""
        ...


_NO_REQUESTS = GateRequests()
"""Most gates have no request: one frozen instance for all of them."""


def requests_from_mapping(body: Mapping[str, Any]) -> GateRequests:
    """File-mode requests (``approve``/``reset``/``pause`` written by the CLI), validated."""
    if not body:
        return _NO_REQUESTS
    approve = body.get("approve") or {}
    reset = body.get("reset") or {}
    stop = body.get("fallback")
    stop = stop if isinstance(stop, Mapping) else {}
    return GateRequests(
        approved_step=approve.get("step"),
        approved_by=approve.get("by"),
        approved_at=approve.get("at"),
        reset_token=reset.get("token"),
        reset_by=reset.get("by"),
        paused=bool(body.get("paused", False)),
        fallback_token=stop.get("token"),
        fallback_by=stop.get("by"),
        fallback_reason=stop.get("reason"),
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _acted_fallback(row: Row | None) -> str | None:
    """The fallback token an untrusted stored status says was acted on, if it says one.

    Only ever used to not act twice on the same request: a token is the time
    ``gatectl fallback`` ran, so a status older than the request cannot name it.
    """
    if row is None or row.status is None:
        return None
    try:
        body = json.loads(row.status)
    except ValueError:
        return None
    token = body.get("lastFallback") if isinstance(body, dict) else None
    return token if isinstance(token, str) else None


def _load_each(files: _Files) -> tuple[list[Gate], list[tuple[str | None, str]]]:
    """File by file, so that a loader bug stops only the file that triggers it."""
    gates: list[Gate] = []
    problems: list[tuple[str | None, str]] = []
    seen: set[str] = set()
    for file, _, _ in files:
        try:
            result = load_policies([file])
        except Exception as exc:
            problems.append((file, f"{file}: cannot be loaded (a bug): {type(exc).__name__}"))
            continue
        problems += [(p.file, p.render()) for p in result.problems]
        for gate in result.gates:
            if gate.key in seen:
                problems.append((file, f"{file}: duplicate gate {gate.key!r}"))
                continue
            seen.add(gate.key)
            gates.append(gate)
    return gates, problems


class FileStore:
    """Policies from a directory; status in the SQLite state store, judged before it is used.

    Reads are incremental: the first pass reads every row; later passes read
    only the rows another process (``gatectl approve``…) changed, so a pass
    costs O(changed gates), and a write O(1).

    Writes are grouped: a status that moves no traffic and an event wait in
    memory (at most ``linger`` seconds, or ``batch`` writes) and are committed
    together in one transaction, before the next pass reads the store, before
    a durable write (a pending step: it and everything before it are fsynced
    before traffic moves), and at ``close``. A crash loses at most those
    waiting writes, each of which the next pass makes again from the stored
    status it would have replaced.
    """

    linger = 1.0
    """Seconds a write may wait to be committed with others (checked at each write)."""
    batch = 2000
    """Writes that wait at most before they are committed together."""

    def __init__(
        self,
        policies: str | os.PathLike[str],
        state_file: str | os.PathLike[str],
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.policies = Path(policies)
        self.state = StateStore(state_file)
        self.clock = clock
        self._cache_key: _Files | None = None
        self._loaded: list[_Loaded] = []
        self._version: int | None = None
        self._rows: dict[str, Row] = {}
        self._journal: dict[str, list[Any]] = {}
        self._verdicts: dict[str, tuple[tuple[int, int], Any]] = {}
        self._reported: dict[str, str] = {}
        self._statuses: list[tuple[StatusWrite, GateEntry, dict[str, Any]]] = []
        self._events: list[EventWrite] = []
        self._since = 0.0

    # -- policies -----------------------------------------------------------------------------

    def _policy_files(self) -> _Files:
        if self.policies.is_file():
            files = [self.policies]
        else:
            files = sorted(
                p for p in self.policies.glob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
        stats = []
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            stats.append((str(path), st.st_mtime, st.st_size))
        return tuple(stats)

    def _load(self) -> list[_Loaded]:
        key = self._policy_files()
        if key == self._cache_key:
            return self._loaded
        try:
            result = load_policies([str(self.policies)])
            gates, problems = result.gates, [(p.file, p.render()) for p in result.problems]
        except Exception:
            log.exception("loading %s failed (a bug); loading its files one by one", self.policies)
            gates, problems = _load_each(key)
        loaded: list[_Loaded] = [(g.namespace, g.name, g, None) for g in gates]
        known = {(g.namespace, g.name) for g in gates}
        by_file: dict[str, list[str]] = {}
        for file, message in problems:
            by_file.setdefault(file or "policies", []).append(message)
        for file, messages in by_file.items():
            name = Path(file).stem
            if ("default", name) in known:
                name = f"{name}-invalid"
            known.add(("default", name))
            more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
            loaded.append(("default", name, None, messages[0] + more))
        self._cache_key = key
        self._loaded = loaded
        return loaded

    # -- reading the store --------------------------------------------------------------------

    def _refresh(self) -> None:
        """Read what changed in the store since the last pass (everything the first time)."""
        self._follow_file()
        version = self.state.data_version()
        if version == self._version:
            return
        if self._version is None:
            self._rows = {row.key: row for row in self.state.rows()}
            self._journal = self.state.journal()
        else:
            stored = self.state.revisions()
            changed = [
                k for k, rev in stored.items() if k not in self._rows or self._rows[k].rev != rev
            ]
            gone = [k for k in self._rows if k not in stored]
            for key in gone:
                del self._rows[key]
            self._rows.update({row.key: row for row in self.state.rows(changed)})
            journal = self.state.journal([*changed, *gone])
            for key in (*changed, *gone):
                self._journal[key] = journal.get(key, [])
        self._version = version

    def _follow_file(self) -> None:
        """The store was deleted or replaced while running: write it again, or read the new one."""
        try:
            st = os.stat(self.state.path)
            identity: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            identity = None
        if identity == self.state.identity:
            return
        path, name = self.state.path, self.state.name
        self.state.close()
        # The WAL beside the path is the old file's: SQLite would replay it into the new one.
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        self.state = StateStore(path)
        if identity is None:
            log.warning("%s was deleted while the controller ran: written again from memory", name)
            self.state.restore([self._whole(row) for row in self._rows.values()], self._journal)
        else:
            log.warning("%s was replaced while the controller ran: reading it again", name)
        self._version = None
        self._verdicts.clear()

    def _traffic(self, gate: Gate | None) -> Traffic:
        traffic = gate.spec.traffic if gate is not None else None
        if traffic is None or traffic.kind != "file" or not traffic.path:
            return Traffic()
        return read_traffic(traffic.path)

    def _verdict(self, key: str, gate: Gate | None, row: Row | None) -> Any:
        basis = (row.rev if row else 0, id(gate))
        cached = self._verdicts.get(key)
        if cached is not None and cached[0] == basis:
            return cached[1]
        if row is not None and row.status is None and row.checksum is not None:
            row = self._rows[key] = next(iter(self.state.rows([key])), row)
        verdict = judge_row(
            row,
            self._journal.get(key, []),
            traffic=self._traffic(gate),
            steps=gate.spec.shares if gate is not None else None,
            now=self.clock(),
        )
        if type(verdict) is dict:
            # Kept until it changes: history packed, strings shared across gates.
            verdict = compact(pack_history(verdict))
        self._verdicts[key] = (basis, verdict)
        if isinstance(verdict, Mapping) and row is not None and row.status is not None:
            self._rows[key] = replace(row, status=None)  # kept once: parsed, as the verdict
        return verdict

    def list_gates(self) -> list[GateEntry]:
        """Every policy in the directory, with its judged status and requests."""
        loaded = self._load()
        try:
            self.flush()
            self._refresh()
        except GatectlError as exc:
            return [self._unavailable(item, str(exc)) for item in loaded]
        entries = []
        for namespace, name, gate, error in loaded:
            key = f"{namespace}/{name}"
            row = self._rows.get(key)
            verdict = self._verdict(key, gate, row)
            requests, _ = read_requests(row)
            entry = GateEntry(
                key=key,
                namespace=namespace,
                name=name,
                gate=gate,
                error=error,
                status=verdict if isinstance(verdict, Mapping) else {},
                requests=requests_from_mapping(requests),
            )
            if isinstance(verdict, Hold):
                entry = self._held(entry, verdict, row)
            entries.append(entry)
        return entries

    def _held(self, entry: GateEntry, hold: Hold, row: Row | None) -> GateEntry:
        message = hold.message(file=self.state.name, gate=label(entry.namespace, entry.name))
        stored = hold_record(row)
        token = entry.requests.reset_token
        if stored is not None and token and token != stored.get("resetToken"):
            return replace(entry, status=released_status(entry.gate, stored, self.clock()))
        stop = self._stop_from_hold(entry, hold, stored, message)
        if stop is not None:
            return stop
        new = (stored or {}).get("message") != message and self._reported.get(entry.key) != message
        if new:
            baseline = stored.get("resetToken") if stored is not None else token
            record = {
                "message": message,
                "share": hold.share,
                "resetToken": baseline,
                "since": format_time(self.clock()),
            }
            try:
                rev = self.state.write_hold(entry.key, record)
                self._remember(entry.key, rev, hold=canonical(record))
                self._verdicts[entry.key] = ((rev, id(entry.gate)), hold)
            except GatectlError as exc:
                log.warning("%s (the hold cannot be recorded: %s)", message, exc)
            self._reported[entry.key] = message
        held = Held(message=message, share=hold.share, lower_to=hold.lower_to, new=new)
        since = (stored or {}).get("since")
        view = held_view(message, share=hold.share, since=since if isinstance(since, str) else None)
        return replace(entry, status=view, held=held)

    def _stop_from_hold(
        self, entry: GateEntry, hold: Hold, stored: Mapping[str, Any] | None, message: str
    ) -> GateEntry | None:
        """A held gate a human asked to fall back (``gatectl fallback``): released to fall back.

        The stop is always honoured: the gate is given a status at the share it
        is held at, from which ``prepare`` falls it back (share 0, sticky until
        ``gatectl reset``, recorded with who asked in history, status and the
        audit log) and the controller writes it, which replaces the untrusted
        status and clears the hold. Traffic only goes down. ``None``: no fallback
        due (none asked, one acted on already, or a later reset cleared it).
        """
        requests = entry.requests
        if entry.gate is None or not requests.fallback_token:
            return None
        now = self.clock()
        since = (stored or {}).get("since")
        when = since if isinstance(since, str) else format_time(now)
        share = hold.share if hold.share is not None else 0.0
        journal, _ = read_journal(self._journal.get(entry.key, []))
        step = journal[0]["step"] if journal and journal[0]["share"] == share else 0
        baseline = stored.get("resetToken") if stored is not None else requests.reset_token
        body: dict[str, Any] = {
            "phase": "Invalid",
            "step": step,
            "share": share,
            "fallenBack": share == 0.0,
            "stepStartedAt": format_time(now),
            "revision": entry.gate.revision or "",
            "history": [{"time": when, "action": "held", "message": message, "share": hold.share}],
            "message": message,
        }
        acted = _acted_fallback(self._rows.get(entry.key))
        for name, value in (("lastReset", baseline), ("lastFallback", acted)):
            if isinstance(value, str):
                body[name] = value
        status = GateStatus.from_dict(body)
        if status is None or not fallback_due(status, requests):
            return None
        if (stored or {}).get("message") != message and self._reported.get(entry.key) != message:
            log.warning("%s; falling back as %s asked", message, requests.fallback_by or "unknown")
            self.record_event(entry, reason="InvalidState", message=message, warning=True)
            self._reported[entry.key] = message
        return replace(entry, status=body)

    def _unavailable(self, item: _Loaded, problem: str) -> GateEntry:
        namespace, name, gate, error = item
        key = f"{namespace}/{name}"
        message = f"{problem}; every gate is held, traffic left where it is"
        new = self._reported.get(key) != message
        self._reported[key] = message
        held = Held(message=message, share=None, new=new)
        return GateEntry(key, namespace, name, gate, error, {"phase": "Invalid"}, held=held)

    def _whole(self, row: Row) -> Row:
        """``row`` with its status text (the store is gone: rebuilt from what was written)."""
        cached = self._verdicts.get(row.key)
        if row.status is not None or row.checksum is None or cached is None:
            return row
        if cached[0][0] != row.rev or not isinstance(cached[1], Mapping):
            return row
        text = canonical(plain(cached[1]))
        return replace(row, status=text, checksum=checksum(text))

    def _remember(self, key: str, rev: int, **changes: Any) -> None:
        """Our own write: the cached row follows it, unless another process wrote in between."""
        old = self._rows.get(key) or Row(key, 0, None, None, None, None, None)
        if rev != old.rev + 1:
            self._version = -1  # read the store again at the next pass
        self._rows[key] = replace(old, rev=rev, **changes)

    # -- writing ------------------------------------------------------------------------------

    def write_status(self, entry: GateEntry, status: Mapping[str, Any]) -> GateEntry:
        """Replace the gate's status (with a journal record if its step moved); see ``flush``."""
        body = plain(status)  # JSON as written; kept (below) with its history packed again
        text = canonical(body)
        record: str | None = None
        cached = self._journal.get(entry.key, [])
        if status_problem_free(body):
            journal, _ = read_journal(cached)
            step = journal_record(body)
            if not journal or not same_step(step, journal[0]):
                previous = journal[0].get("steps") if journal else None
                current = entry.gate.spec.shares if entry.gate is not None else None
                step["steps"] = record_steps(body, current, previous)
                record = canonical(step)
        kept: dict[str, Any] = compact(pack_history(body))  # the gate's status until it changes
        self._statuses.append((StatusWrite(entry.key, text, record), entry, kept))
        if record is not None:
            self._journal[entry.key] = [(checksum(record), record), *cached][:3]
        self._reported.pop(entry.key, None)
        self._written(durable=bool(body.get("pending")))
        return replace(entry, status=kept, held=None)

    def record_event(self, entry: GateEntry, *, reason: str, message: str, warning: bool) -> None:
        """Append to the state store's event log (committed with the status writes)."""
        type_ = "Warning" if warning else "Normal"
        self._events.append(EventWrite(entry.key, type_, reason, message))
        self._written(durable=False)

    def _written(self, *, durable: bool) -> None:
        waiting = len(self._statuses) + len(self._events)
        if waiting == 1:
            self._since = time.monotonic()
        if durable or waiting >= self.batch or time.monotonic() - self._since >= self.linger:
            self.flush(durable=durable)

    def flush(self, *, durable: bool = False) -> None:
        """Commit every waiting write in one transaction (``durable``: fsynced)."""
        statuses, events = self._statuses, self._events
        if not statuses and not events:
            return
        self._statuses, self._events = [], []
        try:
            revs = self.state.write_batch([w for w, _, _ in statuses], events, durable=durable)
        except GatectlError:
            # Nothing written: forget what was cached of these gates; read the store again.
            for write, _, _ in statuses:
                self._verdicts.pop(write.key, None)
            self._version = None
            raise
        for (write, entry, body), rev in zip(statuses, revs, strict=True):
            # The text is not kept: its status is (as the verdict), and 10,000 gates'
            # texts would be 35-60 MB. A row judged again is read again (``_verdict``).
            self._remember(write.key, rev, status=None, checksum=checksum(write.text), hold=None)
            self._verdicts[write.key] = ((rev, id(entry.gate)), body)

    def close(self) -> None:
        """Commit what waits, close the state store."""
        try:
            self.flush()
        finally:
            self.state.close()
