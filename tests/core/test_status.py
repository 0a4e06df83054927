"""The persisted status: round trips, phases, history bounds, two-phase steps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from engine.fakes import T0, gate

from gatectl.core.decide import decide
from gatectl.core.observations import Observation, ObservationSet
from gatectl.core.status import (
    HISTORY_LIMIT,
    GateRequests,
    GateStatus,
    apply_decision,
    commit_pending,
    gate_state,
    phase_of,
    prepare,
)


def observed(
    exceptions: float = 100, requests: float = 10_000, regressions: float = 0
) -> ObservationSet:
    rate = Observation(
        "exception_rate", exceptions / requests, numerator=exceptions, denominator=requests
    )
    return ObservationSet(
        canary={
            "exception_rate": rate,
            "critical_regressions": Observation("critical_regressions", regressions),
        },
        samples=Observation("samples", requests),
    )


def test_status_round_trips_through_its_dict() -> None:
    g = gate("triage")
    status = prepare(None, g, GateRequests(), now=T0)
    again = GateStatus.from_dict(status.to_dict())
    assert again == status


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty"),
        pytest.param(
            {"step": "x", "share": 0.1, "stepStartedAt": "2026-11-20T12:00:00Z", "revision": "r"},
            id="bad-step",
        ),
        pytest.param(
            {"step": 1, "share": 0.1, "stepStartedAt": "yesterday", "revision": "r"}, id="bad-time"
        ),
    ],
)
def test_unusable_status_reads_as_none(body: dict[str, object]) -> None:
    assert GateStatus.from_dict(body) is None


def test_history_keeps_the_last_twenty_changes() -> None:
    g = gate("triage")
    status = prepare(None, g, GateRequests(), now=T0)
    for minute in range(50):
        now = T0 + timedelta(minutes=minute)
        obs = observed(exceptions=100 if minute % 2 else 500)  # hold / fail alternate
        decision = decide(g.spec, obs, gate_state(status, GateRequests()), now=now)
        status = commit_pending(apply_decision(status, decision, g, now=now).status, now=now)
        if status.fallen_back:
            status = prepare(status, g, GateRequests(reset_token=str(minute)), now=now)
    assert len(status.history) == HISTORY_LIMIT


def test_promotion_is_pending_until_committed() -> None:
    g = gate("triage")
    status = prepare(None, g, GateRequests(), now=T0)
    later = T0 + timedelta(hours=1)
    decision = decide(g.spec, observed(), gate_state(status, GateRequests()), now=later)
    transition = apply_decision(status, decision, g, now=later)
    assert transition.new_share == 0.25
    assert transition.status.step == 1
    assert transition.status.pending == {
        "step": 2,
        "share": 0.25,
        "decidedAt": "2026-11-20T13:00:00Z",
        "fallenBack": False,
        "action": "promote",
    }
    moved = later + timedelta(seconds=7)  # traffic moved a little after the decision
    committed = commit_pending(transition.status, now=moved)
    assert (committed.step, committed.share, committed.step_started_at) == (2, 0.25, moved)
    assert commit_pending(committed, now=moved + timedelta(hours=1)) == committed


def test_fallback_records_the_deterministic_path_as_step_zero() -> None:
    g = gate("triage")
    status = prepare(None, g, GateRequests(), now=T0)
    decision = decide(g.spec, observed(regressions=1), gate_state(status, GateRequests()), now=T0)
    committed = commit_pending(apply_decision(status, decision, g, now=T0).status, now=T0)
    assert (committed.step, committed.share, committed.fallen_back) == (0, 0.0, True)
    state = gate_state(committed, GateRequests())
    assert (state.step, state.fallen_back) == (-1, True)
    again = decide(g.spec, observed(), state, now=T0 + timedelta(hours=9))
    assert (again.action.value, again.next_share) == ("fallback", 0.0)
    assert apply_decision(committed, again, g, now=T0).new_share is None


@pytest.mark.parametrize(
    ("step", "at", "approved"),
    [
        pytest.param(2, "2026-11-20T12:30:00Z", True, id="next-step-during-this-rollout"),
        pytest.param(3, "2026-11-20T12:30:00Z", False, id="not-the-next-step"),
        pytest.param(2, "2026-11-20T11:59:00Z", False, id="given-before-this-rollout-began"),
        pytest.param(2, None, False, id="no-time-no-approval"),
        pytest.param(2, "yesterday", False, id="unreadable-time"),
    ],
)
def test_approval_counts_only_for_the_next_step_of_this_rollout(
    step: int, at: str | None, approved: bool
) -> None:
    status = prepare(None, gate("triage"), GateRequests(), now=T0)
    requests = GateRequests(approved_step=step, approved_at=at)
    assert gate_state(status, requests).approved is approved


def test_a_reset_makes_earlier_approvals_stale() -> None:
    g = gate("triage")
    approval = GateRequests(approved_step=2, approved_at="2026-11-20T12:30:00Z")
    status = prepare(None, g, GateRequests(), now=T0)
    assert gate_state(status, approval).approved
    later = T0 + timedelta(hours=2)
    reset = prepare(
        status,
        g,
        GateRequests(reset_token="r1", approved_step=2, approved_at="2026-11-20T12:30:00Z"),
        now=later,
    )
    assert reset.rollout_started_at == later
    assert not gate_state(reset, approval).approved


@pytest.mark.parametrize(
    ("exceptions", "hours", "phase"),
    [
        pytest.param(100, 0.5, "Progressing", id="healthy-in-window"),
        pytest.param(500, 2, "Holding", id="criterion-failing"),
        pytest.param(100, 2, "Progressing", id="promoting"),
        pytest.param(700, 2, "FallenBack", id="trigger"),
    ],
)
def test_phase_of(exceptions: float, hours: float, phase: str) -> None:
    g = gate("triage")
    status = prepare(None, g, GateRequests(), now=T0)
    now = T0 + timedelta(hours=hours)
    decision = decide(
        g.spec, observed(exceptions=exceptions), gate_state(status, GateRequests()), now=now
    )
    assert phase_of(decision) == phase
