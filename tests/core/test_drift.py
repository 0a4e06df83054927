"""The recent windows' spans and error budget (gatectl.core.drift), exactly and as properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatectl.core.drift import (
    RECENT_SCALES,
    recent_confidence,
    recent_key,
    recent_span,
    scale_span,
    split_recent_key,
)

HOUR = 3600
NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp()


def test_the_scales_are_one_three_and_nine_hours() -> None:
    assert RECENT_SCALES == (HOUR, 3 * HOUR, 9 * HOUR)


@pytest.mark.parametrize(
    ("at", "scale", "expected"),
    [
        pytest.param(NOON, HOUR, 3600.0, id="on-the-hour-one-hour"),
        pytest.param(NOON + 1799.9, HOUR, 5399.0, id="whole-seconds"),
        pytest.param(NOON + 1800, 3 * HOUR, 12600.0, id="three-hours-at-12-30"),
        pytest.param(NOON + 1800, 9 * HOUR, 55800.0, id="nine-hours-at-12-30"),
    ],
)
def test_recent_span(at: float, scale: int, expected: float) -> None:
    # 9 h multiples of the epoch fall at 06:00 and 15:00 UTC that day (23,400 s before 12:30)
    independent = scale + (int(at) - (int(at) // scale) * scale)
    assert recent_span(at, scale) == expected == independent


@pytest.mark.parametrize(
    ("first_span", "now", "scale", "expected"),
    [
        pytest.param(5400.0, NOON + 1800, 3 * HOUR, 12600.0, id="no-offset"),
        pytest.param(5340.0, NOON + 1800, 3 * HOUR, 12540.0, id="read-a-minute-earlier"),
        # read at 11:59 (offset 2 min): the 3 h window since 09:00 is 5h59m
        pytest.param(7140.0, NOON + 60, 3 * HOUR, 21540.0, id="offset-across-the-hour"),
        pytest.param(5400.0, NOON + 1800, HOUR, 5400.0, id="first-scale-is-itself"),
    ],
)
def test_scale_span_follows_the_read_instant(
    first_span: float, now: float, scale: int, expected: float
) -> None:
    assert scale_span(first_span, now_seconds=now, scale=scale) == expected


@pytest.mark.parametrize(
    ("started", "now", "scale", "expected"),
    [
        pytest.param(
            NOON - 12 * HOUR + 600, NOON + 1800, HOUR, 1 - 0.05 / (3 * 12 * 13), id="1h-j12"
        ),
        pytest.param(NOON - 600, NOON + 60, HOUR, 1 - 0.05 / (3 * 1 * 2), id="1h-j1"),
        pytest.param(NOON + 10, NOON + 60, HOUR, 1 - 0.05 / (3 * 1 * 2), id="same-hour-is-j1"),
        pytest.param(NOON - 12 * HOUR + 600, NOON + 1800, 3 * HOUR, 1 - 0.05 / 60, id="3h-j4"),
    ],
)
def test_recent_confidence(started: float, now: float, scale: int, expected: float) -> None:
    got = recent_confidence(0.95, scale=scale, started_seconds=started, now_seconds=now)
    assert got == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    ("metric", "scale", "key"),
    [
        pytest.param("exception_rate", HOUR, "exception_rate", id="first-scale-plain"),
        pytest.param("exception_rate", 3 * HOUR, "exception_rate@10800", id="three-hours"),
        pytest.param("a@b", 9 * HOUR, "a@b@32400", id="at-sign-in-a-name"),
    ],
)
def test_recent_key_round_trips(metric: str, scale: int, key: str) -> None:
    assert recent_key(metric, scale) == key
    assert split_recent_key(key) == (metric, scale)


def test_a_name_ending_in_a_number_that_is_no_scale_is_the_first_scale() -> None:
    assert split_recent_key("latency@99") == ("latency@99", HOUR)


@settings(max_examples=200, deadline=None)
@given(
    started=st.integers(min_value=0, max_value=10**9),
    looks=st.lists(st.integers(min_value=1, max_value=30 * 24 * HOUR), min_size=1, max_size=60),
)
def test_every_anchor_has_one_level_and_all_errors_sum_to_at_most_alpha(
    started: int, looks: list[int]
) -> None:
    """The union bound: each (scale, anchor) window is one sequence at one fixed error, and
    the errors of all the windows a step can ever read sum to at most alpha."""
    alpha = 0.05
    errors: dict[tuple[int, int], float] = {}
    for offset in sorted(looks):
        now = started + offset
        for scale in RECENT_SCALES:
            anchor = math.floor(now / scale) * scale - scale
            if anchor <= started:  # the controller reads a window only inside the step
                continue
            error = 1 - recent_confidence(
                1 - alpha, scale=scale, started_seconds=started, now_seconds=now
            )
            assert errors.setdefault((scale, anchor), error) == pytest.approx(error)
    # every anchor a step could reach, up to the last look: still within alpha
    horizon = started + max(looks)
    total = 0.0
    for scale in RECENT_SCALES:
        first = math.floor(started / scale)
        for block in range(first + 1, math.floor(horizon / scale) + 1):
            total += 1 - recent_confidence(
                1 - alpha, scale=scale, started_seconds=started, now_seconds=block * scale
            )
    assert total <= alpha * (1 + 1e-12)
    assert sum(errors.values()) <= total * (1 + 1e-12)
