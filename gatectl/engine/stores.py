"""Where gates and their status live: the Store interface and file mode's implementation.

The controller only sees ``Store``: list the gates (each valid, or invalid
with its message), write one gate's status (``ConflictError`` when it changed
underneath), record an event. File mode reads policies from a directory and
keeps status in one state file; Kubernetes mode (``kubestore``) reads
ReleaseGate objects and writes their ``status`` subresource.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gatectl.core.status import GateRequests
from gatectl.core.timeparse import format_time
from gatectl.engine.filestate import StateFile
from gatectl.policy import load_policies
from gatectl.policy.models import Gate

__all__ = ["FileStore", "GateEntry", "Store", "requests_from_mapping"]

log = logging.getLogger("gatectl.controller")
EVENT_LIMIT = 200


@dataclass(frozen=True)
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


class Store(Protocol):
    """What the controller needs from where gates live."""

    def list_gates(self) -> list[GateEntry]:
        """Every gate, valid or not."""
        ...

    def write_status(self, entry: GateEntry, status: Mapping[str, Any]) -> GateEntry:
        """Persist ``status``; raises ``ConflictError`` if the gate changed since it was read."""
        ...

    def record_event(self, entry: GateEntry, *, reason: str, message: str, warning: bool) -> None:
        """Tell people that something changed (Kubernetes Event, or the state file's log)."""
        ...


def requests_from_mapping(body: Mapping[str, Any]) -> GateRequests:
    """File-mode requests (``approve``/``reset``/``pause`` written by the CLI)."""
    approve = body.get("approve") or {}
    reset = body.get("reset") or {}
    step = approve.get("step")
    return GateRequests(
        approved_step=int(step) if step is not None else None,
        approved_by=approve.get("by"),
        approved_at=approve.get("at"),
        reset_token=reset.get("token"),
        reset_by=reset.get("by"),
        paused=bool(body.get("paused", False)),
    )


class FileStore:
    """Policies from a directory, status in an atomically replaced JSON state file."""

    def __init__(
        self, policies: str | os.PathLike[str], state_file: str | os.PathLike[str]
    ) -> None:
        self.policies = Path(policies)
        self.state = StateFile(state_file)
        self._cache_key: tuple[tuple[str, float, int], ...] | None = None
        self._loaded: list[tuple[str, str, Gate | None, str | None]] = []

    def _policy_files(self) -> tuple[tuple[str, float, int], ...]:
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
            except FileNotFoundError:
                continue
            stats.append((str(path), st.st_mtime, st.st_size))
        return tuple(stats)

    def _load(self) -> list[tuple[str, str, Gate | None, str | None]]:
        key = self._policy_files()
        if key == self._cache_key:
            return self._loaded
        result = load_policies([str(self.policies)])
        loaded: list[tuple[str, str, Gate | None, str | None]] = [
            (g.namespace, g.name, g, None) for g in result.gates
        ]
        known = {(g.namespace, g.name) for g in result.gates}
        for problem in result.problems:
            name = Path(problem.file).stem if problem.file else "policies"
            if ("default", name) in known:
                name = f"{name}-invalid"
            known.add(("default", name))
            loaded.append(("default", name, None, problem.render()))
        self._cache_key = key
        self._loaded = loaded
        return loaded

    def list_gates(self) -> list[GateEntry]:
        """Every policy in the directory, with its status and requests from the state file."""
        data = self.state.read()
        gates: Mapping[str, Any] = data.get("gates", {})
        entries = []
        for namespace, name, gate, error in self._load():
            key = f"{namespace}/{name}"
            stored = gates.get(key) or {}
            entries.append(
                GateEntry(
                    key=key,
                    namespace=namespace,
                    name=name,
                    gate=gate,
                    error=error,
                    status=stored.get("status") or {},
                    requests=requests_from_mapping(stored.get("requests") or {}),
                )
            )
        return entries

    def write_status(self, entry: GateEntry, status: Mapping[str, Any]) -> GateEntry:
        """Replace the gate's status in the state file (atomic, under the file lock)."""

        def change(data: dict[str, Any]) -> None:
            self.state.gate(data, entry.key)["status"] = dict(status)

        self.state.update(change)
        return replace(entry, status=dict(status))

    def record_event(self, entry: GateEntry, *, reason: str, message: str, warning: bool) -> None:
        """Append to the state file's event log (the last 200 are kept)."""
        event = {
            "time": format_time(datetime.now(UTC)),
            "gate": entry.key,
            "type": "Warning" if warning else "Normal",
            "reason": reason,
            "message": message,
        }

        def change(data: dict[str, Any]) -> None:
            events = data.setdefault("events", [])
            events.append(event)
            del events[:-EVENT_LIMIT]

        self.state.update(change)
