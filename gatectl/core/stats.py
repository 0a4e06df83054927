"""Confidence bounds for rates that stay valid however often the gate looks.

The controller evaluates a gate every minute. A fixed-sample interval (Wilson,
Clopper-Pearson) checked every minute is wrong far more often than its nominal
level says: with enough looks, noise alone crosses any fixed threshold. The
bounds here are a *confidence sequence*: with probability at least
``confidence``, every interval ever computed on the growing sample contains the
true rate, simultaneously. Looking more often costs nothing.

Method: the two-sided beta-binomial mixture of Howard, Ramdas, McAuliffe and
Sekhon (2021, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Ann. Statist. 49(2); Robbins 1970). For a candidate rate ``p``
the likelihood ratio of ``events`` in ``trials`` under an alternative ``q`` is
mixed over ``q ~ Beta(k p, k (1 - p))``:

    M(p) = B(k p + S, k (1 - p) + F) / B(k p, k (1 - p)) / (p^S (1 - p)^F)

(``S`` events, ``F`` non-events). Under rate ``p`` this is a non-negative
martingale with mean 1, so by Ville's inequality ``P(sup_n M_n(p) >= 1/alpha)
<= alpha``; the set ``{p : M(p) < 1/alpha}`` is therefore a confidence
sequence. It is an interval around ``S / (S + F)`` (checked numerically in the
tests), found here by root finding on each side. ``k`` sets which sample size
the sequence is tightest for (Howard et al.'s ``t_opt``); see docs/statistics.md.

Standard library only (``math``): the CLI must start fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from gatectl.core.observations import Interval

__all__ = [
    "MAX_COUNT",
    "METHOD",
    "PRIOR_STRENGTH",
    "count_error",
    "difference_interval",
    "difference_level",
    "difference_of",
    "log_mixture",
    "rate_interval",
    "samples_needed",
]

PRIOR_STRENGTH = 100.0
"""``k``, the mixing Beta's strength: tightest near ~800 trials (``t_opt`` at alpha 0.05)."""

METHOD = "beta-binomial confidence sequence (Howard et al. 2021)"
"""``Interval.method`` of every rate interval."""

_DIFFERENCE_METHOD = "difference of beta-binomial confidence sequences (union bound)"
_TINY = 1e-300
"""Smallest rate the root finder tries; below it the bound is reported as 0 (or 1)."""
_ONE = 1.0 - 1e-15
"""Largest rate the root finder tries."""
_TOLERANCE = 1e-13
MAX_COUNT = 2.0**62
"""Largest count accepted: 4.6e18 requests in one window is a broken query, not traffic."""
_MAX_DOUBLINGS = 1100
"""Steps out from the estimate: a step of two float spacings, doubled, passes 0 or 1 within this."""
_MAX_SEARCH = 66
"""Doublings, then halvings, of an integer in ``[1, 2**62]``: 63 of each at most."""
_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)
_STIRLING_FROM = 15.0
"""From here on ``lgamma``'s Stirling remainder is summed (error < 4e-18), below it subtracted."""


def _stirling_remainder(x: float) -> float:
    """``lgamma(x) - ((x - 1/2) log x - x + log(2 pi) / 2)``, without cancellation at large x."""
    if x < _STIRLING_FROM:
        return math.lgamma(x) - ((x - 0.5) * math.log(x) - x + _HALF_LOG_TWO_PI)
    inverse = 1.0 / x
    y = inverse * inverse
    # B_2k / (2k (2k - 1) x^(2k-1)), k = 1..6: the first term left out is < 1 / (156 x^13).
    return inverse * (
        1 / 12 - y * (1 / 360 - y * (1 / 1260 - y * (1 / 1680 - y * (1 / 1188 - y * 691 / 360360))))
    )


def _deviance(x: float, mean: float, difference: float) -> float:
    """``x log(x / mean) + mean - x >= 0`` with ``difference = x - mean`` given directly.

    Loader's ``bd0`` (2000, the binomial density of R and scipy): near ``mean``
    both terms are huge and nearly cancel, so a series in ``difference`` is
    summed instead.
    """
    if abs(difference) < 0.1 * (x + mean):
        ratio = difference / (x + mean)
        total = difference * ratio
        term = 2.0 * x * ratio
        square = ratio * ratio
        for j in range(1, 40):  # |ratio| < 0.1: each term is 100 times smaller
            term *= square
            following = total + term / (2 * j + 1)
            if following == total:
                break
            total = following
        return total
    return x * (math.log(x) - math.log(mean)) - difference  # x / mean may overflow


