"""Confidence sequences for rates: exact values, shape, properties, and coverage under looking.

Exact values are checked against two sources that share no code with
gatectl.core.stats: the reference values published with Howard et al.'s own
implementation (confseq, computed there from an R reference), and an
independent scipy computation (``betaln`` + ``brentq``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.special import betaln
from scipy.stats import beta, norm

from gatectl.core import stats
from gatectl.core.stats import PRIOR_STRENGTH, _bounds, log_mixture

# Howard et al.'s tuning constant for a two-sided mixture optimised at alpha_opt = 0.05.
_C = 2 * math.log(20) + math.log(1 + 2 * math.log(20))


def _strength_for_t_opt(t_opt: float) -> float:
    """confseq's ``bernoulli_confidence_interval(..., t_opt)`` in our parametrisation."""
    return t_opt / _C - 1


def _scipy_bounds(events: float, trials: float, confidence: float) -> tuple[float, float]:
    """The same confidence sequence computed independently with scipy."""
    k = PRIOR_STRENGTH
    level = math.log(1 / (1 - confidence))
    failures = trials - events

    def excess(p: float) -> float:
        return float(
            betaln(k * p + events, k * (1 - p) + failures)
            - betaln(k * p, k * (1 - p))
            - events * math.log(p)
            - failures * math.log1p(-p)
            - level
        )

    estimate = events / trials
    lower = 0.0 if excess(1e-300) <= 0 else brentq(excess, 1e-300, estimate, xtol=1e-15)
    upper = 1.0 if excess(1 - 1e-15) <= 0 else brentq(excess, estimate, 1 - 1e-15, xtol=1e-15)
    return lower, upper


def _wilson(events: np.ndarray, trials: np.ndarray, confidence: float) -> tuple[np.ndarray, ...]:
    z = norm.ppf(1 - (1 - confidence) / 2)
    p = events / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return centre - half, centre + half


# --- exact values ---------------------------------------------------------------------------


def test_interval_matches_published_confseq_reference_values() -> None:
    # confseq tests: bernoulli_confidence_interval(700, 1000, alpha=0.05, t_opt=100)
    lower, upper = _bounds(700, 1000, 0.05, _strength_for_t_opt(100))
    assert lower == pytest.approx(0.651629, abs=1e-6)
    assert upper == pytest.approx(0.745949, abs=1e-6)


def test_log_mixture_matches_published_confseq_reference_value() -> None:
    # confseq tests: beta_binomial_log_mixture(s=10, v=100, v_opt=100, g=0.2, h=0.8, two-sided)
    # is -0.6941012; s = S - n p and v = n p (1 - p) with p = 0.2 give n = 625, S = 135.
    rho = 100 / _C
    strength = (rho - 0.16) / 0.16
    assert log_mixture(0.2, 135, 625, strength=strength) == pytest.approx(-0.6941012, abs=1e-6)


@pytest.mark.parametrize(
    ("events", "trials", "confidence"),
    [
        pytest.param(3, 40, 0.95, id="issue-example-3-of-40"),
        pytest.param(1, 20, 0.95, id="one-event"),
        pytest.param(2, 20, 0.9, id="two-events-90"),
        pytest.param(35, 1000, 0.95, id="just-below-criterion"),
        pytest.param(120, 1000, 0.99, id="double-the-trigger-99"),
        pytest.param(350, 10_000, 0.95, id="ten-thousand"),
        pytest.param(3_500, 100_000, 0.95, id="hundred-thousand"),
        pytest.param(40_000, 1_000_000, 0.8, id="million-80"),
        pytest.param(12.5, 301.7, 0.95, id="fractional-counts-from-increase"),
        pytest.param(19, 20, 0.95, id="rate-near-one"),
        pytest.param(500, 1000, 0.999, id="half-999"),
    ],
)
def test_bounds_match_an_independent_scipy_computation(
    events: float, trials: float, confidence: float
) -> None:
    interval = stats.rate_interval(events, trials, confidence=confidence)
    lower, upper = _scipy_bounds(events, trials, confidence)
    assert interval.lower == pytest.approx(lower, rel=1e-9, abs=1e-12)
    assert interval.upper == pytest.approx(upper, rel=1e-9, abs=1e-12)
    assert interval.confidence == confidence
    assert interval.method == stats.METHOD


