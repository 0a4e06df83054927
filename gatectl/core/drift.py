"""Rollback triggers that see a drift soon: the recent windows and their error budget.

A window that runs from the step's start dilutes a slow drift, so every
rollback trigger on a rate is also checked on **recent windows** at three
scales, 1 h, 3 h and 9 h. The window of scale ``L`` starts at the whole
multiple of ``L`` (wall-clock, so every gate shares one batched query)
before the current one: it is ``L`` to ``2 L`` long. A fast drift is best
seen on a short window, a slow or bursty one on a long window: the best
window for a linear drift ``tau`` after it crossed the trigger is about
``2 tau / 3`` long (docs/statistics.md).

Anytime-valid by a union bound: a window anchored at one multiple of ``L``
is a growing sample for ``L`` (then the anchor moves on), with its own
confidence sequence. The ``j``-th anchor of scale ``L`` since the step began
gets error ``alpha / (S j (j + 1))`` with ``S`` scales; these sum to
``alpha`` over all anchors and scales, so all recent windows of a step
together fire falsely with probability at most ``alpha``. Pure.
"""

from __future__ import annotations

import math

__all__ = [
    "RECENT_SCALES",
    "recent_confidence",
    "recent_key",
    "recent_span",
    "scale_span",
    "split_recent_key",
]

RECENT_SCALES: tuple[int, ...] = (3600, 3 * 3600, 9 * 3600)
"""Seconds: each scale's window is one to two of them long, anchored at a whole multiple."""
_SEPARATOR = "@"


def recent_span(at_seconds: float, scale: int) -> float:
    """Seconds since the whole multiple of ``scale`` before the current one (``scale`` to twice)."""
    return float(scale + math.floor(at_seconds) % scale)


def scale_span(first_span: float, *, now_seconds: float, scale: int) -> float:
    """The span of ``scale`` read together with the first scale's ``first_span`` at ``now``.

    The reads are made at ``now`` less the query offset; the first scale's
    span tells that instant to the second (modulo its scale), so the other
    spans follow without knowing the offset.
    """
    first = RECENT_SCALES[0]
    lag = (math.floor(now_seconds) - (first_span - first)) % first
    return recent_span(math.floor(now_seconds) - lag, scale)


def recent_confidence(
    confidence: float, *, scale: int, started_seconds: float, now_seconds: float
) -> float:
    """The level of the window of ``scale`` at ``now`` for a step begun at ``started``.

    ``1 - alpha / (S j (j + 1))``, ``j`` the number of whole multiples of
    ``scale`` passed since the step began (at least 1).
    """
    j = max(1, math.floor(now_seconds / scale) - math.floor(started_seconds / scale))
    return 1.0 - (1.0 - confidence) / (len(RECENT_SCALES) * j * (j + 1))


def recent_key(metric: str, scale: int) -> str:
    """The key of ``metric`` over the window of ``scale`` in ``ObservationSet.recent``.

    The first scale keeps the metric's own name.
    """
    return metric if scale == RECENT_SCALES[0] else f"{metric}{_SEPARATOR}{scale}"


def split_recent_key(key: str) -> tuple[str, int]:
    """``(metric, scale)`` from ``recent_key``'s answer."""
    metric, separator, scale = key.rpartition(_SEPARATOR)
    if separator and scale.isdigit() and int(scale) in RECENT_SCALES:
        return metric, int(scale)
    return key, RECENT_SCALES[0]
