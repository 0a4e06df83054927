"""In-memory stand-ins for the controller's edges that no real part can fault on demand.

Prometheus is not among them: the controller tests query a real one
(``tests/engine/test_reconcile.py``). What stays here is a store that conflicts
or "crashes" between two writes exactly where a test says, a traffic log that
fails when told to, and a clock the test moves. The real stores and actuators
have their own tests (``test_filestate.py``, ``test_actuators.py``, the e2e
operator tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gatectl.core.observations import Observation, ObservationSet
from gatectl.core.status import GateRequests
from gatectl.engine.reconcile import Controller
from gatectl.engine.stores import GateEntry
from gatectl.errors import ConflictError
from gatectl.policy import Gate, GateSpec

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves; a real Prometheus then answers as of that instant (``time=``)."""

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
    """A Store in memory; counts writes and can be told to conflict or to 'crash'.

    It stays a fake because a test needs a 409 on the very next status write, or the
    process to die between the pending write and the commit, and neither the file
    store nor the Kubernetes API does that on demand.
    """

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
    """An actuator that records every share it is asked to apply, and can fail on demand.

    It stays a fake because the tests need traffic that cannot move at a chosen pass;
    the real ConfigMap/HTTPRoute/Deployment actuators are tested in test_actuators.py.
    """

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


class TableController(Controller):
    """Observations from a table: every gate healthy, 10,000 requests, 1 % exceptions."""

    async def _observe(self, work: Any, now: datetime) -> dict[str, Any]:
        healthy = ObservationSet(
            canary={
                "exception_rate": Observation(
                    "exception_rate", 0.01, numerator=100, denominator=10_000
                ),
                "critical_regressions": Observation("critical_regressions", 0.0),
            },
            samples=Observation("samples", 10_000),
        )
        return {entry.key: healthy for entry, _, _ in work}
