"""The dispersion factor: exact against Pearson's X^2 computed directly, and its properties.

Property tests draw per-minute counts with numpy: binomial (independent
requests) must give a ratio near 1, Beta-binomial with intra-minute
correlation ``rho`` must track ``1 + (n - 1) rho``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from gatectl.core.dispersion import (
    DispersionSums,
    dispersion_bound,
    dispersion_factor,
    dispersion_interval,
    dispersion_query,
    pearson_ratio,
    sums_from,
)


def sums(counts: list[tuple[int, int]]) -> DispersionSums:
    """The four sums the Prometheus query returns, from (events, requests) per interval."""
    kept = [(x, n) for x, n in counts if n > 0]
    return DispersionSums(
        squares_over_trials=sum(x * x / n for x, n in kept),
        events=float(sum(x for x, _ in kept)),
        trials=float(sum(n for _, n in kept)),
        intervals=float(len(kept)),
    )


def direct(counts: list[tuple[int, int]]) -> float:
    """Pearson's X^2 / (k - 1) from its definition, in exact rationals."""
    kept = [(x, n) for x, n in counts if n > 0]
    p = Fraction(sum(x for x, _ in kept), sum(n for _, n in kept))
    chi2 = sum(Fraction(x - n * p) ** 2 / (n * p * (1 - p)) for x, n in kept)
    return float(chi2 / (len(kept) - 1))


@pytest.mark.parametrize(
    "counts",
    [
        pytest.param([(1, 10), (2, 10), (0, 10), (3, 10)], id="small-even"),
        pytest.param([(0, 100), (50, 100), (1, 100), (2, 100)], id="one-burst"),
        pytest.param([(2, 100), (2, 100), (2, 100)], id="perfectly-even-underdispersed"),
        pytest.param([(3, 7), (10, 250), (0, 1), (40, 1000), (0, 0)], id="uneven-sizes-and-empty"),
        pytest.param([(200, 10_000), (900, 12_000), (150, 9_000)], id="large-counts"),
    ],
)
def test_ratio_equals_pearson_computed_directly(counts: list[tuple[int, int]]) -> None:
    assert pearson_ratio(sums(counts)) == pytest.approx(direct(counts), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(DispersionSums(0.0, 0.0, 100.0, 5.0), None, id="no-events"),
        pytest.param(DispersionSums(100.0, 100.0, 100.0, 5.0), None, id="all-fail"),
        pytest.param(DispersionSums(1.0, 1.0, 10.0, 1.0), None, id="one-interval"),
        pytest.param(DispersionSums(1.0, 1.0, 0.0, 0.0), None, id="no-requests"),
        pytest.param(DispersionSums(float("nan"), 1.0, 10.0, 3.0), None, id="nan"),
        pytest.param(DispersionSums(1.0, -1.0, 10.0, 3.0), None, id="negative"),
        pytest.param(DispersionSums(float("inf"), 1.0, 10.0, 3.0), None, id="infinite"),
    ],
)
def test_ratio_is_unknown_when_the_counts_cannot_tell(
    given: DispersionSums, expected: float | None
) -> None:
    assert pearson_ratio(given) is expected
    assert dispersion_factor(given) == 1.0


@pytest.mark.parametrize(
    ("counts", "factor"),
    [
        pytest.param([(2, 100), (2, 100), (2, 100)], 1.0, id="underdispersed-floored-at-1"),
        pytest.param([(0, 100), (50, 100), (1, 100), (2, 100)], None, id="burst-above-1"),
    ],
)
def test_factor_is_the_ratio_floored_at_one(
    counts: list[tuple[int, int]], factor: float | None
) -> None:
    expected = factor if factor is not None else direct(counts)
    assert expected > 1.0 or factor == 1.0
    assert dispersion_factor(sums(counts)) == pytest.approx(expected, rel=1e-12)


def _minutes(
    seed: int, *, per_minute: int, mean: float, rho: float, minutes: int = 2880
) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    if rho == 0.0:
        rates = np.full(minutes, mean)
    else:
        scale = (1.0 - rho) / rho
        rates = rng.beta(mean * scale, (1.0 - mean) * scale, size=minutes)
    events = rng.binomial(per_minute, rates)
    return [(int(x), per_minute) for x in events]


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed-{s}") for s in range(6)])
@pytest.mark.parametrize(
    ("per_minute", "mean"),
    [
        pytest.param(10, 0.05, id="10-per-min"),
        pytest.param(100, 0.02, id="100-per-min"),
        pytest.param(1000, 0.02, id="1000-per-min"),
    ],
)
def test_binomial_counts_give_a_ratio_near_one(seed: int, per_minute: int, mean: float) -> None:
    ratio = pearson_ratio(sums(_minutes(seed, per_minute=per_minute, mean=mean, rho=0.0)))
    assert ratio is not None
    assert 0.85 <= ratio <= 1.15


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed-{s}") for s in range(4)])
@pytest.mark.parametrize(
    ("per_minute", "rho"),
    [
        pytest.param(100, 0.01, id="100-rho-0.01"),
        pytest.param(100, 0.05, id="100-rho-0.05"),
        pytest.param(100, 0.2, id="100-rho-0.2"),
        pytest.param(1000, 0.01, id="1000-rho-0.01"),
        pytest.param(1000, 0.05, id="1000-rho-0.05"),
        pytest.param(1000, 0.2, id="1000-rho-0.2"),
    ],
)
def test_beta_binomial_counts_track_the_true_factor(seed: int, per_minute: int, rho: float) -> None:
    counts = _minutes(seed, per_minute=per_minute, mean=0.02, rho=rho)
    true_factor = 1.0 + (per_minute - 1) * rho
    assert dispersion_factor(sums(counts)) == pytest.approx(true_factor, rel=0.25)


