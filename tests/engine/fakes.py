"""In-memory stand-ins for the controller's edges: a store, a Prometheus, a traffic log, a clock."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gatectl.adapters.prometheus import Sample
from gatectl.core.status import GateRequests
from gatectl.engine.stores import GateEntry
from gatectl.errors import ConflictError, QueryError
from gatectl.policy import Gate, GateSpec

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def gate(name: str, **spec: Any) -> Gate:
    body: dict[str, Any] = {
        "canary_traffic": 0.05,
        "steps": [0.05, 0.25, 1.0],
        "promotion_window": "1h",
        "evaluation_interval": "1m",
        "min_samples": 100,
        "success_criteria": {"exception_rate": "<= 0.04", "critical_regressions": "== 0"},
        "rollback_trigger": ["exception_rate > 0.06", "critical_regressions > 0"],
    }
    body.update(spec)
    return Gate(name=name, namespace="default", spec=GateSpec.model_validate(body), source="test")


@dataclass
class FakeStore:
    """A Store in memory; counts writes and can be told to conflict or to 'crash'."""

    gates: dict[str, Gate | str] = field(default_factory=dict)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: dict[str, GateRequests] = field(default_factory=dict)
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    conflict_next: int = 0
    crash_on_write: int | None = None
    """Raise on the N-th write from now (a process dying mid-pass)."""

    def add(self, item: Gate | str, name: str | None = None) -> None:
        key = f"default/{item.name if isinstance(item, Gate) else name}"
        self.gates[key] = item

    def list_gates(self) -> list[GateEntry]:
        entries = []
        for key, item in self.gates.items():
            namespace, _, name = key.partition("/")
            entries.append(
                GateEntry(
                    key=key,
                    namespace=namespace,
                    name=name,
                    gate=item if isinstance(item, Gate) else None,
                    error=item if isinstance(item, str) else None,
                    status=dict(self.statuses.get(key, {})),
                    requests=self.requests.get(key, GateRequests()),
                )
            )
        return entries

    def write_status(self, entry: GateEntry, status: Mapping[str, Any]) -> GateEntry:
        if self.conflict_next:
            self.conflict_next -= 1
            raise ConflictError("the object has been modified", status=409)
        if self.crash_on_write is not None:
            self.crash_on_write -= 1
            if self.crash_on_write < 0:
                self.crash_on_write = None
                raise KeyboardInterrupt("simulated crash")
        self.statuses[entry.key] = dict(status)
        self.writes.append((entry.key, dict(status)))
        return replace(entry, status=dict(status))

    def record_event(self, entry: GateEntry, *, reason: str, message: str, warning: bool) -> None:
        self.events.append((entry.key, reason, message))


class TrafficLog:
    """An actuator that records every share it is asked to apply, and can fail on demand."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, float]] = []
        self.fail = False
        self.kubernetes = False

    def apply(self, gate: Gate, *, share: float) -> None:
        from gatectl.engine.actuators import ActuatorError

        if self.fail:
            raise ActuatorError("configmap default/x: connection refused")
        self.applied.append((gate.name, share))

    def share(self, name: str) -> float | None:
        shares = [s for n, s in self.applied if n == name]
        return shares[-1] if shares else None


_WORKFLOW = re.compile(r'workflow=~?"([^"]*)"')
_SERIES = re.compile(r"(workflow_[a-z_]+?)(?:_total)?\{")


class FakePrometheus:
    """Answers the built-in queries (single and batched) from per-workflow values."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], float] = {}
        self.down = False
        self.queries: list[str] = []

    def set(
        self, workflow: str, *, requests: float, exceptions: float = 0.0, regressions: float = 0.0
    ) -> None:
        self.values[(workflow, "workflow_requests")] = requests
        self.values[(workflow, "workflow_exceptions")] = exceptions
        self.values[(workflow, "workflow_critical_regressions")] = regressions

    async def query(self, promql: str, *, at: datetime) -> list[Sample]:
        self.queries.append(promql)
        if self.down:
            raise QueryError("cannot connect to http://127.0.0.1:9: connection refused")
        series = _SERIES.search(promql)
        matcher = _WORKFLOW.search(promql)
        assert series is not None
        assert matcher is not None
        if "=~" in promql:
            names = matcher.group(1).strip("^$()").replace("\\\\", "\\").split("|")
            names = [re.sub(r"\\(.)", r"\1", n) for n in names]
        else:
            names = [matcher.group(1)]
        samples = []
        for name in names:
            value = self.values.get((name, series.group(1)))
            if value is not None:
                samples.append(Sample(labels={"workflow": name}, value=value))
        return samples

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> FakePrometheus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
