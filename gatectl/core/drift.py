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
gets error ``alpha w_L (k_L + 1) / ((j + k_L) (j + k_L + 1))`` with
``k_L = SPREAD_SECONDS / L`` and the scale's share ``w_L``
(``RECENT_SHARES``, summing to 1). Over ``j`` the terms telescope to
``alpha w_L``, so all recent windows of a step together fire falsely with
probability at most ``alpha``. ``k_L`` spreads the error about evenly over
a step's first day instead of spending it on its first hours, when the
step's own window is short and recent anyway (docs/statistics.md). Pure.
"""

from __future__ import annotations

import math

__all__ = [
    "RECENT_SCALES",
    "RECENT_SHARES",
    "SPREAD_SECONDS",
    "anchor_error",
    "recent_confidence",
    "recent_key",
    "recent_span",
    "scale_span",
    "split_recent_key",
]

RECENT_SCALES: tuple[int, ...] = (3600, 3 * 3600, 9 * 3600)
"""Seconds: each scale's window is one to two of them long, anchored at a whole multiple."""
RECENT_SHARES: tuple[float, ...] = (0.4, 0.4, 0.2)
"""Each scale's share of the recent windows' error, in ``RECENT_SCALES``' order (sum 1).

The 9 h scale gets less: it is first read 9 to 18 hours into a step and was
the first to prove a drift in at most 6 % of the benchmark's drifting runs.
"""
SPREAD_SECONDS = 24 * 3600
"""Scale ``L``'s error is spread about evenly over its anchors in a step's first
``SPREAD_SECONDS`` (``k_L = SPREAD_SECONDS / L`` of them), then decays as ``1 / j^2``."""
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


def anchor_error(alpha: float, *, scale: int, j: int) -> float:
    """The error of the ``j``-th anchor (``j >= 1``) of ``scale`` since the step began.

    ``alpha w (k + 1) / ((j + k) (j + k + 1))``, ``w`` the scale's share and
    ``k = SPREAD_SECONDS / scale``: ``(k + 1) (1 / (j + k) - 1 / (j + k + 1))``
    summed over ``j >= 1`` is 1, so a scale's anchors spend ``alpha w``.
    """
    if j < 1:
        raise ValueError(f"anchor index must be at least 1, got {j}")
    if scale not in RECENT_SCALES:
        raise ValueError(f"scale {scale} is not one of the recent scales {RECENT_SCALES}")
    share = RECENT_SHARES[RECENT_SCALES.index(scale)]
    k = SPREAD_SECONDS / scale
    return alpha * share * (k + 1.0) / ((j + k) * (j + k + 1.0))


def recent_confidence(
    confidence: float, *, scale: int, started_seconds: float, now_seconds: float
) -> float:
    """The level of the window of ``scale`` at ``now`` for a step begun at ``started``.

    ``1 - anchor_error(1 - confidence, scale, j)``, ``j`` the number of whole
    multiples of ``scale`` (one of ``RECENT_SCALES``) passed since the step
    began (at least 1).
    """
    j = max(1, math.floor(now_seconds / scale) - math.floor(started_seconds / scale))
    return 1.0 - anchor_error(1.0 - confidence, scale=scale, j=j)


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