@pytest.mark.parametrize(
    ("events", "trials", "expected"),
    [
        pytest.param(0, 0, (0.0, 1.0), id="no-trials-knows-nothing"),
        pytest.param(0, 500, (0.0, None), id="no-events-lower-is-zero"),
        pytest.param(1, 500, (0.0, None), id="one-event-lower-is-zero"),
        pytest.param(500, 500, (None, 1.0), id="all-events-upper-is-one"),
        pytest.param(501, 500, (None, 1.0), id="events-above-trials-clipped"),
    ],
)
def test_edge_counts_give_the_trivial_side(
    events: float, trials: float, expected: tuple[float | None, float | None]
) -> None:
    interval = stats.rate_interval(events, trials, confidence=0.95)
    want_lower, want_upper = expected
    if want_lower is not None:
        assert interval.lower == want_lower
    if want_upper is not None:
        assert interval.upper == want_upper
    assert 0.0 <= interval.lower <= interval.upper <= 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"events": -1, "trials": 10}, id="negative-events"),
        pytest.param({"events": 1, "trials": -10}, id="negative-trials"),
        pytest.param({"events": math.nan, "trials": 10}, id="nan-events"),
        pytest.param({"events": 1, "trials": math.inf}, id="infinite-trials"),
    ],
)
def test_bad_counts_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="counts must be"):
        stats.rate_interval(kwargs["events"], kwargs["trials"], confidence=0.95)


