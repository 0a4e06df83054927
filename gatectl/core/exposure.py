"""Is the canary getting the share gatectl set? The sample-ratio-mismatch check.

A router bug that serves 100 % when told 1 % (or 0 %) makes every other
check meaningless: the canary's numbers describe a different experiment. The
observed share ``canary / (canary + baseline)`` requests over the window is
compared with the share set, on a confidence sequence for the proportion
(``gatectl.core.stats``, the same method as every rate), so noise never
reads as a mismatch and looking every minute costs nothing. A deviation must
be both significant and larger than ``exposure.tolerance`` (relative). No
canary request at all for ``exposure.grace`` while the share is above 0 is a
mismatch too. Pure: PRODUCT.md §10.
"""

from __future__ import annotations

import math

from gatectl.core import stats
from gatectl.core.observations import Exposure, Observation
from gatectl.policy.durations import format_duration
from gatectl.policy.models import ExposureSettings

__all__ = ["check_exposure"]


def _percent(share: float) -> str:
    return f"{share * 100:.3g} %"


def _count(value: Observation | None) -> float | None:
    if value is None or value.value is None or isinstance(value.value, bool):
        return None
    number = float(value.value)
    return number if math.isfinite(number) and number >= 0 else None


def check_exposure(
    settings: ExposureSettings,
    *,
    share: float,
    canary: Observation,
    baseline: Observation | None,
    recent: Observation | None,
    elapsed_seconds: float,
    confidence: float | None,
) -> Exposure:
    """Check the observed canary share against ``share``.

    ``canary`` and ``baseline`` are the request counts over the window;
    ``recent`` the canary's requests over the last ``settings.grace``.
    ``confidence`` ``None`` (``confidence: off``) compares the point share.
    """
    if not settings.enabled or share <= 0.0 or share >= 1.0:
        return Exposure("ok")
    recent_requests = _count(recent)
    if elapsed_seconds >= settings.grace and recent_requests == 0.0:
        message = (
            f"exposure mismatch: set {_percent(share)}, no canary requests for"
            f" {format_duration(settings.grace)}"
        )
        return Exposure("mismatch", 0.0, 0.0, message, blocks=True)
    canary_requests = _count(canary)
    baseline_requests = _count(baseline)
    if baseline_requests is None:
        text = "exposure not checked: no baseline track"
        return Exposure("not_checked", message=text, blocks=settings.required)
    if canary_requests is None:
        return Exposure("no_data", message="exposure not checked: no canary request count")
    total = canary_requests + baseline_requests
    if total <= 0:
        return Exposure("no_data", message="exposure not checked: no requests yet")
    observed = canary_requests / total
    low, high = share * (1.0 - settings.tolerance), min(1.0, share * (1.0 + settings.tolerance))
    if confidence is None:
        lower = upper = observed
    elif stats.count_error(canary_requests, total) is not None:
        return Exposure("no_data", message="exposure not checked: counts out of range")
    else:
        interval = stats.rate_interval(canary_requests, total, confidence=confidence)
        lower, upper = interval.lower, interval.upper
    if lower > high or upper < low:
        message = (
            f"exposure mismatch: set {_percent(share)}, observed {_percent(observed)}"
            f" (n = {round(total):,})"
        )
        return Exposure("mismatch", observed, total, message, blocks=True)
    return Exposure("ok", observed, total)
