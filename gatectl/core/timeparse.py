"""Instants on the command line: RFC 3339, ``now``, or relative to a reference (``-6h``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gatectl.policy.durations import parse_duration

__all__ = ["format_time", "parse_time"]


def parse_time(text: str, *, now: datetime) -> datetime:
    """An aware UTC datetime; relative forms count back from ``now``.

    Raises ``ValueError`` quoting the text.
    """
    raw = text.strip()
    if raw == "now":
        return now
    if raw.startswith(("-", "+")):
        try:
            seconds = parse_duration(raw[1:])
        except ValueError:
            raise ValueError(
                f"expected RFC 3339 (2026-11-20T12:00:00Z) or relative (-6h), got {text!r}"
            ) from None
        delta = timedelta(seconds=seconds)
        return now - delta if raw[0] == "-" else now + delta
    try:
        parsed = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        try:
            parsed = datetime.fromtimestamp(float(raw), tz=UTC)
        except (ValueError, OverflowError):
            raise ValueError(
                f"expected RFC 3339 (2026-11-20T12:00:00Z) or relative (-6h), got {text!r}"
            ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone: add Z or an offset like +00:00")
    return parsed.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, whole seconds unless there is a fraction."""
    moment = moment.astimezone(UTC)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")
