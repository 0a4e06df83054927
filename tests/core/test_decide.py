"""The decision order of PRODUCT.md §4, branch by branch, without any I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gatectl.core.decide import decide, evaluation_window, fallback_target, format_value
from gatectl.core.observations import Action, GateState, Observation, ObservationSet
from gatectl.policy.models import GateSpec

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SEED: dict[str, Any] = {
    "canary_traffic": 0.10,
    "promotion_window_hours": 48,
    "success_criteria": {
        "exception_rate": "<= 0.04",
        "human_override_rate": "<= 0.15",
        "critical_regressions": "== 0",
    },
    "rollback_trigger": [
        "exception_rate > 0.06",
        "reviewer_queue_sla_breach == true",
        "critical_regressions > 0",
    ],
    "fallback_mode": "deterministic_path",
}


def spec(**overrides: Any) -> GateSpec:
    # Point values: these tests are about the order of the rules (bounds: test_decide_stats).
    return GateSpec.model_validate({**SEED, "confidence": "off", **overrides})


def rate(metric: str, num: float, den: float) -> Observation:
    return Observation(
        metric=metric,
        value=num / den if den else None,
        numerator=num,
        denominator=den,
        query={"numerator": "n", "denominator": "d"},
    )


def healthy(**changes: Observation | None) -> ObservationSet:
    """A canary well within every criterion, with 5,000 requests; ``changes`` replace metrics."""
    canary: dict[str, Observation] = {
        "exception_rate": rate("exception_rate", 100, 5000),
        "human_override_rate": rate("human_override_rate", 250, 5000),
        "critical_regressions": Observation("critical_regressions", 0.0, "q"),
        "reviewer_queue_sla_breach": Observation("reviewer_queue_sla_breach", 0.0, "q"),
    }
    samples = Observation("samples", 5000.0, "q")
    for name, obs in changes.items():
        if name == "samples":
            assert obs is not None
            samples = obs
        elif obs is None:
            canary.pop(name)
        else:
            canary[name] = obs
    return ObservationSet(canary=canary, samples=samples)


def state(hours_ago: float = 49, **kw: Any) -> GateState:
    return GateState(step_started_at=NOW - timedelta(hours=hours_ago), **kw)


def missing(metric: str, cause: str = "empty result: no series matched") -> Observation:
    return Observation.missing(metric, cause, "q")


CASES = [
    pytest.param(
        spec(),
        healthy(),
        state(),
        Action.PROMOTE,
        "all criteria met",
        id="healthy-window-elapsed-promotes",
    ),
    pytest.param(
        spec(),
        healthy(),
        state(hours_ago=1),
        Action.HOLD,
        "promotion window: 47h0m remaining",
        id="healthy-inside-window-holds",
    ),
    pytest.param(
        spec(),
        healthy(exception_rate=rate("exception_rate", 400, 5000)),
        state(),
        Action.FALLBACK,
        "rollback trigger fired: exception_rate > 0.06 (value 0.08)",
        id="exception-trigger-falls-back",
    ),
    pytest.param(
        spec(),
        healthy(reviewer_queue_sla_breach=Observation("reviewer_queue_sla_breach", 1.0, "q")),
        state(),
        Action.FALLBACK,
        "rollback trigger fired: reviewer_queue_sla_breach == true (value true)",
        id="sla-breach-falls-back",
    ),
    pytest.param(
        spec(),
        healthy(critical_regressions=Observation("critical_regressions", 1.0, "q")),
        state(),
        Action.FALLBACK,
        "rollback trigger fired: critical_regressions > 0 (value 1)",
        id="regression-falls-back",
    ),
    pytest.param(
        spec(),
        healthy(exception_rate=rate("exception_rate", 250, 5000)),
        state(),
        Action.HOLD,
        "exception_rate = 0.05 fails <= 0.04",
        id="failing-criterion-below-trigger-holds",
    ),
    pytest.param(
        spec(),
        healthy(
            samples=Observation("samples", 40.0, "q"),
            exception_rate=rate("exception_rate", 1, 40),
            human_override_rate=rate("human_override_rate", 2, 40),
        ),
        state(),
        Action.HOLD,
        "too few samples: 40 canary requests in the window, need 100",
        id="too-few-samples-holds",
    ),
    pytest.param(
        spec(),
        healthy(exception_rate=missing("exception_rate")),
        state(),
        Action.HOLD,
        "no data for exception_rate: empty result: no series matched",
        id="no-data-holds",
    ),
    pytest.param(
        spec(),
        healthy(samples=missing("samples", "connection refused")),
        state(),
        Action.HOLD,
        "no data for the sample count: connection refused",
        id="no-sample-count-holds",
    ),
    pytest.param(
        spec(),
        healthy(exception_rate=rate("exception_rate", 0, 0)),
        state(),
        Action.HOLD,
        "no data for exception_rate",
        id="zero-requests-is-no-data",
    ),
    pytest.param(
        spec(),
        healthy(reviewer_queue_sla_breach=None),
        state(),
        Action.HOLD,
        "no data for reviewer_queue_sla_breach: metric was not read",
        id="unread-metric-holds",
    ),
    pytest.param(
        spec(),
        healthy(exception_rate=Observation("exception_rate", float("nan"), "q")),
        state(),
        Action.HOLD,
        "no data for exception_rate",
        id="nan-value-holds-instead-of-promoting",
    ),
    pytest.param(
        spec(on_no_data="fallback", max_inconclusive=3),
        healthy(exception_rate=missing("exception_rate")),
        state(inconclusive_count=2),
        Action.FALLBACK,
        "inconclusive 3 evaluations in a row (max_inconclusive 3, on_no_data: fallback)",
        id="no-data-falls-back-at-max-inconclusive",
    ),
    pytest.param(
        spec(on_no_data="fallback", max_inconclusive=3),
        healthy(exception_rate=missing("exception_rate")),
        state(inconclusive_count=1),
        Action.HOLD,
        "no data for exception_rate",
        id="no-data-holds-below-max-inconclusive",
    ),
    pytest.param(
        spec(max_inconclusive=1),
        healthy(exception_rate=missing("exception_rate")),
        state(inconclusive_count=50),
        Action.HOLD,
        "no data for exception_rate",
        id="on-no-data-hold-never-falls-back",
    ),
    pytest.param(
        spec(
            success_criteria={"exception_rate": {"condition": "<= 0.04", "on_no_data": "fallback"}},
            max_inconclusive=2,
        ),
        healthy(exception_rate=missing("exception_rate")),
        state(inconclusive_count=1),
        Action.FALLBACK,
        "inconclusive 2 evaluations in a row",
        id="per-check-on-no-data-fallback",
    ),
    pytest.param(
        spec(steps=[0.1, 0.6, 1.0], approval={"required_above": 0.5}, owner="team-triage"),
        healthy(),
        state(),
        Action.HOLD,
        "promotion to 60 % needs approval from team-triage (above 50 %): run `gatectl approve`",
        id="approval-needed-holds",
    ),
    pytest.param(
        spec(steps=[0.1, 0.6, 1.0], approval={"required_above": 0.5}),
        healthy(),
        state(approved=True),
        Action.PROMOTE,
        "all criteria met: promote from 10 % to 60 %",
        id="approved-promotes",
    ),
    pytest.param(
        spec(steps=[0.1, 0.3, 1.0], approval={"required_above": 0.5}),
        healthy(),
        state(),
        Action.PROMOTE,
        "all criteria met",
        id="approval-not-needed-below-threshold",
    ),
    pytest.param(
        spec(),
        healthy(),
        state(step=1),
        Action.PROMOTE,
        "complete: the AI path already has 100 % of traffic",
        id="complete-at-full-share",
    ),
    pytest.param(
        spec(),
        healthy(exception_rate=rate("exception_rate", 400, 5000)),
        state(step=1),
        Action.FALLBACK,
        "rollback trigger fired",
        id="trigger-still-fires-when-complete",
    ),
    pytest.param(
        spec(),
        healthy(),
        state(fallen_back=True),
        Action.FALLBACK,
        "fell back earlier: fallback is sticky",
        id="fallback-is-sticky",
    ),
    pytest.param(
        spec(rollback_trigger=[{"expression": "exception_rate > 0.06", "dry_run": True}]),
        healthy(exception_rate=rate("exception_rate", 200, 5000)),
        state(),
        Action.PROMOTE,
        "all criteria met",
        id="dry-run-trigger-never-enforced",
    ),
    pytest.param(
        spec(success_criteria={"exception_rate": {"condition": "<= 0.01", "dry_run": True}}),
        healthy(),
        state(),
        Action.PROMOTE,
        "all criteria met",
        id="dry-run-criterion-never-enforced",
    ),
    pytest.param(
        spec(success_criteria={"exception_rate": "<= baseline * 1.2"}, rollback_trigger=[]),
        ObservationSet(
            canary={"exception_rate": rate("exception_rate", 30, 1000)},
            samples=Observation("samples", 1000.0),
            baseline={"exception_rate": rate("exception_rate", 20, 1000)},
        ),
        state(),
        Action.HOLD,
        "exception_rate = 0.03 fails <= baseline * 1.2 (baseline 0.02)",
        id="baseline-relative-fails",
    ),
    pytest.param(
        spec(success_criteria={"exception_rate": "<= baseline * 1.2"}, rollback_trigger=[]),
        ObservationSet(
            canary={"exception_rate": rate("exception_rate", 22, 1000)},
            samples=Observation("samples", 1000.0),
            baseline={"exception_rate": rate("exception_rate", 20, 1000)},
        ),
        state(),
        Action.PROMOTE,
        "all criteria met",
        id="baseline-relative-passes",
    ),
    pytest.param(
        spec(success_criteria={"exception_rate": "<= baseline + 0.01"}, rollback_trigger=[]),
        ObservationSet(
            canary={"exception_rate": rate("exception_rate", 22, 1000)},
            samples=Observation("samples", 1000.0),
            baseline={},
        ),
        state(),
        Action.HOLD,
        "no data for exception_rate: baseline: baseline was not read",
        id="baseline-missing-holds",
    ),
]


@pytest.mark.parametrize(("policy", "observed", "gate_state", "action", "reason"), CASES)
def test_decision_order(
    policy: GateSpec, observed: ObservationSet, gate_state: GateState, action: Action, reason: str
) -> None:
    decision = decide(policy, observed, gate_state, now=NOW)
    assert decision.action is action
    assert decision.reasons[0].startswith(reason), decision.reasons


def test_trigger_outranks_missing_data_and_window() -> None:
    observed = healthy(
        exception_rate=rate("exception_rate", 400, 5000),
        human_override_rate=missing("human_override_rate"),
    )
    decision = decide(spec(), observed, state(hours_ago=1), now=NOW)
    assert decision.action is Action.FALLBACK
    assert decision.reasons == (
        "rollback trigger fired: exception_rate > 0.06 (value 0.08)",
        "no data for human_override_rate: empty result: no series matched",
    )
    assert decision.next_share == 0.0
    assert decision.next_step == -1


def test_reasons_list_every_blocker_in_decision_order() -> None:
    observed = healthy(
        samples=Observation("samples", 50.0, "q"),
        exception_rate=rate("exception_rate", 3, 50),
    )
    policy = spec(rollback_trigger=[], steps=[0.1, 0.9, 1.0], approval={"required_above": 0.5})
    decision = decide(policy, observed, state(hours_ago=47), now=NOW)
    assert decision.action is Action.HOLD
    assert decision.reasons == (
        "too few samples: 50 canary requests in the window, need 100",
        "exception_rate = 0.06 fails <= 0.04",
        "promotion window: 1h0m remaining",
        "promotion to 90 % needs approval (above 50 %): run `gatectl approve`",
    )
    assert not decision.awaiting_approval


def test_awaiting_approval_only_when_approval_is_the_only_blocker() -> None:
    policy = spec(steps=[0.1, 0.9, 1.0], approval={"required_above": 0.5})
    decision = decide(policy, healthy(), state(), now=NOW)
    assert decision.awaiting_approval
    assert decision.action is Action.HOLD


def test_inconclusive_count_resets_after_a_conclusive_evaluation() -> None:
    held = decide(
        spec(),
        healthy(exception_rate=missing("exception_rate")),
        state(inconclusive_count=4),
        now=NOW,
    )
    assert held.inconclusive
    assert held.inconclusive_count == 5
    fine = decide(spec(), healthy(), state(inconclusive_count=4), now=NOW)
    assert not fine.inconclusive
    assert fine.inconclusive_count == 0


def test_evidence_carries_values_thresholds_and_queries() -> None:
    decision = decide(spec(), healthy(), state(), now=NOW)
    by_metric = {c.metric: c for c in decision.criteria}
    assert by_metric["exception_rate"].value == pytest.approx(0.02)
    assert by_metric["exception_rate"].threshold == pytest.approx(0.04)
    assert by_metric["exception_rate"].samples == 5000
    assert by_metric["exception_rate"].query == {"numerator": "n", "denominator": "d"}
    assert [t.result for t in decision.triggers] == ["not_fired", "not_fired", "not_fired"]
    assert decision.triggers[1].value is False
    assert decision.samples == 5000


def test_promotion_moves_to_next_step_and_fallback_modes() -> None:
    policy = spec(steps=[0.1, 0.25, 1.0], fallback_mode="previous_step")
    promoted = decide(policy, healthy(), state(step=1), now=NOW)
    assert (promoted.current_share, promoted.next_share, promoted.next_step) == (0.25, 1.0, 2)
    fell = decide(
        policy,
        healthy(critical_regressions=Observation("critical_regressions", 2.0)),
        state(step=1),
        now=NOW,
    )
    assert (fell.action, fell.next_step, fell.next_share) == (Action.FALLBACK, 0, 0.1)
    assert fallback_target(policy, 0) == (-1, 0.0)


def test_window_caps_queries_at_promotion_window() -> None:
    window = evaluation_window(spec(), started_at=NOW - timedelta(hours=100), now=NOW)
    assert window.query_seconds == 48 * 3600
    assert window.remaining_seconds == 0
    early = evaluation_window(spec(), started_at=NOW - timedelta(minutes=30), now=NOW)
    assert early.query_seconds == 1800
    assert early.remaining_seconds == 47.5 * 3600


def test_dry_run_failure_is_noted_not_enforced() -> None:
    policy = spec(rollback_trigger=[{"expression": "exception_rate > 0.01", "dry_run": True}])
    decision = decide(policy, healthy(), state(), now=NOW)
    assert decision.action is Action.PROMOTE
    assert decision.notes == ("dry run: exception_rate > 0.01 is fired",)
    assert decision.triggers[0].dry_run


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(None, "no data", id="none"),
        pytest.param(True, "true", id="true"),
        pytest.param(0.0412345, "0.04123", id="fraction"),
        pytest.param(5230.0, "5,230", id="thousands"),
        pytest.param(12.0, "12", id="small-int"),
    ],
)
def test_format_value(value: float | bool | None, text: str) -> None:
    assert format_value(value) == text


def test_sticky_fallback_stays_where_it_fell() -> None:
    deterministic = decide(spec(), healthy(), state(fallen_back=True, step=-1), now=NOW)
    assert (deterministic.current_share, deterministic.next_share) == (0.0, 0.0)
    assert (deterministic.current_step, deterministic.next_step) == (-1, -1)
    policy = spec(steps=[0.1, 0.25, 1.0], fallback_mode="previous_step")
    previous = decide(policy, healthy(), state(fallen_back=True, step=0), now=NOW)
    assert (previous.current_share, previous.next_share) == (0.1, 0.1)


def test_metric_missing_for_criterion_and_trigger_is_one_reason() -> None:
    decision = decide(spec(), healthy(exception_rate=missing("exception_rate")), state(), now=NOW)
    assert decision.reasons == ("no data for exception_rate: empty result: no series matched",)
    assert decision.triggers[0].result == "no_data"
