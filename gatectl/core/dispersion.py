"""How bursty a rate's failures are: a dispersion factor from per-interval counts.

Requests do not fail independently: one bad upstream or one rate-limited
provider fails many requests in the same minute. Counts over a window are then
*overdispersed*: their variance is ``phi`` times the binomial ``n p (1 - p)``
(for a Beta-binomial minute of ``n`` requests with intra-minute correlation
``rho``, ``phi = 1 + (n - 1) rho``). A confidence sequence built for
independent requests is then ``sqrt(phi)`` too narrow, and a healthy canary
falls back on a burst.

The factor is estimated the quasi-binomial way (McCullagh and Nelder 1989,
§4.5; Wedderburn 1974): Pearson's statistic over the ``k`` intervals of the
window, divided by its degrees of freedom,

    X^2 = sum_i (x_i - n_i p)^2 / (n_i p (1 - p)),   p = sum x_i / sum n_i
        = (sum x_i^2 / n_i - (sum x_i)^2 / sum n_i) / (p (1 - p))
    phi = max(1, X^2 / (k - 1))

so three sums and a count per workflow suffice, which Prometheus computes
server-side with one subquery (``dispersion_query``): no per-minute series
ever leaves Prometheus. ``gatectl.core.stats`` then bounds the rate on the
effective counts ``x / phi`` and ``n / phi``, with ``phi`` an upper
confidence bound (``dispersion_bound``; docs/statistics.md).

A canary's first few intervals cannot tell a burst from a bad canary, so the
canary's bound is **pooled** with the baseline's longer history
(``pooled_bound``): the tracks' Pearson statistics and degrees of freedom
are summed, the baseline's scaled to the canary's interval size, unless the
canary's own intervals are significantly burstier than the baseline's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

from gatectl.policy.durations import prometheus_range

__all__ = [
    "DISPERSION_CONFIDENCE",
    "DISPERSION_LABEL",
    "GUARD_LEVEL",
    "MIN_INTERVAL_SECONDS",
    "POOL_LOOKBACK_SECONDS",
    "DispersionSums",
    "dispersion_bound",
    "dispersion_factor",
    "dispersion_interval",
    "dispersion_query",
    "guard_level",
    "pearson_ratio",
    "pooled_bound",
    "sums_from",
]

DISPERSION_LABEL = "gatectl_dispersion"
"""The label that tells the four answers of ``dispersion_query`` apart."""

MIN_INTERVAL_SECONDS = 60
"""The intervals are one minute long, longer when scrapes are sparser (``dispersion_interval``)."""

_PARTS = ("x2n", "x", "n", "k")


@dataclass(frozen=True)
class DispersionSums:
    """Per-interval sums over the window: ``sum x_i^2 / n_i``, ``sum x_i``, ``sum n_i``, ``k``.

    Only intervals with ``n_i > 0`` count.
    """

    squares_over_trials: float
    events: float
    trials: float
    intervals: float


def pearson_ratio(sums: DispersionSums) -> float | None:
    """Pearson's X^2 over its ``k - 1`` degrees of freedom (about 1 for binomial counts).

    ``None`` when it cannot be told: fewer than two intervals, no events,
    every request failing, or sums that are negative or not finite.
    """
    values = (sums.squares_over_trials, sums.events, sums.trials, sums.intervals)
    if not all(math.isfinite(v) and v >= 0 for v in values):
        return None
    if sums.intervals < 2 or sums.trials <= 0:
        return None
    rate = sums.events / sums.trials
    if rate <= 0.0 or rate >= 1.0:
        return None
    pearson = (sums.squares_over_trials - sums.events * rate) / (rate * (1.0 - rate))
    ratio = pearson / (sums.intervals - 1.0)
    return ratio if math.isfinite(ratio) else None


def dispersion_factor(sums: DispersionSums) -> float:
    """``phi >= 1`` for the bounds: ``pearson_ratio``, never below 1, 1 when unknown.

    Below 1 (underdispersion, or noise around 1) would narrow the sequence
    below the binomial one: never done.
    """
    ratio = pearson_ratio(sums)
    return 1.0 if ratio is None else max(1.0, ratio)


DISPERSION_CONFIDENCE = 0.95
"""The bounds use an upper confidence bound on ``phi``, not the estimate itself."""


@lru_cache(maxsize=4096)
def _chi2_lower_quantile(dof: float, tail: float) -> float:
    """The ``tail`` quantile of chi-squared with ``dof`` degrees of freedom.

    Exact for 1 and 2 degrees of freedom, Wilson-Hilferty (1931) above: within
    a few percent from 3 degrees of freedom on, closer as they grow.
    """
    if dof <= 1.0:
        return NormalDist().inv_cdf(0.5 + tail / 2.0) ** 2
    if dof <= 2.0:
        return -2.0 * math.log1p(-tail)
    z = NormalDist().inv_cdf(tail)
    spread = 2.0 / (9.0 * dof)
    return dof * max(1e-12, 1.0 - spread + z * math.sqrt(spread)) ** 3


def dispersion_bound(sums: DispersionSums, *, confidence: float = DISPERSION_CONFIDENCE) -> float:
    """The ``phi`` the bounds use: an upper confidence bound, at most the requests per interval.

    ``X^2`` over ``k - 1`` degrees of freedom estimates ``phi`` with a
    relative error of about ``sqrt(2 / (k - 1))``, so early in a step, when a
    burst has just happened, the estimate is least reliable exactly when it
    matters. The bound is ``max(1, X^2 / (k - 1)) * (k - 1) / chi2_{k-1}(1 -
    confidence)`` (the chi-squared interval for a variance ratio), capped at
    the mean number of requests per interval: whatever the correlation,
    ``phi = 1 + (n - 1) rho <= n``, so each interval then counts as one
    observation. With one interval (or none) it is that cap; without events
    or when every request failed, 1 (nothing to widen).
    """
    if not all(
        math.isfinite(v) and v >= 0
        for v in (sums.squares_over_trials, sums.events, sums.trials, sums.intervals)
    ):
        return 1.0
    if sums.trials <= 0 or sums.events <= 0 or sums.events >= sums.trials:
        return 1.0
    cap = max(1.0, sums.trials / max(1.0, sums.intervals))
    if sums.intervals < 2:
        return cap
    dof = sums.intervals - 1.0
    factor = dof / _chi2_lower_quantile(dof, 1.0 - confidence)
    return min(cap, dispersion_factor(sums) * factor)


POOL_LOOKBACK_SECONDS = 6 * 3600
"""The baseline's history pooled into the canary's bound: its last 6 hours, for every gate."""

GUARD_LEVEL = 0.05
"""The heterogeneity test's level from 6 canary degrees of freedom on (``guard_level``)."""

