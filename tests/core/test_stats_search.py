"""The searches behind the bounds cost few evaluations and find what the plain searches found.

A pass decides every gate every interval, so ``gatectl.core.stats`` is on the
hot path of a 10,000-gate fleet. These tests pin down the cheaper searches
against their plain references: ``samples_needed`` (secant steps and
interpolation instead of doubling and halving) returns the *same integer*
as the plain search over the same predicate; a bound near 1 (a fraction of
a request, as a large dispersion factor leaves) is solved on ``log(1 - p)``
and agrees with a 40-digit computation; a difference of two tracks built
from intervals a decision already has is bit for bit ``difference_interval``;
and a decision bounds a metric's counts once however many checks read it.
Evaluations are counted (``log_mixture`` calls), never timed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatectl.core import stats
from gatectl.core.decide import decide
from gatectl.core.observations import GateState, Observation, ObservationSet
from gatectl.policy import GateSpec


@contextmanager
def _counted() -> Iterator[list[int]]:
    """Count ``log_mixture`` evaluations inside the block (also those through ``_mixture``)."""
    real = stats.log_mixture
    real_mixture = stats._mixture
    used = [0]

    def counted(*args: Any, **kwargs: Any) -> float:
        used[0] += 1
        return real(*args, **kwargs)

    def counted_mixture(*args: Any, **kwargs: Any) -> Callable[[float], float]:
        at = real_mixture(*args, **kwargs)

        def counted_at(p: float) -> float:
            used[0] += 1
            return at(p)

        return counted_at

    stats.log_mixture = counted  # type: ignore[assignment]
    stats._mixture = counted_mixture  # type: ignore[assignment]
    try:
        yield used
    finally:
        stats.log_mixture = real  # type: ignore[assignment]
        stats._mixture = real_mixture  # type: ignore[assignment]


# --- samples_needed: the same answer as the plain search, in a few evaluations --------------


def _plain_needed(events: float, trials: float, threshold: float, side: str) -> int | None:
    """The doubling-then-halving search over the same predicate (the code before this one)."""
    level = math.log(1.0 / 0.05)
    if stats._margin(events, trials, threshold=threshold, level=level, side=side) >= 0:
        return 0
    if trials <= 0:
        return None
    rate = events / trials
    if (side == "upper" and rate >= threshold) or (side == "lower" and rate <= threshold):
        return None

    def shown_after(more: int) -> bool:
        total = trials + more
        margin = stats._margin(rate * total, total, threshold=threshold, level=level, side=side)
        return margin >= 0

    room = math.floor(stats.MAX_COUNT - trials)
    low, high = 0, min(max(1, math.ceil(trials)), room)
    while high > low and not shown_after(high):
        low, high = high, min(high * 2, room)
    if high <= low:
        return None
    while high - low > 1:
        middle = (low + high) // 2
        if shown_after(middle):
            high = middle
        else:
            low = middle
    return high


@pytest.mark.parametrize(
    ("events", "trials", "threshold", "side", "most"),
    [
        pytest.param(3, 100, 0.04, "upper", 6, id="criterion-3-of-100"),
        pytest.param(100, 2800, 0.04, "upper", 6, id="criterion-just-below"),
        pytest.param(0, 20, 0.04, "upper", 8, id="criterion-zero-of-20"),
        pytest.param(12, 100, 0.06, "lower", 6, id="trigger-twice-the-threshold"),
        pytest.param(7, 100, 0.06, "lower", 8, id="trigger-just-above"),
        pytest.param(5.5, 90.2, 0.02, "lower", 6, id="fractional-counts"),
        pytest.param(0.012, 1.2, 0.04, "upper", 8, id="a-fraction-of-a-request"),
        pytest.param(35, 1000, 0.04, "upper", 7, id="a-thousand-at-3.5-percent"),
        pytest.param(3_900, 100_000, 0.04, "upper", 8, id="hundred-thousand-a-hair-under"),
        pytest.param(6_100, 100_000, 0.06, "lower", 8, id="hundred-thousand-a-hair-over"),
        pytest.param(39_900, 1e6, 0.04, "upper", 8, id="a-million-a-hair-under"),
    ],
)
def test_samples_needed_is_the_plain_searchs_answer_in_a_few_evaluations(
    events: float, trials: float, threshold: float, side: str, most: int
) -> None:
    # The plain search used 9-24 evaluations on these (one look, then ~log2 of the answer twice).
    with _counted() as used:
        got = stats.samples_needed(
            events,
            trials,
            threshold=threshold,
            confidence=0.95,
            side=side,  # type: ignore[arg-type]
        )
    assert got == _plain_needed(events, trials, threshold, side)
    assert got is not None
    assert got > 0
    assert used[0] <= most


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=0.01, max_value=1e8),
    st.floats(min_value=0.0, max_value=0.2),
    st.sampled_from([0.01, 0.04, 0.06, 0.1]),
    st.sampled_from(["upper", "lower"]),
)
def test_samples_needed_equals_the_plain_search_over_realistic_counts(
    trials: float, rate: float, threshold: float, side: str
) -> None:
    # Identical wherever the answer is below ~1e11 more trials: there one more trial moves
    # log M far more than its rounding, so the predicate has one crossing and both
    # searches find it. (Beyond, decide says "more than 10^12" anyway.)
    events = rate * trials
    plain = _plain_needed(events, trials, threshold, side)
    if plain is not None and plain > 10**11:
        return
    got = stats.samples_needed(
        events,
        trials,
        threshold=threshold,
        confidence=0.95,
        side=side,  # type: ignore[arg-type]
    )
    assert got == plain


# --- bounds near 1: solved on log(1 - p) ----------------------------------------------------


def _reference_upper(events: float, trials: float, confidence: float) -> float:
    """The upper end at 40 digits (mpmath), by bisection between the estimate and 1."""
    mpmath.mp.dps = 40
    k = mpmath.mpf(stats.PRIOR_STRENGTH)
    s, n = mpmath.mpf(events), mpmath.mpf(trials)
    level = mpmath.log(1 / (1 - mpmath.mpf(confidence)))

    def excess(p: mpmath.mpf) -> mpmath.mpf:
        a, b = k * p, k * (1 - p)
        return (
            mpmath.loggamma(a + s)
            + mpmath.loggamma(b + n - s)
            - mpmath.loggamma(k + n)
            - mpmath.loggamma(a)
            - mpmath.loggamma(b)
            + mpmath.loggamma(k)
            - s * mpmath.log(p)
            - (n - s) * mpmath.log(1 - p)
            - level
        )

    inside, outside = s / n, mpmath.mpf(1) - mpmath.mpf("1e-15")
    for _ in range(200):
        middle = (inside + outside) / 2
        if excess(middle) > 0:
            outside = middle
        else:
            inside = middle
    return float(outside)


@pytest.mark.parametrize(
    ("events", "trials", "confidence", "most"),
    [
        # 2 errors in 240 requests with a dispersion factor of 200: the benchmark's gates.
        pytest.param(0.012, 1.2, 0.95, 12, id="a-request-and-a-fifth"),
        pytest.param(0.024, 2.4, 0.95, 16, id="two-requests"),
        pytest.param(0.5, 3.0, 0.99, 14, id="three-requests-99"),
        pytest.param(0.05, 5.0, 0.8, 16, id="five-requests-80"),
        pytest.param(0.1, 1.5, 0.99, 14, id="a-tenth-in-one-and-a-half-99"),
    ],
)
def test_an_upper_bound_near_one_is_exact_and_cheap(
    events: float, trials: float, confidence: float, most: int
) -> None:
    # In p, Brent's method halved its way towards 1 (22-38 evaluations on these).
    with _counted() as used:
        interval = stats.rate_interval(events, trials, confidence=confidence)
    reference = _reference_upper(events, trials, confidence)
    assert used[0] <= most
    # The end returned was found excluded: never inside the sequence, so never narrower.
    level = math.log(1 / (1 - confidence))
    assert interval.upper == 1.0 or stats.log_mixture(interval.upper, events, trials) >= level
    assert abs(interval.upper - reference) <= 1e-12 * (1 - reference) + 4 * math.ulp(reference)


_grid = [
    (events, trials)
    for trials in (0.3, 1.0, 1.2, 20.0, 240.0, 1e4, 1e9, 1e15, 2.0**62)
    for events in (0.0, 1.0, 0.01 * trials, 0.5 * trials, trials - 1.0, trials)
    if 0.0 <= events <= trials
]


@pytest.mark.parametrize(("events", "trials"), _grid)
def test_bounds_agree_with_a_40_digit_computation_on_a_grid(events: float, trials: float) -> None:
    interval = stats.rate_interval(events, trials, confidence=0.95)
    if interval.upper == 1.0:
        return
    reference = _reference_upper(events, trials, 0.95)
    resolution = 1e-12 * min(reference, 1 - reference) + 4 * math.ulp(reference)
    assert abs(interval.upper - reference) <= max(
        1e-6 * (interval.upper - interval.lower), resolution
    )
    # Never narrower than the 40-digit end, but for log_mixture's own rounding (~1e-15).
    assert interval.upper >= reference - resolution


# --- a decision bounds each metric's counts once -------------------------------------------

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
STATE = GateState(step_started_at=NOW - timedelta(hours=49))


def _spec(criterion: str, *triggers: str) -> GateSpec:
    return GateSpec.model_validate(
        {
            "canary_traffic": 0.1,
            "promotion_window_hours": 48,
            "min_samples": 10,
            "confidence": 0.95,
            "success_criteria": {"exception_rate": criterion},
            "rollback_trigger": [f"exception_rate {trigger}" for trigger in triggers],
        }
    )


def _observed(canary: tuple[float, float], baseline: tuple[float, float]) -> ObservationSet:
    def rate(e: float, t: float) -> Observation:
        return Observation("exception_rate", e / t, numerator=e, denominator=t)

    return ObservationSet(
        canary={"exception_rate": rate(*canary)},
        samples=Observation("samples", canary[1]),
        baseline={"exception_rate": rate(*baseline)},
    )


@pytest.mark.parametrize(
    ("criterion", "triggers", "searches"),
    [
        pytest.param("<= 0.04", ("> 0.06",), 1, id="threshold-criterion-and-trigger"),
        pytest.param("<= 0.04", ("> 0.06", ">= 0.1"), 1, id="two-triggers-too"),
        pytest.param(
            "<= baseline * 1.2", ("> baseline * 1.5",), 2, id="relative-both-tracks-once-each"
        ),
    ],
)
def test_a_decision_bounds_each_tracks_counts_once(
    monkeypatch: pytest.MonkeyPatch, criterion: str, triggers: tuple[str, ...], searches: int
) -> None:
    calls: list[tuple[float, float, float]] = []
    real = stats.rate_interval

    def spied(events: float, trials: float, **kwargs: Any) -> Any:
        calls.append((events, trials, kwargs["confidence"]))
        return real(events, trials, **kwargs)

    monkeypatch.setattr(stats, "rate_interval", spied)
    decision = decide(
        _spec(criterion, *triggers), _observed((30, 1000), (200, 9000)), STATE, now=NOW
    )
    assert len(calls) == searches
    # Each check still carries the interval it would have computed on its own.
    monkeypatch.setattr(stats, "rate_interval", real)
    checks = [(decision.criteria[0], criterion)]
    checks += list(zip(decision.triggers, triggers, strict=True))
    for check, text in checks:
        if "baseline" in text:
            scale = float(text.rsplit("*", 1)[1])
            expected = stats.difference_interval(30, 1000, 200, 9000, confidence=0.95, scale=scale)
        else:
            expected = stats.rate_interval(30, 1000, confidence=0.95)
        assert check.interval == expected


@pytest.mark.parametrize("scale", [1.0, 1.2, -0.5])
@pytest.mark.parametrize("offset", [0.0, 0.01, -0.01])
@pytest.mark.parametrize("counts", [(30, 1000, 50, 5000), (0, 0, 3, 40), (12.5, 301.7, 1, 1e9)])
def test_difference_of_two_intervals_is_bit_for_bit_difference_interval(
    counts: tuple[float, float, float, float], scale: float, offset: float
) -> None:
    each = stats.difference_level(0.95)
    canary = stats.rate_interval(counts[0], counts[1], confidence=each)
    base = stats.rate_interval(counts[2], counts[3], confidence=each)
    assert stats.difference_of(
        canary, base, confidence=0.95, scale=scale, offset=offset
    ) == stats.difference_interval(*counts, confidence=0.95, scale=scale, offset=offset)


_points = [1e-300, 1e-17, 1e-6, 0.003, 0.04, 0.5, 0.96, 1 - 1e-9, 1 - 1e-15]
_counts = [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.012, 1.2), (12.5, 301.7), (35.0, 1000.0)]
_counts += [(0.04e15, 1e15), (3.0, 2.0**62), (2.0**62, 2.0**62), (11.0, 10.0)]


@pytest.mark.parametrize("strength", [stats.PRIOR_STRENGTH, 3.5])
@pytest.mark.parametrize(("events", "trials"), _counts)
def test_a_root_searchs_log_m_is_bit_for_bit_log_mixture(
    events: float, trials: float, strength: float
) -> None:
    at = stats._mixture(events, trials, strength)
    for p in _points:
        assert at(p) == stats.log_mixture(p, events, trials, strength=strength)
