"""Decisions with ``confidence``: bounds decide, noise neither promotes nor falls back.

The bounds come from ``gatectl.core.stats`` (tested on their own); here the point
is how the decision uses them: a criterion passes on its upper bound, a
trigger fires on its lower bound, and in between the gate holds and says how
many more requests it needs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gatectl.core import stats
from gatectl.core.decide import decide
from gatectl.core.observations import Action, GateState, Observation, ObservationSet
from gatectl.policy import GateSpec

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
STATE = GateState(step_started_at=NOW - timedelta(hours=49))


def spec(**extra: Any) -> GateSpec:
    body: dict[str, Any] = {
        "canary_traffic": 0.1,
        "promotion_window_hours": 48,
        "min_samples": 10,
        "confidence": 0.95,
        "success_criteria": {"exception_rate": "<= 0.04"},
        "rollback_trigger": ["exception_rate > 0.06"],
    }
    body.update(extra)
    return GateSpec.model_validate(body)


def observed(
    events: float, trials: float, *, baseline: tuple[float, float] | None = None
) -> ObservationSet:
    def rate(e: float, t: float) -> Observation:
        return Observation("exception_rate", e / t, numerator=e, denominator=t)

    return ObservationSet(
        canary={"exception_rate": rate(events, trials)},
        samples=Observation("samples", trials),
        baseline={"exception_rate": rate(*baseline)} if baseline else {},
    )


def test_three_in_forty_is_noise_not_a_fallback() -> None:
    decision = decide(spec(), observed(3, 40), STATE, now=NOW)
    assert decision.action is Action.HOLD
    assert decision.triggers[0].result == "not_fired"
    assert decision.criteria[0].result == "undecided"
    interval = stats.rate_interval(3, 40, confidence=0.95)
    assert decision.triggers[0].interval == interval
    assert decision.triggers[0].interval.lower < 0.06 < decision.triggers[0].value + 1  # type: ignore[union-attr]


def test_zero_in_twenty_is_not_proof_of_health() -> None:
    decision = decide(spec(), observed(0, 20), STATE, now=NOW)
    assert decision.action is Action.HOLD
    assert decision.criteria[0].result == "undecided"
    needed = stats.samples_needed(0, 20, threshold=0.04, confidence=0.95, side="upper")
    assert decision.reasons == (
        f"needs ~{needed:,} more requests to show exception_rate <= 0.04 at 95 %",
    )


def test_enough_evidence_promotes() -> None:
    decision = decide(spec(), observed(100, 5000), STATE, now=NOW)
    assert decision.action is Action.PROMOTE
    assert decision.criteria[0].result == "pass"
    assert decision.criteria[0].interval is not None
    assert decision.criteria[0].interval.upper <= 0.04


def test_clearly_bad_canary_falls_back_on_its_lower_bound() -> None:
    decision = decide(spec(), observed(400, 5000), STATE, now=NOW)
    assert decision.action is Action.FALLBACK
    lower = stats.rate_interval(400, 5000, confidence=0.95).lower
    assert decision.reasons[0] == (
        f"rollback trigger fired: exception_rate > 0.06 (value 0.08, lower bound {lower:.4g} at 95 %)"
    )


def test_clearly_failing_criterion_is_fail_not_undecided() -> None:
    decision = decide(spec(rollback_trigger=[]), observed(250, 5000), STATE, now=NOW)
    assert decision.criteria[0].result == "fail"
    assert decision.reasons[0].startswith("exception_rate = 0.05 fails <= 0.04 (bounds ")


def test_per_check_confidence_overrides_the_gate() -> None:
    policy = spec(
        confidence="off",
        success_criteria={"exception_rate": {"condition": "<= 0.04", "confidence": 0.99}},
    )
    decision = decide(policy, observed(30, 1000), STATE, now=NOW)
    assert decision.criteria[0].interval is not None
    assert decision.criteria[0].interval.confidence == 0.99
    assert decision.triggers[0].interval is None  # the trigger compares the point value


def test_greater_than_criterion_passes_on_the_lower_bound() -> None:
    policy = spec(success_criteria={"exception_rate": ">= 0.01"}, rollback_trigger=[])
    assert decide(policy, observed(100, 5000), STATE, now=NOW).criteria[0].result == "pass"
    assert decide(policy, observed(1, 50), STATE, now=NOW).criteria[0].result == "undecided"


@pytest.mark.parametrize(
    ("canary", "baseline", "result"),
    [
        pytest.param((2000, 100_000), (2000, 100_000), "pass", id="same-as-baseline"),
        pytest.param((600, 10_000), (200, 10_000), "fail", id="three-times-baseline"),
        pytest.param((3, 100), (2, 100), "undecided", id="too-little-to-tell"),
    ],
)
def test_baseline_relative_criterion_uses_a_two_sample_interval(
    canary: tuple[float, float], baseline: tuple[float, float], result: str
) -> None:
    policy = spec(success_criteria={"exception_rate": "<= baseline * 1.2"}, rollback_trigger=[])
    decision = decide(policy, observed(*canary, baseline=baseline), STATE, now=NOW)
    check = decision.criteria[0]
    assert check.result == result
    expected = stats.difference_interval(*canary, *baseline, confidence=0.95, scale=1.2)
    assert check.interval == expected
    assert check.baseline == baseline[0] / baseline[1]


def test_dry_run_trigger_with_bounds_reports_without_enforcing() -> None:
    policy = spec(rollback_trigger=[{"expression": "exception_rate > 0.06", "dry_run": True}])
    decision = decide(policy, observed(400, 5000), STATE, now=NOW)
    assert decision.triggers[0].result == "fired"
    assert decision.action is not Action.FALLBACK
    assert decision.notes == ("dry run: exception_rate > 0.06 is fired",)


# --- counts at the edges of the range: a decision always ends, and never raises ------------


@pytest.mark.parametrize(
    ("events", "trials"),
    [
        pytest.param(3_999_999, 100_000_000, id="a-hair-under-the-criterion"),
        pytest.param(172.368, 4309.203, id="fractional-from-increase"),
    ],
)
def test_a_criterion_a_hair_under_its_threshold_holds_and_says_why(
    events: float, trials: float
) -> None:
    # Used to hang: samples_needed bisected in floats past 2**53.
    decision = decide(spec(), observed(events, trials), STATE, now=NOW)
    assert decision.action is Action.HOLD
    assert decision.criteria[0].result == "undecided"
    assert decision.reasons == (
        "needs more than 1,000,000,000,000 more requests to show exception_rate <= 0.04 at 95 %",
    )


def test_a_large_answer_below_the_cap_is_given_in_full() -> None:
    needed = stats.samples_needed(
        3_999_000, 100_000_000, threshold=0.04, confidence=0.95, side="upper"
    )
    assert needed is not None
    assert 10**9 < needed <= 10**12
    decision = decide(spec(), observed(3_999_000, 100_000_000), STATE, now=NOW)
    assert decision.reasons == (
        f"needs ~{needed:,} more requests to show exception_rate <= 0.04 at 95 %",
    )


@pytest.mark.parametrize(
    ("canary", "baseline", "error"),
    [
        pytest.param(
            (1.0, 1e19), None, "counts must be <= 2**62, got trials=1e+19", id="above-2-62"
        ),
        pytest.param(
            (-1.0, -10.0),
            None,
            "counts must be >= 0, got events=-1.0, trials=-10.0",
            id="negative-counts-positive-rate",
        ),
        pytest.param(
            (3.0, 100.0),
            (1.0, 1e300),
            "baseline: counts must be <= 2**62, got trials=1e+300",
            id="baseline-above-2-62",
        ),
    ],
)
def test_counts_stats_cannot_bound_are_no_data_not_a_crash(
    canary: tuple[float, float], baseline: tuple[float, float] | None, error: str
) -> None:
    # Used to raise ValueError out of decide: exit 1 ("a bug") for a bad answer.
    condition = "<= baseline * 1.2" if baseline else "<= 0.04"
    policy = spec(success_criteria={"exception_rate": condition}, rollback_trigger=[])
    decision = decide(policy, observed(*canary, baseline=baseline), STATE, now=NOW)
    check = decision.criteria[0]
    assert (check.result, check.error, check.interval) == ("no_data", error, None)
    assert f"no data for exception_rate: {error}" in decision.reasons
    assert decision.action is Action.HOLD


def test_a_trigger_on_counts_stats_cannot_bound_does_not_fire() -> None:
    decision = decide(spec(), observed(1e18, 1e19), STATE, now=NOW)
    assert decision.triggers[0].result == "no_data"
    assert decision.action is Action.HOLD
