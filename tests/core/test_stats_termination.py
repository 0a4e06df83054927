"""Every statistics call ends, within a step budget, over the whole range of counts.

A decision that never returns stops the controller's whole tick, so each
public function of ``gatectl.core.stats`` is held to a budget of
``log_mixture`` evaluations (the unit of work of every loop there: the step
out, Brent's method, the search in ``samples_needed``). The budget is counted,
not timed: ``_budget`` wraps the real ``log_mixture`` with a counter that
raises once the budget is spent, so a loop that would run forever fails the
test instead. A module-wide alarm is the backstop for a loop that evaluates
nothing.

Large counts are also checked for *correct* bounds against an independent
40-digit computation (mpmath), since ``math.lgamma`` of a 10^18 count keeps
only a few digits of the difference the bounds depend on.
"""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatectl.core import stats

MAX_COUNT = 2**62
INTERVAL_BUDGET = 200
"""``log_mixture`` evaluations one ``rate_interval`` may use (typically ~25; 91 the most seen
in 20,000 random draws over the whole range)."""
NEEDED_BUDGET = 130
"""``samples_needed``: one look, then at most 63 doublings and 62 halvings of an integer."""


class BudgetSpentError(AssertionError):
    """A stats call used more evaluations than its budget: a loop that may not end."""


