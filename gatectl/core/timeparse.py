"""Instants on the command line: RFC 3339, ``now``, or relative to a reference (``-6h``).

Every parsed instant lies between ``EARLIEST`` and ``LATEST`` (1970 to 2999):
a time outside that range is a mistake (``--started-at -9999999d``), and
keeping instants there means adding a window of up to a year never
overflows ``datetime``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from gatectl.policy.durations import parse_duration

__all__ = ["EARLIEST", "LATEST", "format_time", "parse_time"]

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest instant ``parse_time`` accepts (the Unix epoch)."""
LATEST = datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)
"""The latest instant ``parse_time`` accepts."""

_UNIX = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
_EXPECTED = "expected RFC 3339 (2026-11-20T12:00:00Z) or relative (-6h)"


def _quoted(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def parse_time(text: str, *, now: datetime) -> datetime:
    """An aware UTC datetime; relative forms count back from ``now``.

    Raises ``ValueError`` quoting the text (at most 60 characters of it),
    also for an instant before ``EARLIEST`` or after ``LATEST``.
    """
    raw = text.strip()
    if raw == "now":
        return now
    parsed: datetime | None
    if raw.startswith(("-", "+")):
        try:
            seconds = parse_duration(raw[1:])
        except ValueError:
            raise ValueError(f"{_EXPECTED}, got {_quoted(text)}") from None
        try:
            delta = timedelta(seconds=seconds)
            parsed = now - delta if raw[0] == "-" else now + delta
        except OverflowError:
            parsed = None
    else:
        try:
            parsed = datetime.fromisoformat(raw.replace("z", "Z"))
        except ValueError:
            if not _UNIX.fullmatch(raw):
                raise ValueError(f"{_EXPECTED}, got {_quoted(text)}") from None
            try:
                parsed = datetime.fromtimestamp(float(raw), tz=UTC)
            except (ValueError, OverflowError, OSError):
                parsed = None
        if parsed is not None and parsed.tzinfo is None:
            raise ValueError(
                f"time {_quoted(text)} has no time zone: add Z or an offset like +00:00"
            )
    if parsed is None or not EARLIEST <= parsed <= LATEST:
        raise ValueError(f"time {_quoted(text)} is out of range (1970-01-01 to 2999-12-31)")
    return parsed.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, whole seconds unless there is a fraction."""
    moment = moment.astimezone(UTC)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")