_GUARD_FIRST = 0.3
"""The test's level with one canary degree of freedom (``guard_level``)."""


def guard_level(dof: float) -> float:
    """The heterogeneity test's level on ``dof`` canary degrees of freedom: max(0.05, 0.3 / dof).

    Rejecting a homogeneous canary only costs speed (it keeps its own,
    wider bound), while missing a burstier one costs coverage; with one or
    two degrees of freedom the test has little power, so it runs at a
    higher level there.
    """
    return max(GUARD_LEVEL, _GUARD_FIRST / max(1.0, dof))


def _pearson(sums: DispersionSums) -> tuple[float, float] | None:
    """``(X^2, k - 1)``, or ``None`` when ``pearson_ratio`` cannot tell."""
    ratio = pearson_ratio(sums)
    if ratio is None:
        return None
    dof = sums.intervals - 1.0
    return ratio * dof, dof


def pooled_bound(
    canary: DispersionSums,
    baseline: DispersionSums | None,
    *,
    confidence: float = DISPERSION_CONFIDENCE,
) -> float:
    """The canary's ``phi``: its Pearson statistic pooled with the baseline's longer history.

    With ``A``, ``d_c`` the canary's ``X^2`` and degrees of freedom, ``B``,
    ``d_b`` the baseline's (over ``POOL_LOOKBACK_SECONDS``), each floored at
    its degrees of freedom (noise below binomial never narrows), and mean
    requests per interval ``n_c``, ``n_b``: both tracks are taken to share
    one per-interval rate variation (Beta-binomial, ``phi(n) = 1 + (n - 1)
    rho``), so the baseline's factor is ``1 + s (phi_c - 1)``, ``s = (n_b -
    1) / (n_c - 1)``. ``A / phi_c + B / (1 + s (phi_c - 1))`` is then about
    chi-squared on ``d_c + d_b`` degrees of freedom and falls as ``phi_c``
    grows; the upper bound is the root of

        A / v + B / (1 + s (v - 1)) = chi2_{d_c + d_b}(1 - confidence)

    (a quadratic; with ``s = 1``, ``(A + B) / chi2``: statistics and degrees
    of freedom summed), at least 1, at most ``n_c``.

    The guard keeps the canary's own ``dispersion_bound`` when the canary
    has fewer than two intervals, when the baseline cannot tell (``None``,
    fewer than two intervals, at most one request per interval), or when the
    canary is significantly burstier than the baseline scaled to its size:
    its raw ``X^2 > (1 + (max(1, B / d_b) - 1) / s) chi2_{d_c}(1 -
    guard_level(d_c))``.
    """
    own = dispersion_bound(canary, confidence=confidence)
    here = _pearson(canary)
    there = None if baseline is None else _pearson(baseline)
    if here is None or there is None or baseline is None:
        return own
    size_c = canary.trials / canary.intervals
    size_b = baseline.trials / baseline.intervals
    if size_c <= 1.0 or size_b <= 1.0:
        return own
    scale = (size_b - 1.0) / (size_c - 1.0)
    (pearson_c, dof_c), (pearson_b, dof_b) = here, there
    a, b = max(pearson_c, dof_c), max(pearson_b, dof_b)
    expected = 1.0 + (b / dof_b - 1.0) / scale
    if pearson_c > expected * _chi2_lower_quantile(dof_c, 1.0 - guard_level(dof_c)):
        return own
    q = _chi2_lower_quantile(dof_c + dof_b, 1.0 - confidence)
    # q s v^2 + (q (1 - s) - a s - b) v - a (1 - s) = 0: the larger root.
    quad, lin, const = q * scale, q * (1.0 - scale) - a * scale - b, -a * (1.0 - scale)
    root = (-lin + math.sqrt(max(0.0, lin * lin - 4.0 * quad * const))) / (2.0 * quad)
    return min(size_c, max(1.0, root))


