"""Instants from flags and state: every accepted form, and every absurd one refused with its text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatectl.core.timeparse import EARLIEST, LATEST, format_time, parse_time

P = pytest.param
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_EXPECTED = "expected RFC 3339 (2026-11-20T12:00:00Z) or relative (-6h), got"
_RANGE = "is out of range (1970-01-01 to 2999-12-31)"


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        P("now", NOW, id="now"),
        P("-6h", NOW - timedelta(hours=6), id="relative-back"),
        P("+90m", NOW + timedelta(minutes=90), id="relative-forward"),
        P("-1h30m", NOW - timedelta(minutes=90), id="compound"),
        P("2026-11-20T13:00:00+01:00", NOW, id="offset"),
        P("2026-11-20T12:00:00z", NOW, id="lower-case-z"),
        P("1795176000", NOW, id="unix-seconds"),
        P("1970-01-01T00:00:00Z", EARLIEST, id="the-earliest"),
        P("2999-12-31T23:59:59Z", LATEST, id="the-latest"),
        P("0", EARLIEST, id="unix-zero"),
        P("-1", NOW - timedelta(seconds=1), id="relative-bare-number-is-seconds"),
    ],
)
def test_accepted_times(text: str, moment: datetime) -> None:
    assert parse_time(text, now=NOW) == moment


@pytest.mark.parametrize(
    ("text", "message"),
    [
        P("-9999999d", f"time '-9999999d' {_RANGE}", id="relative-overflows-datetime"),
        P("-100000w", f"time '-100000w' {_RANGE}", id="relative-before-1970"),
        P("+1000000d", f"time '+1000000d' {_RANGE}", id="relative-after-2999"),
        P("0001-01-01T00:00:00Z", f"time '0001-01-01T00:00:00Z' {_RANGE}", id="year-one"),
        P("9999-12-31T23:59:59Z", f"time '9999-12-31T23:59:59Z' {_RANGE}", id="year-9999"),
        P("1969-12-31T23:59:59Z", f"time '1969-12-31T23:59:59Z' {_RANGE}", id="before-epoch"),
        P("99999999999", f"time '99999999999' {_RANGE}", id="unix-after-2999"),
        P("1e30", f"{_EXPECTED} '1e30'", id="unix-exponent"),
        P("nan", f"{_EXPECTED} 'nan'", id="nan"),
        P("١٧٩٥١٧٦٠٠٠", f"{_EXPECTED} '١٧٩٥١٧٦٠٠٠'", id="non-ascii-digits"),
        P("1_795_176_000", f"{_EXPECTED} '1_795_176_000'", id="underscores"),
        P("-inf", f"{_EXPECTED} '-inf'", id="relative-infinite"),
        P("-1e400s", f"{_EXPECTED} '-1e400s'", id="relative-huge-exponent"),
        P("-" + "9" * 400 + "d", f"{_EXPECTED} '-{'9' * 56}...'", id="long-text-is-cut"),
        P(
            "2026-11-20T12:00:00",
            "time '2026-11-20T12:00:00' has no time zone: add Z or an offset like +00:00",
            id="no-zone",
        ),
    ],
)
def test_absurd_times_are_value_errors_quoting_the_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as caught:
        parse_time(text, now=NOW)
    assert str(caught.value) == message


def test_format_time_is_rfc3339_utc() -> None:
    assert format_time(NOW) == "2026-11-20T12:00:00Z"
