"""One gate's failure stays on that gate: the pass goes on and the loop stays healthy.

Control flow only: observations come straight from a table (no PromQL), the
store is in memory and fails on cue for one gate. The same faults against the
test API server are in tests/e2e/test_operator_kube.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gatectl.adapters.exposition import ERROR_REASONS, Recorder
from gatectl.core.status import GateStatus
from gatectl.engine.actuators import ActuatorError
from gatectl.engine.reconcile import ClientPool, error_reason
from gatectl.engine.stores import GateEntry, Held
from gatectl.errors import (
    ClusterError,
    ConflictError,
    ForbiddenError,
    GatectlError,
    NotFoundError,
    PolicyError,
    QueryError,
    ServerError,
    TooManyRequestsError,
)

from .fakes import Clock, FakeStore, TableController, TrafficLog, gate


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(ActuatorError("configmap x: refused"), "actuator_error", id="actuator"),
        pytest.param(ConflictError("modified", status=409), "status_conflict", id="409"),
        pytest.param(ForbiddenError("forbidden", status=403), "api_forbidden", id="403"),
        pytest.param(ForbiddenError("unauthorized", status=401), "api_forbidden", id="401"),
        pytest.param(NotFoundError("gone", status=404), "api_not_found", id="404"),
        pytest.param(ClusterError("invalid", status=422), "api_rejected", id="422"),
        pytest.param(ClusterError("bad request", status=400), "api_rejected", id="400"),
        pytest.param(ServerError("boom", status=500), "api_unavailable", id="500"),
        pytest.param(ServerError("unavailable", status=503), "api_unavailable", id="503"),
        pytest.param(TooManyRequestsError("slow down", status=429), "api_unavailable", id="429"),
        pytest.param(ClusterError("timed out", status=None), "api_unavailable", id="timeout"),
        pytest.param(QueryError("refused"), "query_error", id="query"),
        pytest.param(PolicyError("bad"), "gate_error", id="other-gatectl-error"),
        pytest.param(GatectlError("x"), "gate_error", id="gatectl-error"),
        pytest.param(KeyError("step"), "internal", id="bug"),
        pytest.param(ZeroDivisionError("division by zero"), "internal", id="another-bug"),
    ],
)
def test_each_failure_is_counted_under_its_own_reason(error: BaseException, reason: str) -> None:
    assert error_reason(error) == reason
    assert reason in ERROR_REASONS


class FailingStore(FakeStore):
    """Fails every status write of one gate with ``error``."""

    def __init__(self, failing: str, error: BaseException) -> None:
        super().__init__()
        self.failing = failing
        self.error = error

    def write_status(self, entry: GateEntry, status: Any) -> GateEntry:
        if entry.name == self.failing:
            raise self.error
        return super().write_status(entry, status)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(
            ForbiddenError("releasegates/status is forbidden", status=403),
            "api_forbidden",
            id="403",
        ),
        pytest.param(
            NotFoundError("releasegates g0 not found", status=404), "api_not_found", id="404"
        ),
        pytest.param(
            ClusterError("status.share: Invalid value", status=422), "api_rejected", id="422"
        ),
        pytest.param(
            ServerError("etcdserver: request timed out", status=500), "api_unavailable", id="500"
        ),
        pytest.param(ClusterError("read timed out", status=None), "api_unavailable", id="timeout"),
        pytest.param(RuntimeError("a bug in a store"), "internal", id="bug"),
    ],
)
def test_a_gate_whose_status_cannot_be_written_never_stops_nine_others(
    error: BaseException, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = FailingStore("g0", error)
    for index in range(10):
        store.add(gate(f"g{index}"))
    clock = Clock()
    registry = CollectorRegistry()
    traffic = TrafficLog()
    controller = TableController(
        store,
        clients=ClientPool(),
        actuators=traffic,  # type: ignore[arg-type]
        recorder=Recorder(registry=registry),
        clock=clock,
    )

    reports = []
    for _ in range(3):
        reports.append(asyncio.run(controller.tick(force=True)))
        clock.advance(hours=1)

    for report in reports:
        assert set(report.errors) == {"default/g0"}
        assert report.errors["default/g0"].startswith(f"{reason}: ")
    for index in range(1, 10):
        status = GateStatus.from_dict(store.statuses[f"default/g{index}"])
        assert status is not None
        assert (status.step, status.share) == (3, 1.0)
    assert "default/g0" not in store.statuses
    assert traffic.share("g0") == 0.05  # its first share was applied; nothing after that
    assert controller.last_tick is not None
    count = registry.get_sample_value(
        "gatectl_evaluation_errors_total",
        {"namespace": "default", "gate": "g0", "workflow": "g0", "reason": reason},
    )
    assert count == 3
    said = [r for r in caplog.records if "g0" in r.getMessage() and r.levelname == "WARNING"]
    assert len(said) == 1, [r.getMessage() for r in said]  # the same failure is said once


def test_a_tick_whose_listing_fails_still_counts_as_a_live_loop() -> None:
    class DownStore(FakeStore):
        def list_gates(self) -> list[GateEntry]:
            raise ServerError("the API server is down", status=503)

    controller = TableController(
        DownStore(),
        clients=ClientPool(),
        actuators=TrafficLog(),  # type: ignore[arg-type]
        recorder=Recorder(registry=CollectorRegistry()),
    )
    with pytest.raises(ServerError):
        asyncio.run(controller.tick(force=True))
    assert controller.last_tick is not None


def test_a_held_gate_is_counted_as_invalid_state_and_its_traffic_lowered() -> None:
    """A gate whose stored state is not trusted is not a bad spec: its own reason."""

    class HoldingStore(FakeStore):
        def list_gates(self) -> list[GateEntry]:
            held = Held(message="state.db: gate g0: checksum", share=0.05, lower_to=0.05)
            return [replace(e, held=held) if e.name == "g0" else e for e in super().list_gates()]

    store = HoldingStore()
    store.add(gate("g0"))
    store.add(gate("g1"))
    registry = CollectorRegistry()
    traffic = TrafficLog()
    controller = TableController(
        store,
        clients=ClientPool(),
        actuators=traffic,  # type: ignore[arg-type]
        recorder=Recorder(registry=registry),
        clock=Clock(),
    )
    report = asyncio.run(controller.tick(force=True))

    ids = {"namespace": "default", "gate": "g0", "workflow": "g0"}
    errors = {
        reason: registry.get_sample_value(
            "gatectl_evaluation_errors_total", {**ids, "reason": reason}
        )
        for reason in ("invalid_spec", "invalid_state")
    }
    assert errors == {"invalid_spec": 0.0, "invalid_state": 1.0}
    assert report.errors == {"default/g0": "state.db: gate g0: checksum"}
    assert traffic.share("g0") == 0.05
    assert store.events == [("default/g0", "InvalidState", "state.db: gate g0: checksum")]


def test_on_a_pool_at_most_in_flight_gates_are_under_way_at_once() -> None:
    """A pass of many slow writes holds a bounded number of gates' work, not the fleet's."""
    from gatectl.engine.workers import WorkerPool

    controller = TableController(
        FakeStore(),
        clients=ClientPool(),
        actuators=TrafficLog(),  # type: ignore[arg-type]
        recorder=Recorder(registry=CollectorRegistry()),
    )
    pool = WorkerPool(2)
    controller.io, controller.in_flight = pool, 3
    under_way, most = 0, 0

    async def step(item: int) -> int:
        nonlocal under_way, most
        under_way += 1
        most = max(most, under_way)
        await asyncio.sleep(0.01)
        under_way -= 1
        if item == 5:
            raise RuntimeError("a bug in one gate's step")
        return item * 2

    try:
        results = asyncio.run(controller._each(step, list(range(10))))
    finally:
        pool.close()
    assert results == [0, 2, 4, 6, 8, None, 12, 14, 16, 18]
    assert most == 3