@pytest.mark.parametrize(
    ("scrape", "expected"),
    [
        pytest.param(1.0, 60, id="1s"),
        pytest.param(15.0, 60, id="15s"),
        pytest.param(30.0, 60, id="30s"),
        pytest.param(45.0, 120, id="45s"),
        pytest.param(60.0, 120, id="60s"),
        pytest.param(300.0, 600, id="5m"),
    ],
)
def test_interval_is_a_minute_or_two_scrapes(scrape: float, expected: int) -> None:
    assert dispersion_interval(scrape) == expected


def test_query_reads_the_four_sums_per_interval() -> None:
    query = dispersion_query("NUM", "DEN", window_seconds=3600, interval=60)
    events, trials, probe = "((NUM) and ((DEN) > 0))", "((DEN) > 0)", "[3600s:60s]"
    assert query == (
        f'label_replace(sum_over_time(({events} ^ 2 / {trials}){probe}), "gatectl_dispersion",'
        ' "x2n", "", "")'
        f' or label_replace(sum_over_time({events}{probe}), "gatectl_dispersion", "x", "", "")'
        f' or label_replace(sum_over_time({trials}{probe}), "gatectl_dispersion", "n", "", "")'
        f' or label_replace(count_over_time({trials}{probe}), "gatectl_dispersion", "k", "", "")'
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            {"x2n": 1.5, "x": 3.0, "n": 30.0, "k": 3.0},
            DispersionSums(1.5, 3.0, 30.0, 3.0),
            id="all-four",
        ),
        pytest.param({"n": 30.0, "k": 3.0}, DispersionSums(0.0, 0.0, 30.0, 3.0), id="no-events"),
        pytest.param({"x2n": 1.0, "x": 1.0}, None, id="no-requests"),
    ],
)
def test_sums_from_the_answer(values: dict[str, float], expected: DispersionSums | None) -> None:
    assert sums_from(values) == expected


@pytest.mark.parametrize(
    "counts",
    [
        pytest.param([(1, 10), (2, 10), (0, 10), (3, 10)], id="4-intervals"),
        pytest.param([(0, 100), (50, 100), (1, 100), (2, 100), (3, 100), (1, 100)], id="burst"),
        pytest.param([(20, 1000)] * 30 + [(25, 1000)] * 30, id="60-even"),
        pytest.param([(2, 100)] * 3, id="underdispersed"),
    ],
)
def test_bound_is_the_chi_squared_upper_limit_capped_at_requests_per_interval(
    counts: list[tuple[int, int]],
) -> None:
    from scipy.stats import chi2  # an independent quantile

    k = len(counts)
    mean_requests = sum(n for _, n in counts) / k
    expected = min(mean_requests, max(1.0, direct(counts)) * (k - 1) / chi2.ppf(0.05, k - 1))
    # Wilson-Hilferty below 10 degrees of freedom errs on the wide side, by up to 8 %.
    assert expected * (1 - 1e-12) <= dispersion_bound(sums(counts)) <= expected * 1.08


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(DispersionSums(10.0, 10.0, 100.0, 1.0), 100.0, id="one-interval-is-the-cap"),
        pytest.param(DispersionSums(0.0, 0.0, 100.0, 5.0), 1.0, id="no-events"),
        pytest.param(DispersionSums(100.0, 100.0, 100.0, 5.0), 1.0, id="all-fail"),
        pytest.param(DispersionSums(float("nan"), 1.0, 10.0, 3.0), 1.0, id="nan"),
        pytest.param(DispersionSums(0.1, 0.1, 0.5, 2.0), 1.0, id="cap-never-below-1"),
    ],
)
def test_bound_edges(given: DispersionSums, expected: float) -> None:
    assert dispersion_bound(given) == expected


def test_bound_tends_to_the_estimate_as_intervals_accumulate() -> None:
    counts = _minutes(3, per_minute=1000, mean=0.02, rho=0.05)
    estimate = dispersion_factor(sums(counts))
    assert estimate < dispersion_bound(sums(counts)) < estimate * 1.07
    assert dispersion_bound(sums(counts[:10])) > 2 * dispersion_factor(sums(counts[:10]))
