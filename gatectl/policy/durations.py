"""Durations as people write them in policies and flags: ``90s``, ``30m``, ``48h``, ``2d``.

A bare number is taken in the unit the caller names (hours for promotion
windows, as in ``promotion_window_hours: 48``).
"""

from __future__ import annotations

import math
import re

__all__ = ["format_duration", "parse_duration", "prometheus_range"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str | float, *, bare_unit: str = "s") -> float:
    """Seconds in ``text``; ``"1h30m"`` works, a bare number is in ``bare_unit``.

    Raises ``ValueError`` with a message that quotes the text.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like '30m' or '48h', got {str(text).lower()}")
    if isinstance(text, int | float):
        seconds = float(text) * _UNITS[bare_unit]
    else:
        raw = text.strip()
        try:
            seconds = float(raw) * _UNITS[bare_unit]
        except ValueError:
            pos = 0
            seconds = 0.0
            for match in _PART.finditer(raw):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(raw) or not raw:
                raise ValueError(
                    f"expected a duration like '90s', '30m', '48h' or '2d', got {text!r}"
                ) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite, non-negative time, got {text!r}")
    return seconds


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
