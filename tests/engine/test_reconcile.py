"""One controller pass at a time, against a real Prometheus, with an in-memory store and traffic log.

A module-scoped Prometheus is backfilled (promtool) with 15-second samples of each
workflow's counters around ``T0``; the test clock moves through that history and
every tick queries it as of the clock (``time=``). Healthy workflows get 10,000
requests a minute with 1 % exceptions; ``regressing`` has one critical regression
at ``T0 + 1m``; ``wf-0`` .. ``wf-299`` are healthy around ``T0 + 2h`` only. An
unreachable Prometheus is a real closed port. The store and the traffic log stay
in memory (``fakes.py`` says why).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support.prometheus import require_prometheus

from gatectl.adapters.exposition import Recorder
from gatectl.core.status import GateRequests, GateStatus
from gatectl.demo.localprom import LocalPrometheus, SeriesSpec, render_openmetrics
from gatectl.engine.observe import quantize_window
from gatectl.engine.reconcile import ClientPool, Controller

from .fakes import T0, Clock, FakeStore, TrafficLog, gate

HEALTHY = ("triage", "good")
REGRESSING = "regressing"
MANY = 300
STEP = 15  # seconds between samples: the policies' default scrape_interval
PER_STEP = 2_500.0  # requests per sample step: 10,000 a minute
EXCEPTION_SHARE = 0.01


def _counters(
    workflow: str, *, start: timedelta, end: timedelta, regression_at: timedelta | None = None
) -> list[SeriesSpec]:
    """A workflow's canary counters, one sample every STEP seconds from T0+start to T0+end."""
    first = (T0 + start).timestamp()
    stamps = [first + STEP * n for n in range(int((end - start).total_seconds()) // STEP + 1)]
    regressed = None if regression_at is None else (T0 + regression_at).timestamp()

    def series(name: str, value: Any) -> SeriesSpec:
        labels = {"workflow": workflow, "track": "canary"}
        samples = [(t, float(value(n, t))) for n, t in enumerate(stamps)]
        return SeriesSpec(name=name, kind="counter", labels=labels, samples=samples)

    return [
        series("workflow_requests_total", lambda n, t: PER_STEP * n),
        series("workflow_exceptions_total", lambda n, t: PER_STEP * EXCEPTION_SHARE * n),
        series(
            "workflow_critical_regressions_total",
            lambda n, t: 1 if regressed is not None and t >= regressed else 0,
        ),
    ]


def history() -> str:
    series = []
    for workflow in HEALTHY:
        series += _counters(workflow, start=timedelta(minutes=-10), end=timedelta(hours=7))
    series += _counters(
        REGRESSING,
        start=timedelta(minutes=-10),
        end=timedelta(hours=7),
        regression_at=timedelta(minutes=1),
    )
    for i in range(MANY):
        series += _counters(f"wf-{i}", start=timedelta(minutes=55), end=timedelta(hours=2))
    return render_openmetrics(series)


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, promtool = require_prometheus()
    server = LocalPrometheus(
        tmp_path_factory.mktemp("reconcile-prometheus"), binary=binary, promtool=promtool
    )
    server.backfill(history())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Rig:
    def __init__(self, url: str, *gates: Any) -> None:
        self.clock = Clock()
        self.store = FakeStore()
        self.traffic = TrafficLog()
        self.queries: list[str] = []
        self.pool = ClientPool(url=url, on_query=lambda outcome, _: self.queries.append(outcome))
        for g in gates:
            self.store.add(g)
        self.controller = self.restart()

    def restart(self) -> Controller:
        """A new controller process on the same store (what a crash and restart is)."""
        self.controller = Controller(
            self.store,
            clients=self.pool,
            actuators=self.traffic,  # type: ignore[arg-type]
            recorder=Recorder(registry=CollectorRegistry()),
            clock=self.clock,
        )
        return self.controller

    def tick(self) -> Any:
        async def once() -> Any:
            try:
                return await self.controller.tick(force=True)
            finally:
                await self.pool.aclose()  # clients belong to this event loop

        return asyncio.run(once())

    def status(self, name: str) -> GateStatus:
        status = GateStatus.from_dict(self.store.statuses[f"default/{name}"])
        assert status is not None
        return status


def test_new_gate_starts_at_first_step_and_applies_its_share(prometheus_url: str) -> None:
    rig = Rig(prometheus_url, gate("triage", confidence="off"))  # point values: mechanics
    report = rig.tick()
    status = rig.status("triage")
    # a window of 0 s has no data yet: the first pass is warming up (a hold, still Progressing)
    assert (status.step, status.share, status.phase) == (1, 0.05, "Progressing")
    assert rig.traffic.applied == [("triage", 0.05)]
    assert report.decisions["default/triage"].action.value == "hold"
    assert status.step_started_at == rig.clock.now
    rig.clock.advance(minutes=1)
    report = rig.tick()
    assert rig.status("triage").phase == "Progressing"  # healthy so far, the window runs
    assert report.decisions["default/triage"].reasons == ("promotion window: 59m remaining",)
    assert rig.traffic.applied == [("triage", 0.05)]


def test_healthy_gate_walks_every_step_only_after_each_window(prometheus_url: str) -> None:
    rig = Rig(prometheus_url, gate("triage"))
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


def test_traffic_moves_before_status_records_the_step(prometheus_url: str) -> None:
    rig = Rig(prometheus_url, gate("triage"))
    rig.tick()
    rig.clock.advance(hours=1)
    writes_before = len(rig.store.writes)
    rig.tick()
    pending, committed = rig.store.writes[writes_before:]
    assert pending[1]["pending"]["share"] == 0.25
    assert pending[1]["step"] == 1
    assert "pending" not in committed[1]
    assert committed[1]["step"] == 2


def test_crash_between_traffic_and_status_completes_the_step_once_on_restart(
    prometheus_url: str,
) -> None:
    rig = Rig(prometheus_url, gate("triage"))
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


def test_crash_before_traffic_moved_repairs_traffic_then_commits(prometheus_url: str) -> None:
    rig = Rig(prometheus_url, gate("triage"))
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


def test_fallback_is_sticky_until_reset(prometheus_url: str) -> None:
    rig = Rig(prometheus_url, gate(REGRESSING))
    rig.tick()
    rig.clock.advance(minutes=2)  # the regression at T0 + 1m is inside the window
    rig.tick()
    status = rig.status(REGRESSING)
    assert (status.share, status.fallen_back, status.phase, status.step) == (
        0.0,
        True,
        "FallenBack",
        0,
    )
    assert rig.traffic.share(REGRESSING) == 0.0
    rig.clock.advance(hours=5)  # healthy ever since: the fallback stays
    rig.tick()
    assert rig.status(REGRESSING).share == 0.0
    rig.store.requests[f"default/{REGRESSING}"] = GateRequests(reset_token="t1", reset_by="alice")
    rig.tick()
    status = rig.status(REGRESSING)
    assert (status.step, status.share, status.fallen_back) == (1, 0.05, False)
    assert [h["action"] for h in status.history].count("reset") == 1
    assert next(h for h in status.history if h["action"] == "reset")["by"] == "alice"
    assert rig.traffic.share(REGRESSING) == 0.05
    rig.clock.advance(hours=1)
    rig.tick()
    assert rig.status(REGRESSING).share == 0.25  # a reset token acts once


def test_approval_holds_until_a_human_approves_and_is_recorded(prometheus_url: str) -> None:
    rig = Rig(
        prometheus_url,
        gate("triage", steps=[0.05, 0.6, 1.0], approval={"required_above": 0.5}, owner="ops"),
    )
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


def test_one_invalid_gate_never_stops_the_others(prometheus_url: str) -> None:
    rig = Rig(prometheus_url, gate("good"))
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


def test_prometheus_down_holds_and_never_promotes(prometheus_url: str) -> None:
    rig = Rig(prometheus_url, gate("triage", on_no_data="hold"))
    rig.tick()
    rig.clock.advance(minutes=1)
    rig.tick()  # a pass with data: nothing inconclusive so far
    unreachable = closed_port_url()
    rig.pool.url, reachable = unreachable, rig.pool.url
    for _ in range(3):
        rig.clock.advance(hours=1)
        rig.tick()
    status = rig.status("triage")
    assert (status.step, status.share) == (1, 0.05)
    assert status.inconclusive_count == 3
    assert f"cannot connect to {unreachable}: ConnectError" in (status.message or "")
    rig.pool.url = reachable
    rig.tick()
    assert rig.status("triage").step == 2


def test_status_conflict_is_retried_on_the_next_pass_without_losing_the_step(
    prometheus_url: str,
) -> None:
    rig = Rig(prometheus_url, gate("triage"))
    rig.tick()
    rig.clock.advance(hours=1)
    rig.store.conflict_next = 1
    report = rig.tick()
    assert "status_conflict" in report.errors["default/triage"]
    assert rig.status("triage").step == 1
    assert rig.traffic.share("triage") == 0.05  # nothing moved before the pending write
    rig.tick()
    assert rig.status("triage").step == 2


def test_new_revision_restarts_at_step_one(prometheus_url: str) -> None:
    rig = Rig(prometheus_url, gate("triage", revision="v1"))
    rig.tick()
    rig.clock.advance(hours=1)
    rig.tick()
    assert rig.status("triage").step == 2
    rig.store.add(gate("triage", revision="v2"))
    rig.tick()
    status = rig.status("triage")
    assert (status.step, status.share) == (1, 0.05)
    assert [h["action"] for h in status.history][-1] == "new-revision"  # then warming up


def test_paused_gate_is_not_evaluated_and_traffic_stays(prometheus_url: str) -> None:
    rig = Rig(prometheus_url, gate("triage"))
    rig.tick()
    rig.store.requests["default/triage"] = GateRequests(paused=True)
    rig.clock.advance(hours=2)
    report = rig.tick()
    assert rig.status("triage").phase == "Paused"
    assert rig.status("triage").step == 1
    assert "default/triage" not in report.decisions


def test_writes_only_when_something_changed(prometheus_url: str) -> None:
    # Point values: with confidence bounds a check may legitimately turn from undecided
    # to pass as requests accumulate, which is a change worth a write.
    rig = Rig(prometheus_url, gate("triage", confidence="off"))
    rig.tick()
    rig.clock.advance(minutes=1)
    rig.tick()  # the first pass with a minute of data
    writes = len(rig.store.writes)
    for _ in range(5):
        rig.clock.advance(minutes=1)
        rig.tick()  # more requests every minute, the same decision
    assert len(rig.store.writes) == writes


def queries_of_a_promoting_tick(url: str, gates: int) -> int:
    rig = Rig(url, *(gate(f"wf-{i}") for i in range(gates)))
    rig.tick()
    rig.queries.clear()
    rig.clock.advance(hours=2)
    report = rig.tick()
    assert len(report.decisions) == gates
    assert all(d.action.value == "promote" for d in report.decisions.values())
    assert rig.queries and set(rig.queries) == {"success"}
    return len(rig.queries)


def test_many_gates_are_read_with_a_handful_of_queries(prometheus_url: str) -> None:
    # one batched query per template and track, however many gates share it
    many = queries_of_a_promoting_tick(prometheus_url, MANY)
    assert many == queries_of_a_promoting_tick(prometheus_url, 2)
    # exceptions, requests, regressions, dispersion, the baseline's dispersion history
    # (pooled into the canary's), freshness, and the exposure check's baseline requests
    # and canary requests over its grace
    assert many <= 8


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


def test_traffic_that_cannot_move_is_said_in_status_and_one_warning_event(
    prometheus_url: str,
) -> None:
    rig = Rig(prometheus_url, gate("triage"))
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


def test_events_only_when_action_phase_or_share_changes(prometheus_url: str) -> None:
    rig = Rig(prometheus_url, gate(REGRESSING))
    rig.tick()
    rig.clock.advance(minutes=2)
    rig.tick()
    for _ in range(3):
        rig.clock.advance(minutes=5)
        rig.tick()  # sticky fallback: other evidence, same decision
    reasons = [reason for _, reason, _ in rig.store.events]
    assert reasons.count("FellBack") == 1


def test_conditions_flip_once_with_their_transition_time(prometheus_url: str) -> None:
    rig = Rig(prometheus_url, gate("triage"))
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


def test_completion_is_announced_once(prometheus_url: str) -> None:
    rig = Rig(prometheus_url, gate("triage", steps=[0.05, 1.0]))
    rig.tick()
    for _ in range(4):
        rig.clock.advance(hours=1)
        rig.tick()
    reasons = [reason for _, reason, _ in rig.store.events]
    assert reasons.count("Promoted") == 1
    assert reasons.count("Complete") == 1
