"""The stop button in the pure core: when a human fallback acts, what it does, and that it sticks."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from engine.fakes import T0, gate

from gatectl.core.decide import decide
from gatectl.core.observations import Action, Observation, ObservationSet
from gatectl.core.status import (
    GateRequests,
    GateStatus,
    apply_decision,
    fallback_due,
    gate_state,
    initial_status,
    prepare,
)

TOKEN = "2026-11-20T13:00:00.000001Z"
STOP = GateRequests(fallback_token=TOKEN, fallback_by="alice", fallback_reason="wrong answers")


def healthy() -> ObservationSet:
    rate = Observation("exception_rate", 0.001, numerator=10, denominator=10_000)
    return ObservationSet(
        canary={
            "exception_rate": rate,
            "critical_regressions": Observation("critical_regressions", 0.0),
        },
        samples=Observation("samples", 10_000),
    )


def at_step_two(revision: str | None = None) -> GateStatus:
    status = initial_status(gate("triage", revision=revision), now=T0)
    return replace(status, step=2, share=0.25, step_started_at=T0 + timedelta(minutes=30))


@pytest.mark.parametrize(
    ("status", "requests", "due"),
    [
        pytest.param(at_step_two(), GateRequests(), False, id="no-request"),
        pytest.param(at_step_two(), STOP, True, id="new-token"),
        pytest.param(replace(at_step_two(), last_fallback=TOKEN), STOP, False, id="acted-on"),
        pytest.param(
            replace(at_step_two(), history=({"action": "fallback-requested", "token": TOKEN},)),
            STOP,
            False,
            id="acted-on-as-history-says",
        ),
        pytest.param(replace(at_step_two(), pending={"step": 3}), STOP, False, id="pending"),
        pytest.param(
            replace(at_step_two(), last_reset="2026-11-20T13:05:00Z"), STOP, False, id="reset-later"
        ),
        pytest.param(
            replace(at_step_two(), last_reset="2026-11-20T12:55:00Z"),
            STOP,
            True,
            id="reset-earlier",
        ),
        pytest.param(
            replace(at_step_two(), last_reset="not-a-time"), STOP, True, id="reset-unreadable"
        ),
        pytest.param(
            at_step_two(),
            GateRequests(fallback_token=5),
            False,
            id="token-not-text",  # type: ignore[arg-type]
        ),
        pytest.param(at_step_two(), GateRequests(fallback_token=""), False, id="empty-token"),
    ],
)
def test_when_a_human_fallback_is_due(
    status: GateStatus, requests: GateRequests, due: bool
) -> None:
    assert fallback_due(status, requests) is due


def test_a_human_fallback_takes_the_ai_path_out_with_who_and_why() -> None:
    now = T0 + timedelta(hours=1)
    status = prepare(at_step_two(), gate("triage"), STOP, now=now)
    assert (status.step, status.share, status.fallen_back, status.phase) == (
        0,
        0.0,
        True,
        "FallenBack",
    )
    assert status.stopped == {"by": "alice", "reason": "wrong answers", "at": TOKEN}
    assert status.last_fallback == TOKEN
    assert status.step_started_at == now
    assert status.history[-1] == {
        "time": "2026-11-20T13:00:00Z",
        "action": "fallback-requested",
        "by": "alice",
        "reason": "wrong answers",
        "token": TOKEN,
        "share": 0.25,
    }
    assert status.to_dict()["humanFallback"] == {
        "by": "alice",
        "reason": "wrong answers",
        "at": TOKEN,
    }


def test_whatever_the_metrics_say_the_gate_stays_out_and_says_who_took_it_out() -> None:
    g = gate("triage")
    status = prepare(at_step_two(), g, STOP, now=T0 + timedelta(hours=1))
    for hours in (2, 5, 30):
        now = T0 + timedelta(hours=hours)
        status = prepare(status, g, STOP, now=now)
        decision = decide(g.spec, healthy(), gate_state(status, STOP), now=now)
        assert decision.action is Action.FALLBACK
        status = apply_decision(status, decision, g, now=now).status
        assert (status.share, status.phase) == (0.0, "FallenBack")
        assert status.message == "fallen back by alice: wrong answers"
    assert [h["action"] for h in status.history].count("fallback-requested") == 1


def test_a_later_reset_clears_it_and_the_old_request_never_acts_again() -> None:
    g = gate("triage")
    status = prepare(at_step_two(), g, STOP, now=T0 + timedelta(hours=1))
    reset = replace(STOP, reset_token="2026-11-20T14:00:00Z", reset_by="bob")
    status = prepare(status, g, reset, now=T0 + timedelta(hours=2))
    assert (status.step, status.share, status.fallen_back, status.stopped) == (1, 0.05, False, None)
    status = prepare(status, g, reset, now=T0 + timedelta(hours=3))
    assert (status.share, status.fallen_back) == (0.05, False)


def test_a_new_revision_clears_it_and_the_old_request_never_acts_again() -> None:
    status = prepare(at_step_two("v1"), gate("triage", revision="v1"), STOP, now=T0)
    assert status.fallen_back
    status = prepare(status, gate("triage", revision="v2"), STOP, now=T0 + timedelta(hours=1))
    assert (status.step, status.share, status.fallen_back, status.revision) == (
        1,
        0.05,
        False,
        "v2",
    )
    assert status.last_fallback == TOKEN
    status = prepare(status, gate("triage", revision="v2"), STOP, now=T0 + timedelta(hours=2))
    assert (status.share, status.fallen_back) == (0.05, False)


def test_a_second_request_acts_again_with_its_own_reason() -> None:
    g = gate("triage")
    status = prepare(at_step_two(), g, STOP, now=T0)
    again = GateRequests(
        fallback_token="2026-11-20T15:00:00Z", fallback_by="carol", fallback_reason="still bad"
    )
    status = prepare(status, g, again, now=T0 + timedelta(hours=2))
    assert status.stopped == {"by": "carol", "reason": "still bad", "at": "2026-11-20T15:00:00Z"}
    assert [h["action"] for h in status.history].count("fallback-requested") == 2


def test_the_status_keeps_the_stop_and_the_audit_head_across_a_round_trip() -> None:
    status = replace(
        prepare(at_step_two(), gate("triage"), STOP, now=T0), audit={"seq": 7, "sha256": "ab" * 32}
    )
    again = GateStatus.from_dict(status.to_dict())
    assert again is not None
    assert (again.stopped, again.last_fallback, again.audit, again.workflow) == (
        status.stopped,
        TOKEN,
        {"seq": 7, "sha256": "ab" * 32},
        "triage",
    )
