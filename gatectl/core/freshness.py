"""Is the data fresh, and does it fill the window? The pure judgement of a freshness reading.

An instant query's answer is stamped with the evaluation time, not with the
time of the samples behind it: ``increase()`` over a 48 h window happily
extrapolates three hours of data that stopped 45 hours ago. So every gate also
reads when the canary request series (``workflow_requests_total``,
``track="canary"``) last had a sample and how much of the window it covers
(``gatectl.core.catalog.freshness_query``). Every gate reads that series for
its sample count, so its freshness stands for the whole gate: the built-in
metrics and the policy's own ``{query: ...}`` metrics alike.

The verdicts, in the order they are tried:

- **warming up**: the step started less than two scrape intervals ago, so
  every query is empty or flips between empty and not. A hold with that
  reason, not counted as inconclusive.
- **unknown**: the freshness query failed: no data.
- **stale**: no canary request sample in the window, or the newest one is
  older than ``prometheus.max_staleness``: no data.
- **mostly empty**: the series is present in less than half of the window
  (it starts or stops inside it): a hold with the reason.

Old or thin data can prove harm but never health: under a verdict that
withholds the data (warming up, unknown, stale) a rollback trigger that fired
still stands, and every other check that had a value becomes no data with the
verdict as its cause (one that had none keeps its own cause).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from gatectl.core.observations import CheckResult, Freshness
from gatectl.policy.durations import format_duration

__all__ = [
    "MIN_COVERAGE",
    "WARM_UP_SCRAPES",
    "Freshness",
    "Quality",
    "Verdict",
    "judge",
    "missing_reason",
    "overrule",
]

MIN_COVERAGE = 0.5
"""A window whose data covers less than this share of it cannot promote."""

WARM_UP_SCRAPES = 2
"""A step is warming up until this many scrape intervals have passed."""


class Verdict(StrEnum):
    """What the freshness reading says about the gate's data."""

    FRESH = "fresh"
    WARMING_UP = "warming_up"
    UNKNOWN = "unknown"
    STALE = "stale"
    MOSTLY_EMPTY = "mostly_empty"


@dataclass(frozen=True)
class Quality:
    """A verdict and the one sentence that says it (``None`` when fresh)."""

    verdict: Verdict
    reason: str | None = None

    @property
    def withholds_data(self) -> bool:
        """No check may pass on this data (a trigger that fired still stands)."""
        return self.verdict in (Verdict.WARMING_UP, Verdict.UNKNOWN, Verdict.STALE)

    @property
    def no_data(self) -> bool:
        """The gate has no usable data: inconclusive, like any missing metric."""
        return self.verdict in (Verdict.UNKNOWN, Verdict.STALE)


def _seconds(value: float) -> str:
    return format_duration(math.floor(max(0.0, value)))


def judge(
    freshness: Freshness | None,
    *,
    elapsed_seconds: float,
    window_seconds: float,
    max_staleness: float,
    scrape_interval: float,
) -> Quality:
    """The verdict on a gate's data; ``freshness`` ``None`` means it was not read (fresh)."""
    if elapsed_seconds < WARM_UP_SCRAPES * scrape_interval:
        return Quality(
            Verdict.WARMING_UP,
            f"warming up: window {_seconds(elapsed_seconds)} < {WARM_UP_SCRAPES} × scrape"
            f" interval {_seconds(scrape_interval)}",
        )
    if freshness is None:
        return Quality(Verdict.FRESH)
    if freshness.error is not None:
        return Quality(Verdict.UNKNOWN, f"freshness unknown: {freshness.error}")
    age = freshness.newest_age_seconds
    if age is None:
        return Quality(
            Verdict.STALE,
            f"stale: no canary request sample in the {_seconds(window_seconds)} window",
        )
    if age > max_staleness:
        return Quality(
            Verdict.STALE,
            f"stale: newest sample {_seconds(age)} ago (max_staleness {_seconds(max_staleness)})",
        )
    coverage = freshness.coverage or 0.0
    if coverage < MIN_COVERAGE:
        return Quality(
            Verdict.MOSTLY_EMPTY,
            f"mostly empty window: canary requests cover {math.floor(coverage * 100)} % of the"
            f" {_seconds(window_seconds)} window (the series starts or stops inside it;"
            f" at least {MIN_COVERAGE * 100:g} % needed)",
        )
    return Quality(Verdict.FRESH)


def overrule(check: CheckResult, quality: Quality) -> CheckResult:
    """A check under a verdict that withholds the data: a fired trigger stands, else no data.

    A check that had no data anyway keeps its own, more precise cause.
    """
    if not quality.withholds_data or check.result in ("fired", "no_data"):
        return check
    reason = quality.reason
    return replace(check, result="no_data", value=None, interval=None, error=reason, note=reason)


def missing_reason(subject: str, error: str | None, quality: Quality) -> str:
    """Why ``subject`` (a metric, ``"the sample count"``) has no data; a verdict is said once."""
    if quality.no_data and error == quality.reason:
        return f"no data: {error}"
    return f"no data for {subject}: {error or 'no data'}"
