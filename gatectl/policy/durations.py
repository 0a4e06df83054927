"""Durations as people write them in policies and flags: ``90s``, ``30m``, ``48h``, ``2d``.

A bare number is taken in the unit the caller names (hours for promotion
windows, as in ``promotion_window_hours: 48``). Digits are ASCII only, and a
caller may cap the result (``most=``): a promotion window of ``9999999d``
would validate and then overflow every date computed from it.
"""

from __future__ import annotations

import math
import re

__all__ = ["MAX_POLICY_DURATION", "format_duration", "parse_duration", "prometheus_range"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_BARE = re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")

MAX_POLICY_DURATION = 365 * 86400.0
"""The longest duration a policy may give (a window, an interval, a timeout): 365 days."""


def _shown(text: str | float) -> str:
    """The text as a message quotes it: at most 60 characters."""
    if isinstance(text, str):
        return repr(text if len(text) <= 60 else text[:57] + "...")
    if isinstance(text, int) and text.bit_length() > 14000:
        return "a huge number"  # str() refuses over 4300 digits
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def parse_duration(text: str | float, *, bare_unit: str = "s", most: float | None = None) -> float:
    """Seconds in ``text``; ``"1h30m"`` works, a bare number is in ``bare_unit``.

    Raises ``ValueError`` with a message that quotes the text (at most 60
    characters of it), also when the duration is longer than ``most`` seconds.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like '30m' or '48h', got {str(text).lower()}")
    try:
        if isinstance(text, int | float):
            seconds = float(text) * _UNITS[bare_unit]
        else:
            seconds = _parse_text(text, bare_unit=bare_unit)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite, non-negative time, got {_shown(text)}")
    if most is not None and seconds > most:
        raise ValueError(f"must be at most {_largest_unit(most)}, got {_shown(text)}")
    return seconds


def _parse_text(text: str, *, bare_unit: str) -> float:
    raw = text.strip()
    if _BARE.fullmatch(raw):
        return float(raw) * _UNITS[bare_unit]
    pos = 0
    seconds = 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or not raw:
        raise ValueError(
            f"expected a duration like '90s', '30m', '48h' or '2d', got {_shown(text)}"
        )
    return seconds


def _largest_unit(seconds: float) -> str:
    """``31536000`` -> ``365d``: the largest unit that divides it."""
    for unit in ("d", "h", "m", "s"):
        count = seconds / _UNITS[unit]
        if count >= 1 and count.is_integer():
            return f"{int(count)}{unit}"
    return f"{seconds:g}s"


def format_duration(seconds: float) -> str:
    """Human form in hours and minutes, as in ``47h0m``, ``5m30s``, ``12s``."""
    total = max(0, math.ceil(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def prometheus_range(seconds: float) -> str:
    """A PromQL range selector duration (whole seconds, at least ``1s``)."""
    return f"{max(1, math.floor(seconds))}s"
