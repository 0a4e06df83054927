"""One series' value: ``single_value`` raises, ``value_or_error`` returns the same error.

A batched read answers for every workflow at once; each workflow without a
series (a track with no baseline) is an error every pass. ``observe`` takes
it as a value: an exception never raised carries no traceback, so it keeps
no frame (nor the batch's samples) alive and costs a fraction of a raise.
"""

from __future__ import annotations

import math

import pytest

from gatectl.adapters.prometheus import Sample, single_value, value_or_error
from gatectl.errors import QueryError


def series(*values: float) -> list[Sample]:
    return [Sample(labels={"workflow": f"wf-{i}"}, value=v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("samples", "promql", "message"),
    [
        pytest.param([], "", "empty result: no series matched", id="empty"),
        pytest.param(
            [], "up", "empty result: no series matched (query: up)", id="empty-with-query"
        ),
        pytest.param(
            series(1.0, 2.0),
            "",
            'expected one series, got 2: {workflow="wf-0"}, {workflow="wf-1"}',
            id="two-series",
        ),
        pytest.param(
            series(1.0, 2.0, 3.0, 4.0),
            "",
            "expected one series, got 4: "
            '{workflow="wf-0"}, {workflow="wf-1"}, {workflow="wf-2"}, …',
            id="four-series-three-shown",
        ),
        pytest.param(series(math.nan), "", "value is NaN", id="nan"),
        pytest.param(series(math.inf), "q", "value is +Inf (query: q)", id="plus-inf"),
        pytest.param(series(-math.inf), "", "value is -Inf", id="minus-inf"),
    ],
)
def test_the_error_is_returned_with_the_message_single_value_raises(
    samples: list[Sample], promql: str, message: str
) -> None:
    got = value_or_error(samples, promql=promql)
    assert isinstance(got, QueryError)
    assert str(got) == message
    assert got.__traceback__ is None  # never raised: holds no frame
    with pytest.raises(QueryError) as raised:
        single_value(samples, promql=promql)
    assert str(raised.value) == message


@pytest.mark.parametrize("value", [0.0, 1.5, -2.0, 1e300])
def test_one_finite_value_is_the_value(value: float) -> None:
    assert value_or_error(series(value)) == value
    assert single_value(series(value)) == value