@pytest.mark.parametrize(
    "confidence",
    [pytest.param(0.0, id="zero"), pytest.param(1.0, id="one"), pytest.param(math.nan, id="nan")],
)
def test_confidence_outside_zero_one_is_rejected(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        stats.rate_interval(3, 40, confidence=confidence)


# --- shape and properties -------------------------------------------------------------------

counts = st.integers(min_value=1, max_value=2_000_000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)
confidences = st.sampled_from([0.8, 0.9, 0.95, 0.99])


@settings(max_examples=150, deadline=None)
@given(counts, confidences)
def test_interval_contains_the_estimate_and_lies_in_zero_one(
    pair: tuple[int, int], confidence: float
) -> None:
    events, trials = pair
    interval = stats.rate_interval(events, trials, confidence=confidence)
    assert 0.0 <= interval.lower <= events / trials <= interval.upper <= 1.0


@settings(max_examples=60, deadline=None)
@given(counts, confidences)
def test_confidence_set_is_exactly_the_reported_interval(
    pair: tuple[int, int], confidence: float
) -> None:
    # The set {p : M(p) < 1/alpha} must be an interval for root finding to be right:
    # points just inside the bounds are in the set, points just outside are not.
    events, trials = pair
    interval = stats.rate_interval(events, trials, confidence=confidence)
    level = math.log(1 / (1 - confidence))
    width = interval.upper - interval.lower
    for fraction in (0.001, 0.25, 0.5, 0.75, 0.999):
        p = interval.lower + fraction * width
        if 0.0 < p < 1.0:
            assert log_mixture(p, events, trials) < level + 1e-9
    for p in (interval.lower * (1 - 1e-6), interval.lower * 0.5, interval.lower * 1e-6):
        if p > 1e-300 and interval.lower > 0:
            assert log_mixture(p, events, trials) >= level - 1e-9
    for p in (interval.upper + (1 - interval.upper) * f for f in (1e-6, 0.5, 0.999)):
        if interval.upper < 1.0 and p < 1.0:
            assert log_mixture(p, events, trials) >= level - 1e-9


@settings(max_examples=80, deadline=None)
@given(
    st.floats(min_value=0.001, max_value=0.999),
    st.integers(min_value=10, max_value=1_000_000),
    confidences,
)
def test_interval_narrows_as_trials_grow_at_a_fixed_rate(
    rate: float, trials: int, confidence: float
) -> None:
    small = stats.rate_interval(rate * trials, trials, confidence=confidence)
    large = stats.rate_interval(rate * trials * 4, trials * 4, confidence=confidence)
    assert large.upper - large.lower < small.upper - small.lower


@settings(max_examples=80, deadline=None)
@given(counts)
def test_higher_confidence_gives_a_wider_interval(pair: tuple[int, int]) -> None:
    events, trials = pair
    narrow = stats.rate_interval(events, trials, confidence=0.9)
    wide = stats.rate_interval(events, trials, confidence=0.99)
    assert wide.lower <= narrow.lower
    assert wide.upper >= narrow.upper


@settings(max_examples=80, deadline=None)
@given(counts.filter(lambda pair: 0 < pair[0] < pair[1]))
def test_sequence_is_wider_than_the_exact_fixed_sample_interval(pair: tuple[int, int]) -> None:
    # The price of being valid at every look: never narrower than Clopper-Pearson.
    # (At 0 or all events the two-sided Clopper-Pearson spends half its error on a
    # side that cannot be wrong, so the comparison is made with events strictly inside.)
    events, trials = pair
    interval = stats.rate_interval(events, trials, confidence=0.95)
    lower = beta.ppf(0.025, events, trials - events + 1)
    upper = beta.ppf(0.975, events + 1, trials - events)
    assert interval.lower <= lower + 1e-12
    assert interval.upper >= upper - 1e-12


# --- difference -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "offset"),
    [
        pytest.param(1.0, 0.0, id="plain-difference"),
        pytest.param(1.2, 0.0, id="baseline-times-1.2"),
        pytest.param(1.0, 0.01, id="baseline-plus-0.01"),
        pytest.param(1.0, -0.01, id="baseline-minus-0.01"),
        pytest.param(-0.5, 0.0, id="negative-scale-swaps-the-baseline-bounds"),
    ],
)
def test_difference_combines_both_sequences_at_the_split_level(scale: float, offset: float) -> None:
    diff = stats.difference_interval(
        30, 1000, 50, 5000, confidence=0.95, scale=scale, offset=offset
    )
    canary = stats.rate_interval(30, 1000, confidence=0.975)
    base = stats.rate_interval(50, 5000, confidence=0.975)
    ends = [canary.lower - scale * b - offset for b in (base.lower, base.upper)]
    ends += [canary.upper - scale * b - offset for b in (base.lower, base.upper)]
    assert diff.lower == pytest.approx(min(ends), abs=1e-15)
    assert diff.upper == pytest.approx(max(ends), abs=1e-15)
    assert diff.lower <= 30 / 1000 - (scale * 50 / 5000 + offset) <= diff.upper
    assert diff.confidence == 0.95


def test_difference_shows_a_canary_within_baseline_times_1_2() -> None:
    # 2.0 % vs a 3.0 % baseline, plenty of traffic: "<= baseline * 1.2" is proven.
    diff = stats.difference_interval(2_000, 100_000, 30_000, 1_000_000, confidence=0.95, scale=1.2)
    assert diff.upper <= 0.0


def test_difference_without_baseline_traffic_decides_nothing() -> None:
    diff = stats.difference_interval(2, 1000, 0, 0, confidence=0.95, offset=0.01)
    assert diff.lower < 0.0 < diff.upper


def test_difference_rejects_infinite_scale() -> None:
    with pytest.raises(ValueError, match="scale and offset must be finite"):
        stats.difference_interval(1, 10, 1, 10, confidence=0.95, scale=math.inf)


