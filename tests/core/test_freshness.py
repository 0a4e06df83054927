"""Freshness: stale, mostly empty and warming-up data never promote (issues 9 and 13).

The verdict is a pure function of the freshness reading, the window and the
policy's ``prometheus.max_staleness``/``scrape_interval``; the decision then
withholds data under it (a fired trigger still stands). Real-Prometheus cases
are in tests/e2e/test_freshness_real.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gatectl.core.decide import decide
from gatectl.core.freshness import Quality, Verdict, judge, missing_reason, overrule
from gatectl.core.observations import (
    Action,
    CheckResult,
    Freshness,
    GateState,
    Observation,
    ObservationSet,
)
from gatectl.policy import load_policies
from gatectl.policy.models import GateSpec

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
H48 = 48 * 3600.0
FRESH = Freshness(newest_age_seconds=4.0, coverage=1.0, query="q")


@pytest.mark.parametrize(
    ("freshness", "elapsed", "settings", "verdict", "reason"),
    [
        pytest.param(FRESH, H48, {}, Verdict.FRESH, None, id="fresh"),
        pytest.param(None, H48, {}, Verdict.FRESH, None, id="not-read-is-not-judged"),
        pytest.param(
            FRESH,
            12.0,
            {},
            Verdict.WARMING_UP,
            "warming up: window 12s < 2 × scrape interval 15s",
            id="warming-up-12s",
        ),
        pytest.param(
            FRESH,
            29.9,
            {},
            Verdict.WARMING_UP,
            "warming up: window 29s < 2 × scrape interval 15s",
            id="warming-up-just-before-two-scrapes",
        ),
        pytest.param(FRESH, 30.0, {}, Verdict.FRESH, None, id="two-scrapes-is-warm"),
        pytest.param(
            None,
            0.0,
            {},
            Verdict.WARMING_UP,
            "warming up: window 0s < 2 × scrape interval 15s",
            id="warming-up-before-freshness",
        ),
        pytest.param(
            FRESH,
            90.0,
            {"scrape_interval": 60.0},
            Verdict.WARMING_UP,
            "warming up: window 1m30s < 2 × scrape interval 1m",
            id="declared-scrape-interval",
        ),
        pytest.param(
            Freshness(query="q", error="HTTP 503: overloaded"),
            H48,
            {},
            Verdict.UNKNOWN,
            "freshness unknown: HTTP 503: overloaded",
            id="query-failed",
        ),
        pytest.param(
            Freshness(newest_age_seconds=None, coverage=0.0),
            H48,
            {},
            Verdict.STALE,
            "stale: no canary request sample in the 48h0m window",
            id="no-sample-at-all",
        ),
        pytest.param(
            Freshness(newest_age_seconds=45 * 3600.0, coverage=0.06),
            H48,
            {},
            Verdict.STALE,
            "stale: newest sample 45h0m ago (max_staleness 5m)",
            id="stopped-45h-ago",
        ),
        pytest.param(
            Freshness(newest_age_seconds=300.0, coverage=1.0),
            H48,
            {},
            Verdict.FRESH,
            None,
            id="exactly-max-staleness-is-fresh",
        ),
        pytest.param(
            Freshness(newest_age_seconds=301.0, coverage=1.0),
            H48,
            {},
            Verdict.STALE,
            "stale: newest sample 5m1s ago (max_staleness 5m)",
            id="a-second-past-max-staleness",
        ),
        pytest.param(
            Freshness(newest_age_seconds=600.0, coverage=1.0),
            H48,
            {"max_staleness": 900.0},
            Verdict.FRESH,
            None,
            id="declared-max-staleness",
        ),
        pytest.param(
            Freshness(newest_age_seconds=0.0, coverage=0.01),
            H48,
            {},
            Verdict.MOSTLY_EMPTY,
            "mostly empty window: canary requests cover 1 % of the 48h0m window"
            " (the series starts or stops inside it; at least 50 % needed)",
            id="ten-minutes-of-48h",
        ),
        pytest.param(
            Freshness(newest_age_seconds=0.0, coverage=0.499),
            H48,
            {},
            Verdict.MOSTLY_EMPTY,
            "mostly empty window: canary requests cover 49 % of the 48h0m window"
            " (the series starts or stops inside it; at least 50 % needed)",
            id="just-under-half",
        ),
        pytest.param(
            Freshness(newest_age_seconds=0.0, coverage=0.5),
            H48,
            {},
            Verdict.FRESH,
            None,
            id="half-is-enough",
        ),
        pytest.param(
            Freshness(newest_age_seconds=0.0, coverage=None),
            H48,
            {},
            Verdict.MOSTLY_EMPTY,
            "mostly empty window: canary requests cover 0 % of the 48h0m window"
            " (the series starts or stops inside it; at least 50 % needed)",
            id="coverage-not-answered-is-empty",
        ),
    ],
)
def test_judge(
    freshness: Freshness | None,
    elapsed: float,
    settings: dict[str, float],
    verdict: Verdict,
    reason: str | None,
) -> None:
    quality = judge(
        freshness,
        elapsed_seconds=elapsed,
        window_seconds=min(elapsed, H48),
        max_staleness=settings.get("max_staleness", 300.0),
        scrape_interval=settings.get("scrape_interval", 15.0),
    )
    assert quality == Quality(verdict, reason)


def check(result: str, kind: str = "criterion") -> CheckResult:
    return CheckResult(
        kind=kind,  # type: ignore[arg-type]
        metric="exception_rate",
        condition="<= 0.04",
        result=result,
        value=None if result == "no_data" else 0.05,
        query="q",
        error="empty result" if result == "no_data" else None,
        note="empty result" if result == "no_data" else None,
    )


STALE = Quality(Verdict.STALE, "stale: newest sample 45h0m ago (max_staleness 5m)")


@pytest.mark.parametrize(
    ("before", "quality", "result", "error"),
    [
        pytest.param(check("pass"), STALE, "no_data", STALE.reason, id="stale-pass"),
        pytest.param(check("fail"), STALE, "no_data", STALE.reason, id="stale-fail"),
        pytest.param(check("undecided"), STALE, "no_data", STALE.reason, id="stale-undecided"),
        pytest.param(
            check("not_fired", "trigger"), STALE, "no_data", STALE.reason, id="stale-not-fired"
        ),
        pytest.param(check("fired", "trigger"), STALE, "fired", None, id="fired-stands"),
        pytest.param(check("no_data"), STALE, "no_data", "empty result", id="keeps-own-cause"),
        pytest.param(
            check("pass"),
            Quality(Verdict.WARMING_UP, "warming up: window 3s < 2 × scrape interval 15s"),
            "no_data",
            "warming up: window 3s < 2 × scrape interval 15s",
            id="warming-up",
        ),
        pytest.param(
            check("pass"),
            Quality(Verdict.MOSTLY_EMPTY, "mostly empty window: ..."),
            "pass",
            None,
            id="mostly-empty-keeps-results",
        ),
        pytest.param(check("fail"), Quality(Verdict.FRESH), "fail", None, id="fresh"),
    ],
)
def test_overrule(before: CheckResult, quality: Quality, result: str, error: str | None) -> None:
    after = overrule(before, quality)
    assert (after.result, after.error) == (result, error)
    if result == "no_data" and before.result != "no_data":
        assert (after.value, after.interval, after.note) == (None, None, error)


@pytest.mark.parametrize(
    ("error", "quality", "reason"),
    [
        pytest.param(STALE.reason, STALE, f"no data: {STALE.reason}", id="verdict-said-once"),
        pytest.param(
            "empty result", STALE, "no data for exception_rate: empty result", id="own-cause"
        ),
        pytest.param(
            None, Quality(Verdict.FRESH), "no data for exception_rate: no data", id="none"
        ),
    ],
)
def test_missing_reason(error: str | None, quality: Quality, reason: str) -> None:
    assert missing_reason("exception_rate", error, quality) == reason


# --- the decision under each verdict --------------------------------------------------------

SEED: dict[str, Any] = {
    "canary_traffic": 0.10,
    "promotion_window_hours": 48,
    "success_criteria": {"exception_rate": "<= 0.04", "critical_regressions": "== 0"},
    "rollback_trigger": ["exception_rate > 0.06", "critical_regressions > 0"],
}


def observed(
    freshness: Freshness | None, *, exceptions: float = 50, regressions: float = 0.0
) -> ObservationSet:
    rate = Observation(
        "exception_rate",
        exceptions / 5000,
        {"numerator": "n", "denominator": "d"},
        numerator=exceptions,
        denominator=5000.0,
    )
    return ObservationSet(
        canary={
            "exception_rate": rate,
            "critical_regressions": Observation("critical_regressions", regressions, "q"),
        },
        samples=Observation("samples", 5000.0, "q"),
        freshness=freshness,
    )


def decide_at(
    observations: ObservationSet, *, seconds_ago: float = 49 * 3600, count: int = 0, **extra: Any
) -> Any:
    spec = GateSpec.model_validate({**SEED, **extra})
    state = GateState(
        step_started_at=NOW - timedelta(seconds=seconds_ago), inconclusive_count=count
    )
    return decide(spec, observations, state, now=NOW)


OLD = Freshness(newest_age_seconds=45 * 3600.0, coverage=0.06, query="q")


def test_fresh_complete_data_promotes_and_carries_its_freshness() -> None:
    decision = decide_at(observed(FRESH))
    assert decision.action is Action.PROMOTE
    assert decision.freshness == FRESH


def test_stale_data_is_one_no_data_reason_and_counts_as_inconclusive() -> None:
    decision = decide_at(observed(OLD), count=2)
    assert decision.action is Action.HOLD
    assert decision.reasons == ("no data: stale: newest sample 45h0m ago (max_staleness 5m)",)
    assert (decision.inconclusive, decision.inconclusive_count) == (True, 3)
    assert decision.samples is None
    assert {c.result for c in (*decision.criteria, *decision.triggers)} == {"no_data"}


def test_stale_data_falls_back_once_max_inconclusive_is_reached() -> None:
    decision = decide_at(observed(OLD), count=9, on_no_data="fallback", max_inconclusive=10)
    assert decision.action is Action.FALLBACK
    assert decision.reasons[0] == (
        "inconclusive 10 evaluations in a row (max_inconclusive 10, on_no_data: fallback)"
    )


def test_a_trigger_that_fired_on_stale_data_still_falls_back() -> None:
    decision = decide_at(observed(OLD, exceptions=1000))
    assert decision.action is Action.FALLBACK
    assert decision.reasons[0].startswith("rollback trigger fired: exception_rate > 0.06")


def test_unknown_freshness_never_promotes() -> None:
    decision = decide_at(observed(Freshness(query="q", error="HTTP 503: overloaded")))
    assert decision.action is Action.HOLD
    assert decision.reasons == ("no data: freshness unknown: HTTP 503: overloaded",)
    assert decision.inconclusive


def test_mostly_empty_window_holds_without_being_inconclusive() -> None:
    thin = Freshness(newest_age_seconds=0.0, coverage=0.01, query="q")
    decision = decide_at(observed(thin), count=4)
    assert decision.action is Action.HOLD
    assert decision.reasons == (
        "mostly empty window: canary requests cover 1 % of the 48h0m window"
        " (the series starts or stops inside it; at least 50 % needed)",
    )
    assert (decision.inconclusive, decision.inconclusive_count) == (False, 0)
    assert {c.result for c in decision.criteria} == {"pass"}


@pytest.mark.parametrize(
    "freshness",
    [
        pytest.param(FRESH, id="with-data"),
        pytest.param(Freshness(newest_age_seconds=None, coverage=0.0), id="nothing-yet"),
        pytest.param(Freshness(query="q", error="connection refused"), id="query-failed"),
    ],
)
def test_warming_up_holds_and_neither_counts_nor_resets_the_inconclusive_streak(
    freshness: Freshness,
) -> None:
    observations = observed(freshness)
    if freshness.newest_age_seconds is None:
        observations = replace(
            observations,
            canary={m: Observation.missing(m, "empty result", "q") for m in observations.canary},
            samples=Observation.missing("samples", "empty result", "q"),
        )
    decision = decide_at(observations, seconds_ago=12, count=7, on_no_data="fallback")
    assert decision.action is Action.HOLD
    assert decision.reasons == (
        "warming up: window 12s < 2 × scrape interval 15s",
        "promotion window: 47h59m remaining",
    )
    assert (decision.inconclusive, decision.inconclusive_count) == (False, 7)
    assert decision.warming_up


def test_a_trigger_with_data_still_fires_while_warming_up() -> None:
    decision = decide_at(observed(FRESH, regressions=1.0), seconds_ago=3)
    assert decision.action is Action.FALLBACK
    assert decision.reasons == (
        "rollback trigger fired: critical_regressions > 0 (value 1)",
        "warming up: window 3s < 2 × scrape interval 15s",
    )
    assert not decision.warming_up
    assert {c.result for c in decision.criteria} == {"no_data"}


@pytest.mark.parametrize(
    ("prometheus", "message"),
    [
        pytest.param(
            "{scrape_interval: 5m}",
            "t.yaml:6: workflow_release_gate.prometheus: max_staleness (5m) must be at least"
            " twice scrape_interval (5m): between two scrapes the data would look stale",
            id="staleness-below-two-scrapes",
        ),
        pytest.param(
            "{scrape_interval: 0s}",
            "t.yaml:6: workflow_release_gate.prometheus.scrape_interval: must be longer than 0,"
            " got 0s",
            id="zero-scrape-interval",
        ),
        pytest.param(
            "{max_staleness: 0s}",
            "t.yaml:6: workflow_release_gate.prometheus.max_staleness: must be longer than 0,"
            " got 0s",
            id="zero-max-staleness",
        ),
    ],
)
def test_freshness_settings_are_checked_when_the_policy_loads(
    tmp_path: Path, prometheus: str, message: str
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "workflow_release_gate:\n"
        "  canary_traffic: 0.1\n"
        "  promotion_window: 1h\n"
        "  success_criteria:\n"
        '    exception_rate: "<= 0.04"\n'
        f"  prometheus: {prometheus}\n",
        encoding="utf-8",
    )
    result = load_policies([str(path)])
    assert [str(problem).replace(str(tmp_path) + "/", "") for problem in result.problems] == [
        message
    ]
