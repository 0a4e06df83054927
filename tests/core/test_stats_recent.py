"""Rollback triggers on the recent window: a drift falls back soon after it crosses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gatectl.core.decide import decide
from gatectl.core.observations import GateState, Observation, ObservationSet
from gatectl.policy.models import GateSpec

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
STARTED = datetime(2026, 11, 20, 0, 10, tzinfo=UTC)
"""12 h 20 min ago: 12 whole-hour boundaries since (j = 12)."""


def rate(events: float, trials: float) -> Observation:
    return Observation(
        "exception_rate",
        events / trials,
        query={"numerator": "n", "denominator": "d"},
        numerator=events,
        denominator=trials,
    )


def spec(**extra: Any) -> GateSpec:
    body: dict[str, Any] = {
        "canary_traffic": 0.1,
        "promotion_window_hours": 48,
        "success_criteria": {"exception_rate": "<= 0.04"},
        "rollback_trigger": ["exception_rate > 0.06"],
    }
    return GateSpec.model_validate({**body, **extra})


def observed(recent: Observation | None, **longer: Observation) -> ObservationSet:
    # 12 h at 1,000/min: 3.5 % overall, which proves nothing about > 6 %.
    whole = rate(25_200.0, 720_000.0)
    return ObservationSet(
        canary={"exception_rate": whole},
        samples=Observation("samples", 720_000.0),
        recent={} if recent is None else {"exception_rate": recent, **longer},
        recent_seconds=None if recent is None else 5400.0,
    )


def test_a_slow_drift_fires_on_a_longer_window() -> None:
    # 6.22 % over the last 1h30m proves nothing at its level; 6.6 % over the last 3h30m
    # (the 3 h scale, anchored at 09:00) does: its 4th anchor since 00:10, share 0.4 and
    # k = 24 h / 3 h = 8: alpha 0.4 (8 + 1) / ((4 + 8) (4 + 8 + 1)).
    longer = {"exception_rate@10800": rate(13_860.0, 210_000.0)}
    decision = decide(
        spec(), observed(rate(5_600.0, 90_000.0), **longer), GateState(STARTED), now=NOW
    )

    assert decision.action.value == "fallback"
    trigger = decision.triggers[0]
    assert (trigger.result, trigger.samples) == ("fired", 210_000.0)
    assert trigger.interval is not None
    assert trigger.interval.confidence == pytest.approx(1 - 0.05 * 0.4 * 9 / (12 * 13))
    assert decision.reasons[0].endswith(", on the last 3h30m)")
    alone = decide(spec(), observed(rate(5_600.0, 90_000.0)), GateState(STARTED), now=NOW)
    assert alone.action.value == "hold"


def test_a_drift_seen_in_the_last_hours_falls_back() -> None:
    decision = decide(spec(), observed(rate(8_100.0, 90_000.0)), GateState(STARTED), now=NOW)

    assert decision.action.value == "fallback"
    trigger = decision.triggers[0]
    assert (trigger.result, trigger.value, trigger.samples) == ("fired", 0.09, 90_000.0)
    assert trigger.interval is not None
    # the 1 h scale's 12th anchor, share 0.4, k = 24: alpha 0.4 (24 + 1) / ((12 + 24) (12 + 25))
    assert trigger.interval.confidence == pytest.approx(1 - 0.05 * 0.4 * 25 / (36 * 37))
    assert decision.reasons[0].startswith(
        "rollback trigger fired: exception_rate > 0.06 (value 0.09"
    )
    assert decision.reasons[0].endswith(", on the last 1h30m)")


@pytest.mark.parametrize(
    ("recent", "extra"),
    [
        pytest.param(rate(5_670.0, 90_000.0), {}, id="recent-rate-not-proven-above"),
        pytest.param(rate(8_100.0, 90_000.0), {"confidence": "off"}, id="point-values-ignore-it"),
        pytest.param(None, {}, id="not-read"),
        pytest.param(
            rate(8_100.0, 90_000.0),
            {"rollback_trigger": ["exception_rate > baseline * 3"]},
            id="relative-triggers-use-the-whole-window",
        ),
    ],
)
def test_the_recent_window_does_not_fire(recent: Observation | None, extra: dict[str, Any]) -> None:
    decision = decide(spec(**extra), observed(recent), GateState(STARTED), now=NOW)
    assert decision.action.value != "fallback"
    assert decision.triggers[0].result != "fired"


def test_the_level_tightens_with_each_hour_since_the_step_began() -> None:
    # 6.376 % of 90,000 requests: proven > 6 % after 2 hours (j = 2, error alpha 0.4 25 / 702:
    # 5,733 events suffice), not after 12 (alpha 0.4 25 / 1,332: 5,743 needed).
    early = GateState(STARTED)
    recent = rate(5_738.0, 90_000.0)
    assert (
        decide(spec(), observed(recent), early, now=STARTED + timedelta(hours=2)).action.value
        == "fallback"
    )
    assert decide(spec(), observed(recent), early, now=NOW).action.value == "hold"


def test_twelve_hours_in_a_one_hour_window_is_read_at_the_spread_error() -> None:
    # 6.39 % of 90,000 requests at 12:30, the 1 h scale's 12th anchor: proven at its error
    # alpha 0.4 25 / (36 37) = 3.8e-4 (5,743 events suffice); an error alpha / (3 j (j + 1))
    # = 1.1e-4, which spent half of each scale's error on an anchor never read, needs 5,762.
    decision = decide(spec(), observed(rate(5_750.0, 90_000.0)), GateState(STARTED), now=NOW)

    assert decision.action.value == "fallback"
    assert decision.triggers[0].interval is not None
    assert decision.triggers[0].interval.confidence == pytest.approx(1 - 3.754e-4, abs=1e-7)