def log_mixture(
    p: float, events: float, trials: float, *, strength: float = PRIOR_STRENGTH
) -> float:
    """``log M(p)``: the log mixture martingale at candidate rate ``0 < p < 1``.

    ``p`` lies outside the confidence sequence at level ``1 - alpha`` exactly
    when this is ``>= log(1 / alpha)``. Exposed for tests and for callers that
    only need to know whether a threshold is excluded (one evaluation instead of
    a root search).

    Near a bound ``log M`` is a few units, while each ``lgamma`` of a 10^15
    count is about 10^16: summed directly they keep no digit. So the large
    ``lgamma`` terms are split by Stirling's formula and regrouped into two
    non-negative deviances, each computed from the difference
    ``events - p * trials`` (Loader 2000); the small ``lgamma`` terms of the
    prior are taken as they are. Right to ~1e-12 up to 10^9 trials and ~1e-7
    at 10^18 (the rounding of ``p * trials`` itself), where ``lgamma`` alone
    is off by thousands.
    """
    events = min(events, trials)
    failures = trials - events
    a, b = strength * p, strength * (1.0 - p)
    hits, misses, total = a + events, b + failures, strength + trials
    difference = events - p * trials  # = hits - p * total = -(misses - (1 - p) * total)
    return (
        _deviance(hits, p * total, difference)
        + _deviance(misses, (1.0 - p) * total, -difference)
        + a * math.log(p)
        + b * math.log1p(-p)
        - 0.5 * (math.log(hits) + math.log(misses) - math.log(total))
        + _HALF_LOG_TWO_PI
        + _stirling_remainder(hits)
        + _stirling_remainder(misses)
        - _stirling_remainder(total)
        - math.lgamma(a)
        - math.lgamma(b)
        + math.lgamma(strength)
    )


def _mixture(events: float, trials: float, strength: float) -> Callable[[float], float]:
    """``p -> log_mixture(p, events, trials, strength=strength)``, for one root search.

    What does not depend on ``p`` (the counts' total, its log and Stirling
    remainder, ``lgamma(strength)``) is computed once instead of at each of
    the search's evaluations; the rest is the same arithmetic in the same
    order, so each value is bit for bit ``log_mixture``'s (tested).
    """
    events = min(events, trials)
    failures = trials - events
    total = strength + trials
    log_total = math.log(total)
    remainder_total = _stirling_remainder(total)
    lgamma_strength = math.lgamma(strength)
    log, log1p, lgamma = math.log, math.log1p, math.lgamma

    def at(p: float) -> float:
        a, b = strength * p, strength * (1.0 - p)
        hits, misses = a + events, b + failures
        difference = events - p * trials
        return (
            _deviance(hits, p * total, difference)
            + _deviance(misses, (1.0 - p) * total, -difference)
            + a * log(p)
            + b * log1p(-p)
            - 0.5 * (log(hits) + log(misses) - log_total)
            + _HALF_LOG_TWO_PI
            + _stirling_remainder(hits)
            + _stirling_remainder(misses)
            - remainder_total
            - lgamma(a)
            - lgamma(b)
            + lgamma_strength
        )

    return at


def count_error(events: float, trials: float) -> str | None:
    """Why ``events`` in ``trials`` cannot be bounded, or ``None`` when they can.

    Counts must be finite, ``>= 0`` and at most ``MAX_COUNT``; events above
    trials are accepted (Prometheus extrapolates each ``increase()`` on its
    own) and clipped. Callers that must not raise ask this first.
    """
    if not (math.isfinite(events) and math.isfinite(trials)):
        return f"counts must be finite, got events={events!r}, trials={trials!r}"
    if trials < 0 or events < 0:
        return f"counts must be >= 0, got events={events!r}, trials={trials!r}"
    if trials > MAX_COUNT:
        return f"counts must be <= 2**62, got trials={trials!r}"
    return None