def dispersion_interval(scrape_interval: float) -> int:
    """Interval length in whole seconds: a minute, or 2 scrapes rounded up to minutes."""
    minutes = math.ceil(max(MIN_INTERVAL_SECONDS, 2.0 * scrape_interval) / 60.0)
    return int(minutes * 60)


def dispersion_query(
    numerator: str, denominator: str, *, window_seconds: float, interval: int
) -> str:
    """One query answering the four sums per workflow, told apart by ``gatectl_dispersion``.

    ``numerator`` and ``denominator`` are the rate's queries rendered over one
    interval (``increase(...[1m])``), grouped ``by (workflow)`` for a batch or
    not grouped for one gate. Each subquery step is one interval, so the
    intervals do not overlap; an interval without requests is left out.
    """
    trials = f"(({denominator}) > 0)"
    events = f"(({numerator}) and {trials})"
    probe = f"[{prometheus_range(max(window_seconds, interval))}:{interval}s]"
    parts = {
        "x2n": f"sum_over_time(({events} ^ 2 / {trials}){probe})",
        "x": f"sum_over_time({events}{probe})",
        "n": f"sum_over_time({trials}{probe})",
        "k": f"count_over_time({trials}{probe})",
    }
    return " or ".join(
        f'label_replace({parts[name]}, "{DISPERSION_LABEL}", "{name}", "", "")' for name in _PARTS
    )


def sums_from(values: dict[str, float]) -> DispersionSums | None:
    """The sums from ``{label value: number}`` of one workflow; ``None`` without intervals.

    ``x2n`` and ``x`` are absent when the numerator has no series at all (no
    event yet): 0.
    """
    if "k" not in values or "n" not in values:
        return None
    return DispersionSums(
        squares_over_trials=values.get("x2n", 0.0),
        events=values.get("x", 0.0),
        trials=values["n"],
        intervals=values["k"],
    )
