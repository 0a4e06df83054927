"""The recent windows' spans and error budget (gatectl.core.drift), exactly and as properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatectl.core.drift import (
    RECENT_SCALES,
    RECENT_SHARES,
    SPREAD_SECONDS,
    anchor_error,
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
        # alpha w (k + 1) / ((j + k) (j + k + 1)), w = 0.4, 0.4, 0.2 and k = 24 h / scale
        pytest.param(
            NOON - 12 * HOUR + 600, NOON + 1800, HOUR, 1 - 0.05 * 0.4 * 25 / (36 * 37), id="1h-j12"
        ),
        pytest.param(NOON - 600, NOON + 60, HOUR, 1 - 0.05 * 0.4 * 25 / (25 * 26), id="1h-j1"),
        pytest.param(
            NOON + 10, NOON + 60, HOUR, 1 - 0.05 * 0.4 * 25 / (25 * 26), id="same-hour-is-j1"
        ),
        pytest.param(
            NOON - 12 * HOUR + 600,
            NOON + 1800,
            3 * HOUR,
            1 - 0.05 * 0.4 * 9 / (12 * 13),
            id="3h-j4",
        ),
        # 9 h multiples of the epoch fall at 21:00 and 06:00 UTC: from 20:00 to 12:30 two pass
        pytest.param(
            NOON - 16 * HOUR,
            NOON + 1800,
            9 * HOUR,
            1 - 0.05 * 0.2 * (24 / 9 + 1) / ((2 + 24 / 9) * (3 + 24 / 9)),
            id="9h-j2",
        ),
    ],
)
def test_recent_confidence(started: float, now: float, scale: int, expected: float) -> None:
    got = recent_confidence(0.95, scale=scale, started_seconds=started, now_seconds=now)
    assert got == pytest.approx(expected, abs=1e-15)


def test_the_shares_are_one_per_scale_positive_and_sum_to_one() -> None:
    assert len(RECENT_SHARES) == len(RECENT_SCALES)
    assert all(share > 0 for share in RECENT_SHARES)
    assert math.fsum(RECENT_SHARES) == pytest.approx(1.0, abs=1e-15)
    assert SPREAD_SECONDS == 24 * HOUR


@pytest.mark.parametrize("j", [0, -3])
def test_an_anchor_index_below_one_is_refused(j: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        anchor_error(0.05, scale=HOUR, j=j)


def test_a_scale_not_in_the_ladder_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of the recent scales"):
        anchor_error(0.05, scale=2 * HOUR, j=1)


@pytest.mark.parametrize("scale", RECENT_SCALES)
@pytest.mark.parametrize("anchors", [1, 2, 13, 24, 1000, 10**6])
def test_a_scales_first_anchors_spend_its_share_less_what_the_rest_keep(
    scale: int, anchors: int
) -> None:
    # (k + 1) / ((j + k) (j + k + 1)) = (k + 1) (1 / (j + k) - 1 / (j + k + 1)): the first J
    # anchors spend w (1 - (k + 1) / (J + k + 1)) of alpha, the ones after the rest of w.
    alpha, k = 0.05, 24 * HOUR / scale
    share = RECENT_SHARES[RECENT_SCALES.index(scale)]
    spent = math.fsum(anchor_error(alpha, scale=scale, j=j) for j in range(1, anchors + 1))
    assert spent == pytest.approx(alpha * share * (1 - (k + 1) / (anchors + k + 1)), rel=1e-9)
    assert spent < alpha * share


def test_the_first_day_of_anchors_spends_under_half_of_each_scale() -> None:
    # the budget is spread over the first day instead of its first hours: the 24 (8) anchors
    # of the 1 h (3 h) scale in a step's first day spend k / (2 k + 1) of the scale's share,
    # and the first anchor 1 / (k + 2); alpha / (3 j (j + 1)) spent half on the first alone.
    for scale, k, first in ((HOUR, 24, 1 / 26), (3 * HOUR, 8, 1 / 10), (9 * HOUR, 24 / 9, 3 / 14)):
        share = RECENT_SHARES[RECENT_SCALES.index(scale)]
        day = math.fsum(
            anchor_error(1.0, scale=scale, j=j) for j in range(1, 24 * HOUR // scale + 1)
        )
        if scale < 9 * HOUR:
            assert day / share == pytest.approx(k / (2 * k + 1), rel=1e-12)
        assert anchor_error(1.0, scale=scale, j=1) / share == pytest.approx(first, rel=1e-12)


@settings(max_examples=300, deadline=None)
@given(
    alpha=st.floats(min_value=1e-9, max_value=0.5),
    anchors=st.integers(min_value=1, max_value=10**5),
)
def test_all_scales_and_anchors_together_err_at_most_alpha(alpha: float, anchors: int) -> None:
    errors = [
        anchor_error(alpha, scale=scale, j=j)
        for scale in RECENT_SCALES
        for j in range(1, anchors + 1)
    ]
    assert all(error > 0 for error in errors)
    assert math.fsum(errors) <= alpha * (1 + 1e-12)
    # one level per anchor: a later anchor never gets more error than an earlier one
    for scale in RECENT_SCALES:
        assert anchor_error(alpha, scale=scale, j=anchors + 1) < anchor_error(
            alpha, scale=scale, j=anchors
        )


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
