"""Bounds widened by a dispersion factor: effective counts, validation, and the decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gatectl.core import stats
from gatectl.core.decide import decide
from gatectl.core.observations import GateState, Observation, ObservationSet
from gatectl.core.render import check_to_dict
from gatectl.policy.models import GateSpec

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STATE = GateState(step_started_at=NOW - timedelta(hours=1))


@pytest.mark.parametrize(
    ("events", "trials", "phi"),
    [
        pytest.param(20.0, 1000.0, 1.0, id="binomial"),
        pytest.param(20.0, 1000.0, 4.0, id="phi-4"),
        pytest.param(600.0, 30_000.0, 50.0, id="phi-50"),
        pytest.param(0.0, 500.0, 2.5, id="no-events"),
        pytest.param(3.5, 7.25, 1.5, id="fractional"),
    ],
)
def test_interval_is_the_sequence_on_effective_counts(
    events: float, trials: float, phi: float
) -> None:
    widened = stats.rate_interval(events, trials, confidence=0.95, dispersion=phi)
    effective = stats.rate_interval(events / phi, trials / phi, confidence=0.95)
    assert (widened.lower, widened.upper) == (effective.lower, effective.upper)


def test_dispersion_widens_the_interval() -> None:
    plain = stats.rate_interval(200.0, 10_000.0, confidence=0.95)
    wide = stats.rate_interval(200.0, 10_000.0, confidence=0.95, dispersion=10.0)
    assert wide.lower < plain.lower < 0.02 < plain.upper < wide.upper


@pytest.mark.parametrize(
    "phi",
    [
        pytest.param(0.99, id="below-1"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="inf"),
        pytest.param(-2.0, id="negative"),
    ],
)
def test_bad_dispersion_is_refused(phi: float) -> None:
    with pytest.raises(ValueError, match="dispersion must") as error:
        stats.rate_interval(1.0, 10.0, confidence=0.95, dispersion=phi)
    assert str(error.value) == f"dispersion must be a finite number >= 1, got {phi!r}"


def test_difference_widens_with_each_tracks_dispersion() -> None:
    args = (100.0, 5000.0, 100.0, 5000.0)
    plain = stats.difference_interval(*args, confidence=0.95)
    canary = stats.difference_interval(*args, confidence=0.95, canary_dispersion=5.0)
    both = stats.difference_interval(
        *args, confidence=0.95, canary_dispersion=5.0, baseline_dispersion=5.0
    )
    assert both.lower < canary.lower < plain.lower < 0 < plain.upper < canary.upper < both.upper
    each = stats.rate_interval(20.0, 1000.0, confidence=0.975)
    assert both.upper == pytest.approx(each.upper - each.lower, rel=1e-12)


def test_samples_needed_scales_with_dispersion() -> None:
    plain = stats.samples_needed(10.0, 1000.0, threshold=0.04, confidence=0.95, side="upper")
    wide = stats.samples_needed(
        10.0, 1000.0, threshold=0.04, confidence=0.95, side="upper", dispersion=4.0
    )
    effective = stats.samples_needed(2.5, 250.0, threshold=0.04, confidence=0.95, side="upper")
    assert plain is not None and effective is not None
    assert wide == 4 * effective
    assert wide > plain


def spec(**extra: Any) -> GateSpec:
    body: dict[str, Any] = {
        "canary_traffic": 0.1,
        "promotion_window_hours": 1,
        "min_samples": 10,
        "success_criteria": {"exception_rate": "<= 0.04"},
        "rollback_trigger": ["exception_rate > 0.06"],
    }
    return GateSpec.model_validate({**body, **extra})


def bursty(events: float, trials: float, phi: float | None) -> ObservationSet:
    rate = Observation(
        "exception_rate",
        events / trials,
        query={"numerator": "n", "denominator": "d"},
        numerator=events,
        denominator=trials,
        dispersion=phi,
    )
    return ObservationSet(canary={"exception_rate": rate}, samples=Observation("samples", trials))


def test_confidence_is_on_by_default() -> None:
    decision = decide(spec(), bursty(100.0, 6000.0, None), STATE, now=NOW)
    assert decision.triggers[0].interval is not None
    assert decision.triggers[0].interval.confidence == 0.95


def test_off_compares_point_values() -> None:
    decision = decide(spec(confidence="off"), bursty(100.0, 6000.0, None), STATE, now=NOW)
    assert decision.triggers[0].interval is None
    assert decision.criteria[0].result == "pass"


@pytest.mark.parametrize(
    ("phi", "action"),
    [
        # One burst: 6.6 % of 60,000 requests in an hour. As independent requests that
        # proves > 6 %; with the dispersion the minutes showed, it proves nothing yet.
        pytest.param(None, "fallback", id="unmeasured-falls-back"),
        pytest.param(1.0, "fallback", id="binomial-falls-back"),
        pytest.param(40.0, "hold", id="bursty-holds"),
    ],
)
def test_a_burst_falls_back_only_when_the_bounds_ignore_dispersion(
    phi: float | None, action: str
) -> None:
    decision = decide(spec(), bursty(3960.0, 60_000.0, phi), STATE, now=NOW)
    assert decision.action.value == action
    assert decision.triggers[0].dispersion == phi


def test_evidence_carries_the_dispersion() -> None:
    decision = decide(spec(), bursty(60.0, 6000.0, 3.25), STATE, now=NOW)
    assert check_to_dict(decision.criteria[0])["dispersion"] == 3.25
    assert "dispersion" not in check_to_dict(
        decide(spec(), bursty(60.0, 6000.0, None), STATE, now=NOW).criteria[0]
    )