def _check_counts(events: float, trials: float) -> tuple[float, float]:
    error = count_error(events, trials)
    if error is not None:
        raise ValueError(error)
    # Prometheus extrapolates each increase() separately: events can exceed trials by a hair.
    return min(events, trials), trials


def _check_confidence(confidence: float) -> float:
    if not (math.isfinite(confidence) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return confidence


def _rate_tolerance(b: float) -> float:
    """Brent's tolerance at ``b``: relative to the distance from the nearer end of [0, 1].

    Bounds of 1e-17, or of 1 - 1e-13, keep their digits too.
    """
    return 2.0 * 2.2e-16 * abs(b) + 0.5 * _TOLERANCE * min(abs(b), abs(1.0 - b))


def _brent(
    f: Callable[[float], float],
    a: float,
    b: float,
    fa: float | None = None,
    fb: float | None = None,
    *,
    tolerance: Callable[[float], float] = _rate_tolerance,
) -> tuple[float, float]:
    """A root of ``f`` bracketed by ``[a, b]`` (signs differ); returns the final bracket.

    Brent's method (inverse quadratic interpolation with bisection as the
    fallback): robust where ``f`` is huge near one end, and ~10 evaluations
    instead of bisection's ~45. ``fa`` and ``fb``, when the caller has them
    already, are ``f(a)`` and ``f(b)``: not evaluated again.
    """
    fa = f(a) if fa is None else fa
    fb = f(b) if fb is None else fb
    if fa == 0.0:
        return a, a
    if fb == 0.0:
        return b, b
    c, fc = a, fa
    d = e = b - a
    for _ in range(200):
        if (fb > 0) == (fc > 0):
            c, fc = a, fa
            d = e = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol = tolerance(b)
        m = 0.5 * (c - b)
        if abs(m) <= tol or fb == 0.0:
            return (b, c) if b <= c else (c, b)
        if abs(e) >= tol and abs(fa) > abs(fb):
            s = fb / fa
            if a == c:
                p, q = 2.0 * m * s, 1.0 - s
            else:
                q, r = fa / fc, fb / fc
                p = s * (2.0 * m * q * (q - r) - (b - a) * (r - 1.0))
                q = (q - 1.0) * (r - 1.0) * (s - 1.0)
            if p > 0:
                q = -q
            p = abs(p)
            if 2.0 * p < min(3.0 * m * q - abs(tol * q), abs(e * q)):
                e, d = d, p / q
            else:
                d = e = m
        else:
            d = e = m
        a, fa = b, fb
        b += d if abs(d) > tol else math.copysign(tol, m)
        fb = f(b)
    return (b, c) if b <= c else (c, b)  # pragma: no cover - Brent converges long before


def _half_width_guess(events: float, trials: float, level: float, strength: float) -> float:
    """The normal approximation of the sequence's half-width: a first bracket, not an answer."""
    rate = (events + 0.5) / (trials + 1.0)
    miss = (trials - events + 0.5) / (trials + 1.0)  # not 1 - rate: that is 0 at 2**53 events
    ratio = trials / (strength + 1.0)
    if ratio < 1e-9:
        return 1.0  # a billionth of a request tells nothing: step straight to the limit
    spread = (1.0 + 1.0 / ratio) * (2.0 * level + math.log1p(ratio))
    return math.sqrt(rate * miss / trials * spread)


def _end(excess: Callable[[float], float], estimate: float, step: float, *, limit: float) -> float:
    """The end of the sequence between ``estimate`` (inside) and ``limit``, towards ``limit``.

    Steps out from the estimate, doubling, until a point is excluded, then
    solves on that bracket (the values already computed at its ends are not
    computed again). Returns the excluded side of the final bracket, so
    rounding never narrows the interval; ``limit`` itself if nothing before it
    is excluded.
    """
    inside = estimate
    inside_excess: float | None = None  # excess(inside), once known
    direction = 1.0 if limit > estimate else -1.0
    step = max(step, 2.0 * math.ulp(inside))  # a step below the float spacing would not move
    for _ in range(_MAX_DOUBLINGS):
        candidate = inside + direction * step
        if (candidate - limit) * direction >= 0:
            break
        candidate_excess = excess(candidate)
        if candidate_excess > 0:
            return _solve(excess, (inside, inside_excess), (candidate, candidate_excess), direction)
        inside, inside_excess, step = candidate, candidate_excess, step * 2.0
    limit_excess = excess(limit)
    if limit_excess <= 0:
        return limit
    return _solve(excess, (inside, inside_excess), (limit, limit_excess), direction)


def _solve(
    excess: Callable[[float], float],
    inside: tuple[float, float | None],
    outside: tuple[float, float],
    direction: float,
) -> float:
    """The excluded side of Brent's final bracket between ``inside`` and ``outside``.

    Each is a rate and its excess (``None`` when not computed yet). The lower
    end is solved on ``log p``: with a few (or fractional) events its bracket
    reaches down to 1e-300 and the root may lie hundreds of orders of
    magnitude below the estimate, where steps in ``p`` would only halve. The
    upper end likewise on ``log(1 - p)``: with a fraction of a request (a
    large dispersion factor) it lies a billionth below 1, where steps in
    ``p`` would halve thirty times, and Brent's tolerance there is still the
    one in ``p`` (never finer than the float spacing near 1). Each point
    Brent evaluated maps back through the same function, so the end returned
    is still a point found excluded.
    """
    (low, low_excess), (high, high_excess) = inside, outside
    if direction > 0:

        def on_log_complement(v: float) -> float:
            return excess(-math.expm1(v))

        def in_rate(v: float) -> float:
            return _rate_tolerance(-math.expm1(v)) / math.exp(v)  # dp = (1 - p) dv

        # Rising in p, falling in log(1 - p): the outside end is the lower one here.
        end_at = math.log1p(-high)
        found = _brent(
            on_log_complement,
            end_at,
            math.log1p(-low),
            high_excess,
            low_excess,
            tolerance=in_rate,
        )[0]
        return high if found == end_at else -math.expm1(found)

    def on_log_scale(u: float) -> float:
        return excess(math.exp(u))

    end_at = math.log(high)
    found = _brent(on_log_scale, end_at, math.log(low), high_excess, low_excess)[0]
    return high if found == end_at else math.exp(found)


def _bounds(events: float, trials: float, alpha: float, strength: float) -> tuple[float, float]:
    """The confidence sequence's ``(lower, upper)`` at level ``1 - alpha``."""
    if trials <= 0:
        return 0.0, 1.0
    level = math.log(1.0 / alpha)
    estimate = events / trials

    mixture = _mixture(events, trials, strength)

    def excess(p: float) -> float:
        return mixture(p) - level

    step = _half_width_guess(events, trials, level, strength)
    lower = 0.0
    if estimate > _TINY:
        lower = _end(excess, min(estimate, _ONE), step, limit=_TINY)
        lower = 0.0 if lower <= _TINY else lower
    upper = 1.0
    if estimate < _ONE:
        upper = _end(excess, max(estimate, _TINY), step, limit=_ONE)
        upper = 1.0 if upper >= _ONE else upper
    return max(0.0, min(lower, estimate)), min(1.0, max(upper, estimate))


def _check_dispersion(dispersion: float) -> float:
    if not (math.isfinite(dispersion) and dispersion >= 1.0):
        raise ValueError(f"dispersion must be a finite number >= 1, got {dispersion!r}")
    return dispersion


def rate_interval(
    events: float, trials: float, *, confidence: float, dispersion: float = 1.0
) -> Interval:
    """Bounds on the rate ``events / trials``, valid simultaneously at every look.

    ``trials == 0`` gives ``[0, 1]``. Counts may be fractional (Prometheus'
    ``increase()`` extrapolates); ``events`` above ``trials`` is clipped.
    ``dispersion`` (``phi >= 1``, ``gatectl.core.dispersion``) widens the
    sequence for bursty failures: it is computed on the effective counts
    ``events / phi`` and ``trials / phi``. Raises ``ValueError`` for negative
    or non-finite counts, a confidence outside (0, 1) or a dispersion below 1.
    """
    events, trials = _check_counts(events, trials)
    confidence = _check_confidence(confidence)
    dispersion = _check_dispersion(dispersion)
    events, trials = events / dispersion, trials / dispersion
    lower, upper = _bounds(events, trials, 1.0 - confidence, PRIOR_STRENGTH)
    return Interval(lower=lower, upper=upper, confidence=confidence, method=METHOD)


def difference_interval(
    canary_events: float,
    canary_trials: float,
    baseline_events: float,
    baseline_trials: float,
    *,
    confidence: float,
    scale: float = 1.0,
    offset: float = 0.0,
    canary_dispersion: float = 1.0,
    baseline_dispersion: float = 1.0,
) -> Interval:
    """Bounds on ``canary_rate - (scale * baseline_rate + offset)``, valid at every look.

    Each track gets its own confidence sequence at ``(1 + confidence) / 2``;
    by the union bound both hold at once with probability ``>= confidence``,
    and then the difference lies between the extreme combinations. So
    ``"<= baseline * 1.2"`` is shown when ``upper <= 0``. Each track's
    sequence widens with its own dispersion factor.
    """
    confidence = _check_confidence(confidence)
    _check_shift(scale, offset)
    each = difference_level(confidence)
    canary = rate_interval(
        canary_events, canary_trials, confidence=each, dispersion=canary_dispersion
    )
    base = rate_interval(
        baseline_events, baseline_trials, confidence=each, dispersion=baseline_dispersion
    )
    return difference_of(canary, base, confidence=confidence, scale=scale, offset=offset)


def _check_shift(scale: float, offset: float) -> None:
    if not (math.isfinite(scale) and math.isfinite(offset)):
        raise ValueError(f"scale and offset must be finite, got {scale!r}, {offset!r}")


def difference_level(confidence: float) -> float:
    """The level of each track's sequence in a difference at ``confidence``: ``(1 + c) / 2``."""
    return (1.0 + confidence) / 2.0


def difference_of(
    canary: Interval, base: Interval, *, confidence: float, scale: float = 1.0, offset: float = 0.0
) -> Interval:
    """What :func:`difference_interval` returns, from the two tracks' intervals at
    :func:`difference_level` (for a caller that already has them)."""
    confidence = _check_confidence(confidence)
    _check_shift(scale, offset)
    scaled = sorted((scale * base.lower, scale * base.upper))
    return Interval(
        lower=canary.lower - scaled[1] - offset,
        upper=canary.upper - scaled[0] - offset,
        confidence=confidence,
        method=_DIFFERENCE_METHOD,
    )


def _margin(events: float, trials: float, *, threshold: float, level: float, side: str) -> float:
    """How far the bound is past ``threshold``, as ``log M - level``: shown when ``>= 0``.

    One evaluation at most, none where the answer needs none (then ``inf`` when
    shown, ``-inf`` when not). ``x - level >= 0`` exactly when ``x >= level``
    (IEEE subtraction is zero only for equal operands).
    """
    if trials <= 0:
        return -math.inf
    estimate = events / trials
    if side == "upper":
        if threshold >= 1.0:
            return math.inf
        if estimate >= threshold or not threshold > 0:
            return -math.inf
        return log_mixture(threshold, events, trials) - level
    if threshold < 0.0:
        return math.inf
    if estimate <= threshold or threshold >= 1.0:
        return -math.inf
    return log_mixture(max(threshold, _TINY), events, trials) - level


def _divergence(rate: float, threshold: float) -> float:
    """Kullback-Leibler divergence of ``threshold`` from ``rate``: how fast ``log M`` grows.

    Each trial at the observed rate adds about this much to ``log M`` at the
    threshold; ``0`` when it cannot be said (a rate or threshold at 0 or 1).
    """
    if not (0.0 < threshold < 1.0 and 0.0 <= rate < 1.0):
        return 0.0
    miss = 1.0 - rate
    total = miss * (math.log(miss) - math.log1p(-threshold))
    if rate > 0.0:
        total += rate * (math.log(rate) - math.log(threshold))
    return total if math.isfinite(total) and total > 0.0 else 0.0


def _first_look(margin: float, rate: float, trials: float, threshold: float) -> int:
    """Where the search for ``samples_needed`` first looks: the estimate of the answer.

    ``log M`` grows by the divergence per trial, less half the log of the
    sample's growth (the mixture's price); without a divergence, as many
    trials as there are (the doubling search's first look).
    """
    slope = _divergence(rate, threshold)
    if slope <= 0.0 or not math.isfinite(margin):
        return max(1, math.ceil(trials))
    more = -margin / slope
    more = (-margin + 0.5 * math.log1p(more / (PRIOR_STRENGTH + trials))) / slope
    return max(1, math.ceil(min(more * 1.05, MAX_COUNT)))


def _between(low: int, high: int, low_margin: float, high_margin: float) -> int:
    """The next integer to look at strictly between ``low`` and ``high``: interpolated."""
    if math.isfinite(low_margin) and math.isfinite(high_margin) and high_margin > low_margin:
        spot = low + (high - low) * (-low_margin / (high_margin - low_margin))
        if math.isfinite(spot):
            return min(max(math.ceil(spot), low + 1), high - 1)
    return (low + high) // 2


def samples_needed(
    events: float,
    trials: float,
    *,
    threshold: float,
    confidence: float,
    side: Literal["upper", "lower"],
    dispersion: float = 1.0,
) -> int | None:
    """Roughly how many more trials until the bound crosses ``threshold``.

    Assumes the observed rate persists. ``side="upper"``: until the upper
    bound is ``<= threshold`` (shows ``rate <= threshold``); ``side="lower"``:
    until the lower bound is ``> threshold``. 0 when it already is; ``None``
    when it never would (the observed rate is on the wrong side of the
    threshold, or nothing has been observed yet). With ``dispersion`` ``phi``
    the answer is in requests, ``phi`` times the effective ones.
    """
    events, trials = _check_counts(events, trials)
    confidence = _check_confidence(confidence)
    dispersion = _check_dispersion(dispersion)
    if dispersion != 1.0:
        more = samples_needed(
            events / dispersion,
            trials / dispersion,
            threshold=threshold,
            confidence=confidence,
            side=side,
        )
        return None if more is None else math.ceil(more * dispersion)
    if side not in ("upper", "lower"):
        raise ValueError(f"side must be 'upper' or 'lower', got {side!r}")
    if math.isnan(threshold):
        raise ValueError("threshold must be a number, got nan")
    level = math.log(1.0 / (1.0 - confidence))
    margin = _margin(events, trials, threshold=threshold, level=level, side=side)
    if margin >= 0:
        return 0
    if trials <= 0:
        return None
    rate = events / trials
    if (side == "upper" and rate >= threshold) or (side == "lower" and rate <= threshold):
        return None

    def margin_after(more: int) -> float:
        total = trials + more
        return _margin(rate * total, total, threshold=threshold, level=level, side=side)

    # On integers: a float midpoint past 2**53 rounds back to an end and never moves.
    # Secant steps from the estimate, each at least doubling the look, find a look that
    # shows it; then interpolation, with a halving whenever it did not halve the gap,
    # narrows to the first integer that shows it: the same answer the plain doubling and
    # halving search gives, in a few evaluations instead of ~20 (the answer is where the
    # margin, near-linear in the trials, crosses 0).
    room = math.floor(MAX_COUNT - trials)
    if room < 1:
        return None
    low, low_margin = 0, margin
    high = min(_first_look(margin, rate, trials, threshold), room)
    used = 0
    for _ in range(_MAX_SEARCH):
        high_margin = margin_after(high)
        used += 1
        if high_margin >= 0:
            break
        if high >= room:
            return None  # not shown even after MAX_COUNT trials in all: "never", as we count
        following = 2 * high
        if math.isfinite(high_margin) and math.isfinite(low_margin) and high_margin > low_margin:
            reach = high + (high - low) * (-high_margin / (high_margin - low_margin)) * 1.25
            if math.isfinite(reach) and reach > following:
                following = math.ceil(min(reach, MAX_COUNT))
        low, low_margin, high = high, high_margin, min(following, room)
    else:  # pragma: no cover - every look at least doubles: 63 looks reach 2**62
        return None
    halve = False
    while high - low > 1:
        gap = high - low
        # Interpolate only while a halving search could still finish within the budget.
        if halve or used + gap.bit_length() >= 2 * _MAX_SEARCH - 6:
            middle = (low + high) // 2
        else:
            middle = _between(low, high, low_margin, high_margin)
        middle_margin = margin_after(middle)
        used += 1
        if middle_margin >= 0:
            high, high_margin = middle, middle_margin
        else:
            low, low_margin = middle, middle_margin
        halve = not halve and 2 * (high - low) > gap
    return high
