"""The peer rules on the bursty cells (issue 13), at the same error as gatectl's budget.

Argo Rollouts style: each measurement interval's point rate against the
trigger, the first failure aborts (``failureLimit: 0``). Flagger style: a
check every minute on the last minute's point rate, rollback after ``N``
failed checks in a row. A minute or interval without requests is neither a
failure nor a pass (it does not reset Flagger's streak count either way: it
is skipped). Both promote at the first minute after the 48 h window at which
the window's point rate meets the criterion.

Their one knob (interval length, ``N``) is calibrated per cell on separate
healthy streams of the same traffic and correlation: the fastest setting
whose false fallback stays within the 1 % budget gatectl is held to. Pure
numpy; ``benchmarks/bursty_cells.py`` runs them on the very streams gatectl
decides on.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

CRITERION, TRIGGER = 0.04, 0.06
WINDOW = 48 * 60
BUDGET = 0.01
ARGO_INTERVALS = (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 720, 1440)
FLAGGER_COUNTS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 60, 100, 200, 400, 1000)

Stream = tuple[NDArray[np.float64], NDArray[np.float64]]
"""Per-minute (events, trials)."""


def point_promotion(events: NDArray[np.float64], trials: NDArray[np.float64]) -> int | None:
    """First minute (1-based) from the window's end at which the window's point rate passes."""
    c_x, c_n = np.cumsum(events), np.cumsum(trials)
    ends = np.arange(WINDOW - 1, len(events))
    x = c_x[ends] - np.where(ends >= WINDOW, c_x[ends - WINDOW], 0.0)
    n = c_n[ends] - np.where(ends >= WINDOW, c_n[ends - WINDOW], 0.0)
    ok = (n > 0) & (x <= CRITERION * n)
    return int(ends[ok.argmax()]) + 1 if ok.any() else None


def argo_fallback(
    events: NDArray[np.float64], trials: NDArray[np.float64], interval: int
) -> int | None:
    """Minute (1-based) at which the first failing interval ends, or ``None``."""
    blocks = len(events) // interval
    x = events[: blocks * interval].reshape(blocks, interval).sum(axis=1)
    n = trials[: blocks * interval].reshape(blocks, interval).sum(axis=1)
    failed = (n > 0) & (x > TRIGGER * n)
    return int((failed.argmax() + 1) * interval) if failed.any() else None


def flagger_fallback(
    events: NDArray[np.float64], trials: NDArray[np.float64], count: int
) -> int | None:
    """Minute (1-based) of the ``count``-th failed check in a row, or ``None``."""
    seen = trials > 0
    failed = (events > TRIGGER * trials)[seen]
    minutes = np.flatnonzero(seen)
    if len(failed) < count:
        return None
    # run length of failures ending at each checked minute
    total = np.concatenate([[0], np.cumsum(failed)])
    streak = total[count:] - total[:-count]
    hit = np.flatnonzero(streak >= count)
    return int(minutes[hit[0] + count - 1]) + 1 if len(hit) else None


def outcome(fallback: int | None, promote: int | None) -> tuple[str, int | None]:
    """What happened first: ('fallback' | 'promote' | 'hold', minute)."""
    if fallback is not None and (promote is None or fallback < promote):
        return "fallback", fallback
    if promote is not None:
        return "promote", promote
    return "hold", None


def calibrate(streams: list[Stream]) -> tuple[int, int]:
    """(Argo interval, Flagger count): the fastest within the budget on healthy ``streams``."""
    promotions = [point_promotion(x, n) for x, n in streams]

    def within(fallback_of: object, knob: int) -> bool:
        fell = sum(
            outcome(fallback_of(x, n, knob), p)[0] == "fallback"  # type: ignore[operator]
            for (x, n), p in zip(streams, promotions, strict=True)
        )
        return fell <= BUDGET * len(streams)

    interval = next((i for i in ARGO_INTERVALS if within(argo_fallback, i)), ARGO_INTERVALS[-1])
    count = next((c for c in FLAGGER_COUNTS if within(flagger_fallback, c)), FLAGGER_COUNTS[-1])
    return interval, count