@contextmanager
def _budget(limit: int) -> Iterator[list[int]]:
    """Count ``log_mixture`` evaluations inside the block; fail past ``limit``."""
    real = stats.log_mixture
    real_mixture = stats._mixture
    used = [0]

    def spend() -> None:
        used[0] += 1
        if used[0] > limit:
            raise BudgetSpentError(f"more than {limit} log_mixture evaluations")

    def counted(*args: Any, **kwargs: Any) -> float:
        spend()
        return real(*args, **kwargs)

    def counted_mixture(*args: Any, **kwargs: Any) -> Callable[[float], float]:
        # A root search evaluates log M through _mixture (log_mixture with the counts fixed).
        at = real_mixture(*args, **kwargs)

        def counted_at(p: float) -> float:
            spend()
            return at(p)

        return counted_at

    stats.log_mixture = counted  # type: ignore[assignment]
    stats._mixture = counted_mixture  # type: ignore[assignment]
    try:
        yield used
    finally:
        stats.log_mixture = real  # type: ignore[assignment]
        stats._mixture = real_mixture  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _no_hang() -> Iterator[None]:
    """A loop that evaluates nothing would escape the budget: stop it after a minute."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise BudgetSpentError("still running after 60 s: a loop without a bound")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _crossed(rate: float, total: float, threshold: float, side: str) -> bool:
    interval = stats.rate_interval(rate * total, total, confidence=0.95)
    return interval.upper <= threshold if side == "upper" else interval.lower > threshold


# --- the known hangs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "trials", "threshold", "side"),
    [
        pytest.param(3_999_999, 100_000_000, 0.04, "upper", id="a-hair-under-the-criterion"),
        pytest.param(172.368, 4309.203, 0.04, "upper", id="fractional-from-increase"),
        pytest.param(6_000_001, 100_000_000, 0.06, "lower", id="a-hair-over-the-trigger"),
        pytest.param(39_999_998_000, 10**12, 0.04, "upper", id="trillion-a-hair-under"),
        pytest.param(3, 100, 0.04, "upper", id="small-counts-still-exact"),
    ],
)
def test_samples_needed_ends_and_is_where_the_bound_crosses(
    events: float, trials: float, threshold: float, side: str
) -> None:
    with _budget(NEEDED_BUDGET):
        more = stats.samples_needed(
            events,
            trials,
            threshold=threshold,
            confidence=0.95,
            side=side,  # type: ignore[arg-type]
        )
    assert more is not None
    rate = events / trials
    # Past ~10^15 trials one more request moves the bound by less than its root
    # finder resolves, so the check there allows a hundred-thousandth of the answer.
    slack = max(1.0, 1e-5 * (trials + more))
    assert _crossed(rate, trials + more + slack - 1, threshold, side)
    assert not _crossed(rate, trials + more - slack, threshold, side)


@pytest.mark.parametrize(
    ("events", "trials", "threshold", "side"),
    [
        pytest.param(0.04 * 2.0**40 - 1, 2.0**40, 0.04, "upper", id="answer-beyond-2-62"),
        pytest.param(0.5 * 2.0**62 + 1e6, 2.0**62, 0.5, "lower", id="at-the-count-limit"),
    ],
)
def test_samples_needed_beyond_the_count_limit_is_none(
    events: float, trials: float, threshold: float, side: str
) -> None:
    with _budget(NEEDED_BUDGET):
        got = stats.samples_needed(
            events,
            trials,
            threshold=threshold,
            confidence=0.95,
            side=side,  # type: ignore[arg-type]
        )
    assert got is None


# --- counts at the top of the range ---------------------------------------------------------


def _reference_log_mixture(p: float, events: float, trials: float) -> float:
    mpmath.mp.dps = 40
    k, s, n, q = (mpmath.mpf(x) for x in (stats.PRIOR_STRENGTH, events, trials, p))
    return float(
        mpmath.loggamma(k * q + s)
        + mpmath.loggamma(k * (1 - q) + n - s)
        - mpmath.loggamma(k + n)
        - mpmath.loggamma(k * q)
        - mpmath.loggamma(k * (1 - q))
        + mpmath.loggamma(k)
        - s * mpmath.log(q)
        - (n - s) * mpmath.log(1 - q)
    )


@pytest.mark.parametrize(
    ("p", "events", "trials"),
    [
        pytest.param(0.04, 3_999_999, 100_000_000, id="hundred-million"),
        pytest.param(0.0400001, 0.04e12, 1e12, id="trillion-near-the-bound"),
        pytest.param(0.04000000002, 0.04e18, 1e18, id="10-18-near-the-bound"),
        pytest.param(0.04, 0.04 * 2.0**62 - 2e9, 2.0**62, id="2-62-near-the-bound"),
        pytest.param(1e-18, 1.0, 2.0**62, id="one-event-tiny-rate"),
        pytest.param(1e-300, 0.0, 2.0**62, id="no-events-smallest-rate"),
        pytest.param(1 - 1e-15, 2.0**62, 2.0**62, id="all-events-largest-rate"),
        pytest.param(0.3, 0.7, 1.0, id="one-fractional-trial"),
        pytest.param(0.5, 5e-324, 5e-324, id="smallest-float-counts"),
    ],
)
def test_log_mixture_keeps_its_digits_at_huge_counts(
    p: float, events: float, trials: float
) -> None:
    # Near a bound log M is a few units: an absolute error of 1e-6 moves the bound by
    # a millionth of its distance from the estimate.
    expected = _reference_log_mixture(p, events, trials)
    assert stats.log_mixture(p, events, trials) == pytest.approx(expected, rel=1e-12, abs=1e-6)


def _reference_bounds(events: float, trials: float, confidence: float) -> tuple[float, float]:
    """The same confidence sequence at 40 digits (mpmath), by bisection on each side."""
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

    def root(inside: mpmath.mpf, outside: mpmath.mpf) -> float:
        for _ in range(200):
            middle = (inside + outside) / 2
            if excess(middle) > 0:
                outside = middle
            else:
                inside = middle
        return float(outside)

    estimate = s / n
    return root(estimate, mpmath.mpf("1e-300")), root(estimate, 1 - mpmath.mpf("1e-15"))


@pytest.mark.parametrize(
    ("events", "trials"),
    [
        pytest.param(0.04e9, 1e9, id="billion"),
        pytest.param(0.04e12, 1e12, id="trillion"),
        pytest.param(0.04e15, 1e15, id="10-15"),
        pytest.param(0.04e18, 1e18, id="10-18"),
        pytest.param(0.04 * 2.0**62, 2.0**62, id="2-62"),
        pytest.param(3.0, 2.0**62, id="three-events-in-2-62"),
        pytest.param(2.0**62 - 2.0**20, 2.0**62, id="nearly-all-events-in-2-62"),
        pytest.param(0.5e16 + 0.5, 1e16, id="half-fractional"),
    ],
)
def test_bounds_at_huge_counts_match_a_40_digit_computation(events: float, trials: float) -> None:
    with _budget(INTERVAL_BUDGET):
        interval = stats.rate_interval(events, trials, confidence=0.95)
    lower, upper = _reference_bounds(events, trials, 0.95)
    # Never narrower (the root finder returns the excluded side), and wider by at most
    # a millionth of the width or the finder's resolution (1e-13 of the distance to 0 or 1,
    # and a few float steps).
    assert interval.lower <= lower
    assert interval.upper >= upper
    for ours, reference in ((interval.lower, lower), (interval.upper, upper)):
        resolution = 1e-13 * min(reference, 1 - reference) + 4 * math.ulp(reference)
        assert abs(ours - reference) <= max(1e-6 * (upper - lower), resolution)


@pytest.mark.parametrize(
    ("events", "trials", "message"),
    [
        pytest.param(1, 1e19, "counts must be <= 2**62, got trials=1e+19", id="above-2-62"),
        pytest.param(
            1, 1.7e308, "counts must be <= 2**62, got trials=1.7e+308", id="near-float-max"
        ),
        pytest.param(
            math.nan, 10, "counts must be finite, got events=nan, trials=10", id="nan-events"
        ),
        pytest.param(
            1, math.inf, "counts must be finite, got events=1, trials=inf", id="infinite-trials"
        ),
        pytest.param(-1, 10, "counts must be >= 0, got events=-1, trials=10", id="negative"),
    ],
)
def test_counts_out_of_range_are_named_not_looped_on(
    events: float, trials: float, message: str
) -> None:
    assert stats.count_error(events, trials) == message
    calls: list[Callable[[], object]] = [
        lambda: stats.rate_interval(events, trials, confidence=0.95),
        lambda: stats.difference_interval(events, trials, 1, 10, confidence=0.95),
        lambda: stats.samples_needed(events, trials, threshold=0.1, confidence=0.95, side="upper"),
    ]
    for call in calls:
        with _budget(0), pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            call()


def test_count_error_accepts_the_whole_range() -> None:
    assert stats.count_error(0, 0) is None
    assert stats.count_error(2.0**62, 2.0**62) is None
    assert stats.count_error(10.5, 10.0) is None  # increase() extrapolates: clipped later


# --- the whole range, by property -----------------------------------------------------------

_integers = st.integers(min_value=0, max_value=MAX_COUNT)
_reals = st.floats(min_value=0.0, max_value=float(MAX_COUNT), allow_nan=False)
_trials = st.one_of(_integers, _reals, st.sampled_from([0, 1, 2**53, 2**53 + 1, MAX_COUNT]))


@st.composite
def _counts(draw: st.DrawFn) -> tuple[float, float]:
    """``(events, trials)``: events within trials mostly, above them sometimes (extrapolation)."""
    trials = float(draw(_trials))
    fraction = draw(
        st.one_of(
            st.floats(min_value=0.0, max_value=1.0),
            st.sampled_from([0.0, 1e-12, 0.04, 0.5, 1.0 - 1e-12, 1.0]),
            st.floats(min_value=1.0, max_value=1.5),  # more events than trials
        )
    )
    return min(trials * fraction, float(MAX_COUNT)), trials


_confidences = st.sampled_from([0.5, 0.8, 0.95, 0.99, 0.999999])
_thresholds = st.one_of(
    st.floats(min_value=-0.5, max_value=1.5, allow_nan=False),
    st.sampled_from([0.0, 1e-300, 0.04, 0.06, 1.0]),
)


@settings(max_examples=300, deadline=None)
@given(_counts(), _confidences)
def test_rate_interval_ends_within_its_budget_and_is_ordered(
    counts: tuple[float, float], confidence: float
) -> None:
    events, trials = counts
    with _budget(INTERVAL_BUDGET):
        interval = stats.rate_interval(events, trials, confidence=confidence)
    estimate = min(events, trials) / trials if trials > 0 else None
    assert 0.0 <= interval.lower <= interval.upper <= 1.0
    if estimate is not None:
        assert interval.lower <= estimate <= interval.upper


@settings(max_examples=150, deadline=None)
@given(_counts(), _counts(), st.sampled_from([0.9, 0.95]), st.sampled_from([0.5, 1.0, 1.2]))
def test_difference_interval_ends_within_its_budget_and_is_ordered(
    canary: tuple[float, float],
    baseline: tuple[float, float],
    confidence: float,
    scale: float,
) -> None:
    with _budget(2 * INTERVAL_BUDGET):
        diff = stats.difference_interval(*canary, *baseline, confidence=confidence, scale=scale)
    assert -scale <= diff.lower <= diff.upper <= 1.0


_nudges = st.sampled_from([-1e-6, -1e-9, -1e-12, -1e-15, 0.0, 1e-15, 1e-12, 1e-9, 1e-6])


@settings(max_examples=300, deadline=None)
@given(
    _counts(),
    st.one_of(_thresholds, _nudges.map(lambda nudge: ("near", nudge))),
    _confidences,
    st.sampled_from(["upper", "lower"]),
)
def test_samples_needed_ends_within_its_budget(
    counts: tuple[float, float],
    threshold: float | tuple[str, float],
    confidence: float,
    side: str,
) -> None:
    # Thresholds a hair from the observed rate are where the answer is huge.
    events, trials = counts
    if isinstance(threshold, tuple):
        rate = min(events, trials) / trials if trials > 0 else 0.5
        threshold = rate * (1.0 + threshold[1])
    with _budget(NEEDED_BUDGET):
        more = stats.samples_needed(
            events,
            trials,
            threshold=threshold,
            confidence=confidence,
            side=side,  # type: ignore[arg-type]
        )
    if more is not None:
        assert 0 <= more <= MAX_COUNT - trials
