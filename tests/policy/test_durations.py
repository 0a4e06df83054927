"""Durations as written in policies and flags, and as shown back to people."""

from __future__ import annotations

import pytest

from gatectl.policy.durations import format_duration, parse_duration, prometheus_range

P = pytest.param


@pytest.mark.parametrize(
    ("text", "bare_unit", "seconds"),
    [
        P("90s", "s", 90.0, id="seconds"),
        P("30m", "s", 1800.0, id="minutes"),
        P("48h", "s", 172800.0, id="hours"),
        P("2d", "s", 172800.0, id="days"),
        P("1w", "s", 604800.0, id="weeks"),
        P("250ms", "s", 0.25, id="milliseconds"),
        P("1h30m", "s", 5400.0, id="compound"),
        P("1d2h3m4s", "s", 93784.0, id="compound-all-units"),
        P("1.5h", "s", 5400.0, id="fractional-unit"),
        P(" 6h ", "s", 21600.0, id="padded"),
        P("0s", "s", 0.0, id="zero"),
        P("48", "h", 172800.0, id="bare-string-in-hours"),
        P("0.5", "h", 1800.0, id="bare-fraction-in-hours"),
        P("90", "s", 90.0, id="bare-string-in-seconds"),
        P("1e2", "s", 100.0, id="bare-exponent"),
        P(48, "h", 172800.0, id="int-in-hours"),
        P(0.25, "h", 900.0, id="float-in-hours"),
        P(120, "s", 120.0, id="int-in-seconds"),
        P(2, "m", 120.0, id="int-in-minutes"),
        P(1, "d", 86400.0, id="int-in-days"),
    ],
)
def test_parse_duration_gives_seconds(text: str | float, bare_unit: str, seconds: float) -> None:
    assert parse_duration(text, bare_unit=bare_unit) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        P("", "expected a duration like '90s', '30m', '48h' or '2d', got ''", id="empty"),
        P("   ", "expected a duration like '90s', '30m', '48h' or '2d', got '   '", id="blank"),
        P("abc", "expected a duration like '90s', '30m', '48h' or '2d', got 'abc'", id="word"),
        P(
            "6 h",
            "expected a duration like '90s', '30m', '48h' or '2d', got '6 h'",
            id="space-inside",
        ),
        P("6H", "expected a duration like '90s', '30m', '48h' or '2d', got '6H'", id="upper-unit"),
        P(
            "6y",
            "expected a duration like '90s', '30m', '48h' or '2d', got '6y'",
            id="unknown-unit",
        ),
        P("h", "expected a duration like '90s', '30m', '48h' or '2d', got 'h'", id="unit-only"),
        P(
            "1h-30m",
            "expected a duration like '90s', '30m', '48h' or '2d', got '1h-30m'",
            id="minus-inside",
        ),
        P(
            "-5m",
            "expected a duration like '90s', '30m', '48h' or '2d', got '-5m'",
            id="negative-unit",
        ),
        P("-5", "duration must be a finite, non-negative time, got '-5'", id="negative-bare"),
        P(-1, "duration must be a finite, non-negative time, got -1", id="negative-number"),
        P("inf", "expected a duration like '90s', '30m', '48h' or '2d', got 'inf'", id="inf-word"),
        P("nan", "expected a duration like '90s', '30m', '48h' or '2d', got 'nan'", id="nan-word"),
        P("1e400", "duration must be a finite, non-negative time, got '1e400'", id="overflows"),
        P(
            10**400,
            f"duration must be a finite, non-negative time, got 1{'0' * 56}...",
            id="int-too-large-for-a-float",
        ),
        P(
            "٤٨h",
            "expected a duration like '90s', '30m', '48h' or '2d', got '٤٨h'",
            id="non-ascii-digits",
        ),
        P(
            "٤٨",
            "expected a duration like '90s', '30m', '48h' or '2d', got '٤٨'",
            id="non-ascii-bare-number",
        ),
        P(
            "1_0",
            "expected a duration like '90s', '30m', '48h' or '2d', got '1_0'",
            id="underscore",
        ),
        P(
            "x" * 100_000,
            f"expected a duration like '90s', '30m', '48h' or '2d', got '{'x' * 57}...'",
            id="long-text-quoted-short",
        ),
        P(float("inf"), "duration must be a finite, non-negative time, got inf", id="infinite"),
        P(True, "expected a duration like '30m' or '48h', got true", id="boolean"),
    ],
)
def test_bad_duration_message_quotes_the_text(text: str | float, message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as caught:
        parse_duration(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "bare_unit", "message"),
    [
        P("9999999d", "s", "must be at most 365d, got '9999999d'", id="days"),
        P("366d", "s", "must be at most 365d, got '366d'", id="a-day-too-many"),
        P("53w", "s", "must be at most 365d, got '53w'", id="weeks"),
        P(8761, "h", "must be at most 365d, got 8761", id="bare-hours"),
        P("1e12", "h", "must be at most 365d, got '1e12'", id="bare-exponent"),
    ],
)
def test_duration_longer_than_the_cap_is_refused(
    text: str | float, bare_unit: str, message: str
) -> None:
    with pytest.raises(ValueError, match=r".*") as caught:
        parse_duration(text, bare_unit=bare_unit, most=365 * 86400.0)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "bare_unit"),
    [P("365d", "s", id="a-year"), P(8760, "h", id="a-year-of-hours"), P("52w", "s", id="weeks")],
)
def test_duration_at_the_cap_is_accepted(text: str | float, bare_unit: str) -> None:
    assert parse_duration(text, bare_unit=bare_unit, most=365 * 86400.0) <= 365 * 86400.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        P(0, "0s", id="zero"),
        P(-5, "0s", id="negative-clamps-to-zero"),
        P(0.2, "1s", id="fraction-rounds-up"),
        P(12, "12s", id="seconds"),
        P(60, "1m", id="one-minute"),
        P(330, "5m30s", id="minutes-and-seconds"),
        P(3600, "1h0m", id="one-hour"),
        P(169200, "47h0m", id="hours"),
        P(5430, "1h30m", id="hours-drop-seconds"),
        P(86400, "24h0m", id="one-day-in-hours"),
        P(90000 + 120, "25h2m", id="over-a-day-hours-minutes"),
        P(3 * 86400 + 7200, "74h0m", id="days-as-hours"),
    ],
)
def test_format_duration_in_hours_and_minutes(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        P(0, "1s", id="zero-is-one-second"),
        P(0.9, "1s", id="sub-second"),
        P(59.9, "59s", id="floors"),
        P(3600, "3600s", id="hour-in-seconds"),
        P(172800.5, "172800s", id="two-days"),
    ],
)
def test_prometheus_range_is_whole_seconds(seconds: float, text: str) -> None:
    assert prometheus_range(seconds) == text


@pytest.mark.parametrize(
    "seconds",
    [P(s, id=str(s)) for s in (1, 59, 61, 3599, 3601, 86399, 86401, 172800, 604800)],
)
def test_formatted_minutes_and_seconds_parse_back_within_a_minute(seconds: int) -> None:
    text = format_duration(seconds)
    assert abs(parse_duration(text) - seconds) < 60