# --- samples needed -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "trials", "threshold", "side"),
    [
        pytest.param(3, 100, 0.04, "upper", id="criterion-3-percent-of-100"),
        pytest.param(100, 2800, 0.04, "upper", id="criterion-just-below"),
        pytest.param(0, 20, 0.04, "upper", id="criterion-zero-of-20"),
        pytest.param(12, 100, 0.06, "lower", id="trigger-twice-the-threshold"),
        pytest.param(7, 100, 0.06, "lower", id="trigger-just-above"),
        pytest.param(5.5, 90.2, 0.02, "lower", id="fractional-counts"),
    ],
)
def test_samples_needed_is_the_point_where_the_bound_crosses(
    events: float, trials: float, threshold: float, side: str
) -> None:
    more = stats.samples_needed(
        events,
        trials,
        threshold=threshold,
        confidence=0.95,
        side=side,  # type: ignore[arg-type]
    )
    assert more is not None
    assert more > 0
    rate = events / trials

    def crossed(extra: float) -> bool:
        total = trials + extra
        interval = stats.rate_interval(rate * total, total, confidence=0.95)
        return interval.upper <= threshold if side == "upper" else interval.lower > threshold

    assert crossed(more)
    assert not crossed(more - 1)


@pytest.mark.parametrize(
    ("events", "trials", "threshold", "side"),
    [
        pytest.param(5, 100, 0.04, "upper", id="rate-above-criterion-never-shows-it"),
        pytest.param(4, 100, 0.04, "upper", id="rate-at-criterion-never-shows-it"),
        pytest.param(5, 100, 0.06, "lower", id="rate-below-trigger-never-fires-it"),
        pytest.param(0, 0, 0.04, "upper", id="nothing-observed-yet"),
    ],
)
def test_samples_needed_is_none_when_the_rate_is_on_the_wrong_side(
    events: float, trials: float, threshold: float, side: str
) -> None:
    got = stats.samples_needed(
        events,
        trials,
        threshold=threshold,
        confidence=0.95,
        side=side,  # type: ignore[arg-type]
    )
    assert got is None


@pytest.mark.parametrize(
    ("events", "trials", "threshold", "side"),
    [
        pytest.param(100, 100_000, 0.04, "upper", id="criterion-already-shown"),
        pytest.param(300, 1000, 0.06, "lower", id="trigger-already-fired"),
        pytest.param(3, 40, 1.0, "upper", id="threshold-one-always-shown"),
        pytest.param(3, 40, -0.1, "lower", id="negative-threshold-always-exceeded"),
    ],
)
def test_samples_needed_is_zero_when_already_shown(
    events: float, trials: float, threshold: float, side: str
) -> None:
    got = stats.samples_needed(
        events,
        trials,
        threshold=threshold,
        confidence=0.95,
        side=side,  # type: ignore[arg-type]
    )
    assert got == 0


def test_samples_needed_rejects_an_unknown_side() -> None:
    with pytest.raises(ValueError, match="side must be"):
        stats.samples_needed(1, 10, threshold=0.5, confidence=0.95, side="both")  # type: ignore[arg-type]


# --- coverage under repeated looks ----------------------------------------------------------


def test_sequence_keeps_its_coverage_under_repeated_looks_where_wilson_does_not() -> None:
    """Look every 25 requests up to 2,500: the sequence stays >= 95 %, Wilson falls well below.

    A gate evaluated every minute is exactly this: a run counts as covered only
    if *every* look's interval contained the true rate.
    """
    rng = np.random.default_rng(20261122)
    runs, true_rate, looks = 300, 0.05, np.arange(25, 2_501, 25)
    draws = rng.random((runs, int(looks[-1]))) < true_rate
    events = np.cumsum(draws, axis=1)[:, looks - 1].astype(float)
    trials = np.broadcast_to(looks.astype(float), events.shape)

    wilson_lower, wilson_upper = _wilson(events, trials, 0.95)
    wilson_missed = np.any((wilson_lower > true_rate) | (wilson_upper < true_rate), axis=1)

    sequence_missed = np.zeros(runs, dtype=bool)
    for run in range(runs):
        for look in range(len(looks)):
            interval = stats.rate_interval(events[run, look], looks[look], confidence=0.95)
            if not interval.lower <= true_rate <= interval.upper:
                sequence_missed[run] = True
                break

    assert 1 - sequence_missed.mean() >= 0.95
    assert 1 - wilson_missed.mean() < 0.85
    # Each single look of Wilson is fine on its own: the failure is the looking.
    assert 1 - ((wilson_lower[:, -1] > true_rate) | (wilson_upper[:, -1] < true_rate)).mean() > 0.9
