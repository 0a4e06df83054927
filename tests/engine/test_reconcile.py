"""One controller pass at a time, with an in-memory store, Prometheus and traffic log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gatectl.adapters.exposition import Recorder
from gatectl.core.status import GateRequests, GateStatus
from gatectl.engine.observe import quantize_window
from gatectl.engine.reconcile import ClientPool, Controller

from .fakes import Clock, FakePrometheus, FakeStore, TrafficLog, gate


class FixedPool(ClientPool):
    """A pool that hands out the fake Prometheus."""

    def __init__(self, prometheus: FakePrometheus) -> None:
        super().__init__()
        self.prometheus = prometheus

    def client(self, settings: Any) -> Any:
        return self.prometheus


class Rig:
    def __init__(self, *gates: Any) -> None:
        self.clock = Clock()
        self.store = FakeStore()
        self.prometheus = FakePrometheus()
        self.traffic = TrafficLog()
        self.registry = CollectorRegistry()
        for g in gates:
            self.store.add(g)
            self.prometheus.set(g.workflow, requests=10_000, exceptions=100)
        self.controller = self.restart()

    def restart(self) -> Controller:
        """A new controller process on the same store (what a crash and restart is)."""
        self.controller = Controller(
            self.store,
            clients=FixedPool(self.prometheus),
            actuators=self.traffic,  # type: ignore[arg-type]
            recorder=Recorder(registry=CollectorRegistry()),
            clock=self.clock,
        )
        return self.controller

    def tick(self) -> Any:
        return asyncio.run(self.controller.tick(force=True))

    def status(self, name: str) -> GateStatus:
        status = GateStatus.from_dict(self.store.statuses[f"default/{name}"])
        assert status is not None
        return status


def test_new_gate_starts_at_first_step_and_applies_its_share() -> None:
    rig = Rig(gate("triage"))
    report = rig.tick()
    status = rig.status("triage")
    assert (status.step, status.share, status.phase) == (1, 0.05, "Progressing")
    assert rig.traffic.applied == [("triage", 0.05)]
    assert report.decisions["default/triage"].action.value == "hold"
    assert status.step_started_at == rig.clock.now


def test_healthy_gate_walks_every_step_only_after_each_window() -> None:
    rig = Rig(gate("triage"))
    rig.tick()
    rig.clock.advance(minutes=59)
    rig.tick()
    assert rig.status("triage").share == 0.05
    rig.clock.advance(minutes=1)
    rig.tick()
    assert (rig.status("triage").step, rig.status("triage").share) == (2, 0.25)
    assert rig.status("triage").step_started_at == rig.clock.now
    rig.clock.advance(minutes=30)
    rig.tick()
    assert rig.status("triage").share == 0.25
    rig.clock.advance(minutes=30)
    rig.tick()
    status = rig.status("triage")
    assert (status.step, status.share, status.phase) == (3, 1.0, "Promoted")
    assert rig.traffic.applied == [("triage", 0.05), ("triage", 0.25), ("triage", 1.0)]


def test_traffic_moves_before_status_records_the_step() -> None:
    rig = Rig(gate("triage"))
    rig.tick()
    rig.clock.advance(hours=1)
    writes_before = len(rig.store.writes)
    rig.tick()
    pending, committed = rig.store.writes[writes_before:]
    assert pending[1]["pending"]["share"] == 0.25
    assert pending[1]["step"] == 1
    assert "pending" not in committed[1]
    assert committed[1]["step"] == 2


def test_crash_between_traffic_and_status_completes_the_step_once_on_restart() -> None:
    rig = Rig(gate("triage"))
    rig.tick()
    rig.clock.advance(hours=1)
    rig.store.crash_on_write = 1  # the pending write lands, the commit never does
    with pytest.raises(KeyboardInterrupt):
        rig.tick()
    assert rig.status("triage").pending is not None
    assert rig.traffic.share("triage") == 0.25
    rig.restart()
    rig.clock.advance(seconds=5)
    rig.tick()
    status = rig.status("triage")
    assert (status.step, status.share, status.pending) == (2, 0.25, None)
    # the window starts when the step is committed after traffic is (re)applied: the
    # restart's pass, never earlier, so no time at the old share counts towards it
    assert status.step_started_at == rig.clock.now
    assert [s for _, s in rig.traffic.applied].count(1.0) == 0


def test_crash_before_traffic_moved_repairs_traffic_then_commits() -> None:
    rig = Rig(gate("triage"))
    rig.tick()
    rig.clock.advance(hours=1)
    rig.traffic.fail = True
    rig.tick()
    assert rig.status("triage").pending is not None
    assert rig.status("triage").step == 1
    rig.traffic.fail = False
    rig.restart()
    rig.tick()
    assert (rig.status("triage").step, rig.status("triage").share) == (2, 0.25)


def test_fallback_is_sticky_until_reset() -> None:
    rig = Rig(gate("triage"))
    rig.tick()
    rig.prometheus.set("triage", requests=10_000, exceptions=100, regressions=1)
    rig.tick()
    status = rig.status("triage")
    assert (status.share, status.fallen_back, status.phase, status.step) == (
        0.0,
        True,
        "FallenBack",
        0,
    )
    assert rig.traffic.share("triage") == 0.0
    rig.prometheus.set("triage", requests=10_000, exceptions=100)
    rig.clock.advance(hours=5)
    rig.tick()
    assert rig.status("triage").share == 0.0
    rig.store.requests["default/triage"] = GateRequests(reset_token="t1", reset_by="alice")
    rig.tick()
    status = rig.status("triage")
    assert (status.step, status.share, status.fallen_back) == (1, 0.05, False)
    assert status.history[-2]["action"] == "reset"
    assert rig.traffic.share("triage") == 0.05
    rig.clock.advance(hours=1)
    rig.tick()
    assert rig.status("triage").share == 0.25  # a reset token acts once


def test_approval_holds_until_a_human_approves_and_is_recorded() -> None:
    rig = Rig(gate("triage", steps=[0.05, 0.6, 1.0], approval={"required_above": 0.5}, owner="ops"))
    rig.tick()
    rig.clock.advance(hours=1)
    rig.tick()
    assert rig.status("triage").phase == "AwaitingApproval"
    assert rig.status("triage").share == 0.05
    rig.store.requests["default/triage"] = GateRequests(
        approved_step=2, approved_by="bob", approved_at="2026-11-20T13:00:00Z"
    )
    rig.tick()
    status = rig.status("triage")
    assert status.share == 0.6
    assert any(h["action"] == "approved" and h["by"] == "bob" for h in status.history)


def test_one_invalid_gate_never_stops_the_others() -> None:
    rig = Rig(gate("good"))
    rig.store.add("policies/bad.yaml:3: spec.canary_traffic: must be > 0", name="bad")
    report = rig.tick()
    assert rig.store.statuses["default/bad"]["phase"] == "Invalid"
    assert "must be > 0" in rig.store.statuses["default/bad"]["message"]
    assert report.invalid == 1
    assert rig.status("good").step == 1
    rig.clock.advance(hours=1)
    rig.tick()
    assert rig.status("good").step == 2
    assert sum(1 for e in rig.store.events if e[1] == "InvalidSpec") == 1


def test_prometheus_down_holds_and_never_promotes() -> None:
    rig = Rig(gate("triage", on_no_data="hold"))
    rig.tick()
    rig.prometheus.down = True
    for _ in range(5):
        rig.clock.advance(hours=1)
        rig.tick()
    status = rig.status("triage")
    assert (status.step, status.share) == (1, 0.05)
    assert status.inconclusive_count == 5
    assert "connection refused" in (status.message or "")
    rig.prometheus.down = False
    rig.tick()
    assert rig.status("triage").step == 2


def test_status_conflict_is_retried_on_the_next_pass_without_losing_the_step() -> None:
    rig = Rig(gate("triage"))
    rig.tick()
    rig.clock.advance(hours=1)
    rig.store.conflict_next = 1
    report = rig.tick()
    assert "status_conflict" in report.errors["default/triage"]
    assert rig.status("triage").step == 1
    assert rig.traffic.share("triage") == 0.05  # nothing moved before the pending write
    rig.tick()
    assert rig.status("triage").step == 2


def test_new_revision_restarts_at_step_one() -> None:
    rig = Rig(gate("triage", revision="v1"))
    rig.tick()
    rig.clock.advance(hours=1)
    rig.tick()
    assert rig.status("triage").step == 2
    rig.store.add(gate("triage", revision="v2"))
    rig.tick()
    status = rig.status("triage")
    assert (status.step, status.share) == (1, 0.05)
    assert status.history[-2]["action"] == "new-revision"


def test_paused_gate_is_not_evaluated_and_traffic_stays() -> None:
    rig = Rig(gate("triage"))
    rig.tick()
    rig.store.requests["default/triage"] = GateRequests(paused=True)
    rig.clock.advance(hours=2)
    report = rig.tick()
    assert rig.status("triage").phase == "Paused"
    assert rig.status("triage").step == 1
    assert "default/triage" not in report.decisions


def test_writes_only_when_something_changed() -> None:
    rig = Rig(gate("triage"))
    rig.tick()
    writes = len(rig.store.writes)
    for _ in range(5):
        rig.clock.advance(minutes=1)
        rig.tick()
    assert len(rig.store.writes) == writes


def test_many_gates_are_read_with_a_handful_of_queries() -> None:
    gates = [gate(f"wf-{i}") for i in range(300)]
    rig = Rig(*gates)
    rig.tick()
    rig.prometheus.queries.clear()
    rig.clock.advance(hours=2)
    report = rig.tick()
    assert len(report.decisions) == 300
    assert all(d.action.value == "promote" for d in report.decisions.values())
    # exceptions, requests (rate + samples share one), regressions: one query each for all gates
    assert len(rig.prometheus.queries) <= 4


@pytest.mark.parametrize(
    ("seconds", "quantized"),
    [
        pytest.param(0.4, 1.0, id="at-least-one-second"),
        pytest.param(59.7, 59.0, id="seconds"),
        pytest.param(305.0, 300.0, id="ten-seconds-past-five-minutes"),
        pytest.param(7259.0, 7200.0, id="minutes-past-an-hour"),
    ],
)
def test_quantize_window(seconds: float, quantized: float) -> None:
    assert quantize_window(seconds) == quantized


def test_traffic_that_cannot_move_is_said_in_status_and_one_warning_event() -> None:
    rig = Rig(gate("triage"))
    rig.traffic.fail = True
    for _ in range(3):
        report = rig.tick()
        assert report.errors["default/triage"].startswith("actuator_error")
    status = rig.store.statuses["default/triage"]
    assert status["message"] == "traffic not moved: configmap default/x: connection refused"
    warnings = [e for e in rig.store.events if e[1] == "TrafficError"]
    assert len(warnings) == 1
    rig.traffic.fail = False
    rig.tick()
    assert rig.traffic.share("triage") == 0.05
    assert not rig.store.statuses["default/triage"]["message"].startswith("traffic not moved")


def test_events_only_when_action_phase_or_share_changes() -> None:
    rig = Rig(gate("triage"))
    rig.tick()
    rig.prometheus.set("triage", requests=10_000, exceptions=100, regressions=1)
    rig.tick()
    rig.prometheus.set("triage", requests=10_000, exceptions=100)
    for _ in range(3):
        rig.clock.advance(minutes=5)
        rig.tick()  # sticky fallback: other evidence, same decision
    reasons = [reason for _, reason, _ in rig.store.events]
    assert reasons.count("FellBack") == 1


def test_conditions_flip_once_with_their_transition_time() -> None:
    rig = Rig(gate("triage"))
    rig.tick()
    first = {c["type"]: c for c in rig.status("triage").conditions}
    assert first["Promoted"]["status"] == "False"
    rig.clock.advance(hours=1)
    rig.tick()
    rig.clock.advance(hours=1)
    rig.tick()
    conditions = {c["type"]: c for c in rig.status("triage").conditions}
    assert conditions["Promoted"]["status"] == "True"
    assert conditions["FallenBack"] == first["FallenBack"]  # unchanged, same transition time


def test_completion_is_announced_once() -> None:
    rig = Rig(gate("triage", steps=[0.05, 1.0]))
    rig.tick()
    for _ in range(4):
        rig.clock.advance(hours=1)
        rig.tick()
    reasons = [reason for _, reason, _ in rig.store.events]
    assert reasons.count("Promoted") == 1
    assert reasons.count("Complete") == 1
