"""Only a new ``revision`` restarts a rollout; every other edit applies in place (PRODUCT.md §2/§4).

A gate's status is prepared from the stored status and the (possibly edited)
gate, then decided on. These tests walk a rollout with the pure functions the
controller and replay use, edit the gate between passes, and check what the
next decision does to traffic: an edit never moves it, never restarts the
rollout and never clears a fallback; a new revision does both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gatectl.core.decide import decide
from gatectl.core.observations import Action, Observation, ObservationSet
from gatectl.core.status import (
    GateRequests,
    GateStatus,
    apply_decision,
    commit_pending,
    gate_state,
    prepare,
)
from gatectl.policy.models import Gate, GateSpec

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BASE: dict[str, Any] = {
    "canary_traffic": 0.05,
    "steps": [0.05, 0.25, 1.0],
    "promotion_window": "1h",
    "min_samples": 100,
    "success_criteria": {"exception_rate": "<= 0.04"},
    "rollback_trigger": ["exception_rate > 0.06"],
}
HEALTHY = 0.01
FAILING = 0.2


def gate(**changes: Any) -> Gate:
    spec = {**BASE, **changes}
    return Gate(name="triage", spec=GateSpec.model_validate(spec), source="test")


def observed(rate: float) -> ObservationSet:
    requests = 10_000.0
    exceptions = rate * requests
    return ObservationSet(
        canary={
            "exception_rate": Observation(
                "exception_rate", rate, numerator=exceptions, denominator=requests
            )
        },
        samples=Observation("samples", requests),
    )


def tick(status: GateStatus | None, g: Gate, *, rate: float, now: datetime) -> GateStatus:
    """One controller pass: prepare, decide, apply, and commit at once (traffic moved)."""
    requests = GateRequests()
    prepared = prepare(status, g, requests, now=now)
    decision = decide(g.spec, observed(rate), gate_state(prepared, requests), now=now)
    transition = apply_decision(prepared, decision, g, now=now)
    return commit_pending(transition.status, now=now)


def at_step_two(g: Gate) -> GateStatus:
    status = tick(None, g, rate=HEALTHY, now=T0)
    status = tick(status, g, rate=HEALTHY, now=T0 + timedelta(hours=1, seconds=1))
    assert (status.step, status.share) == (2, 0.25)
    return status


def fallen_back(g: Gate) -> GateStatus:
    status = tick(at_step_two(g), g, rate=FAILING, now=T0 + timedelta(hours=2))
    assert (status.fallen_back, status.share) == (True, 0.0)
    return status


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param({"owner": "payments-team"}, id="owner"),
        pytest.param({"success_criteria": {"exception_rate": "<= 0.05"}}, id="threshold"),
        pytest.param({"rollback_trigger": ["exception_rate > 0.5"]}, id="trigger"),
        pytest.param({"steps": [0.05, 0.5, 1.0]}, id="steps"),
        pytest.param({"promotion_window": "10m"}, id="window"),
    ],
)
def test_an_edit_of_a_fallen_back_gate_keeps_it_at_share_zero(edit: dict[str, Any]) -> None:
    before = gate(revision="v1")
    status = fallen_back(before)
    edited = gate(revision="v1", **edit)

    for minutes in (1, 2, 90):
        status = tick(status, edited, rate=HEALTHY, now=T0 + timedelta(hours=2, minutes=minutes))
        assert (status.fallen_back, status.share, status.phase) == (True, 0.0, "FallenBack")
    assert not any(h["action"] == "new-revision" for h in status.history)


def test_an_edit_without_any_revision_never_restarts_a_fallen_back_gate() -> None:
    status = fallen_back(gate())

    status = tick(status, gate(owner="someone-else"), rate=HEALTHY, now=T0 + timedelta(hours=3))

    assert (status.fallen_back, status.share) == (True, 0.0)


def test_a_new_revision_restarts_at_step_one_and_clears_the_fallback() -> None:
    status = fallen_back(gate(revision="model-2026-11-01"))

    status = tick(
        status, gate(revision="model-2026-11-20"), rate=HEALTHY, now=T0 + timedelta(hours=3)
    )

    assert (status.fallen_back, status.step, status.share) == (False, 1, 0.05)
    assert status.revision == "model-2026-11-20"
    (restarted,) = [h for h in status.history if h["action"] == "new-revision"]
    assert restarted["previous"] == "model-2026-11-01"
    assert restarted["revision"] == "model-2026-11-20"


def test_a_status_from_before_revisions_existed_is_not_restarted() -> None:
    status = fallen_back(gate())
    legacy = GateStatus.from_dict({**status.to_dict(), "revision": "3f1c0aa7d2b94e6e"})
    assert legacy is not None

    status = tick(legacy, gate(owner="x"), rate=HEALTHY, now=T0 + timedelta(hours=3))

    assert (status.fallen_back, status.share) == (True, 0.0)


def test_declaring_a_first_revision_starts_a_rollout() -> None:
    status = at_step_two(gate())

    status = tick(status, gate(revision="v1"), rate=HEALTHY, now=T0 + timedelta(hours=2))

    assert (status.step, status.share, status.revision) == (1, 0.05, "v1")


@pytest.mark.parametrize(
    ("steps", "step", "promoted_to"),
    [
        pytest.param([0.05, 0.5, 1.0], 1, 0.5, id="between-steps-goes-to-next-above"),
        pytest.param([0.1, 0.25, 1.0], 2, 1.0, id="same-share-other-index"),
        pytest.param([0.25, 1.0], 1, 1.0, id="share-is-now-the-first-step"),
        pytest.param([0.5, 1.0], 1, 0.5, id="below-the-new-first-step"),
    ],
)
def test_steps_edited_mid_rollout_keep_the_share_until_the_next_promotion(
    steps: list[float], step: int, promoted_to: float
) -> None:
    status = at_step_two(gate())
    edited = gate(canary_traffic=steps[0], steps=steps)

    # Within the window: a hold, at the share traffic is at.
    status = tick(status, edited, rate=HEALTHY, now=T0 + timedelta(hours=1, minutes=30))
    assert (status.step, status.share) == (step, 0.25)

    requests = GateRequests()
    prepared = prepare(status, edited, requests, now=T0 + timedelta(hours=3))
    decision = decide(
        edited.spec,
        observed(HEALTHY),
        gate_state(prepared, requests),
        now=T0 + timedelta(hours=3),
    )
    assert decision.action is Action.PROMOTE
    assert (decision.current_share, decision.next_share) == (0.25, promoted_to)


def test_a_hold_after_a_steps_edit_moves_no_traffic() -> None:
    status = at_step_two(gate())
    edited = gate(canary_traffic=0.1, steps=[0.1, 0.5, 1.0])
    requests = GateRequests()
    now = T0 + timedelta(hours=1, minutes=10)
    prepared = prepare(status, edited, requests, now=now)

    decision = decide(edited.spec, observed(HEALTHY), gate_state(prepared, requests), now=now)
    transition = apply_decision(prepared, decision, edited, now=now)

    assert decision.action is Action.HOLD
    assert transition.new_share is None
    assert transition.status.pending is None
    assert prepared.history[-1]["action"] == "steps-edited"
