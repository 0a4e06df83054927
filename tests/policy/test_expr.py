"""The condition and trigger parser: what parses, what it means, and the exact errors."""

from __future__ import annotations

import math

import pytest

from gatectl.policy.expr import Condition, parse_condition, parse_trigger

P = pytest.param


@pytest.mark.parametrize(
    ("text", "op", "threshold", "canonical"),
    [
        P("<= 0.04", "<=", 0.04, "<= 0.04", id="le-number"),
        P("<0.04", "<", 0.04, "< 0.04", id="lt-no-space"),
        P(">  5", ">", 5.0, "> 5", id="gt-extra-space"),
        P(" >= 1e-3 ", ">=", 0.001, ">= 1e-3", id="ge-exponent-padded"),
        P("== 0", "==", 0.0, "== 0", id="eq-zero"),
        P("!= -1.5", "!=", -1.5, "!= -1.5", id="ne-negative"),
        P("<= +.5", "<=", 0.5, "<= +.5", id="leading-plus-and-dot"),
        P("<= 4%", "<=", 0.04, "<= 4%", id="percent-is-a-fraction"),
        P("<= 10.", "<=", 10.0, "<= 10.", id="trailing-dot"),
        P("== true", "==", True, "== true", id="eq-true"),
        P("== false", "==", False, "== false", id="eq-false"),
        P("!= True", "!=", True, "!= true", id="ne-capitalised-true"),
        P("==False", "==", False, "== false", id="eq-false-no-space"),
    ],
)
def test_condition_parses_to_operator_and_threshold(
    text: str, op: str, threshold: float | bool, canonical: str
) -> None:
    condition = parse_condition(text)
    assert (condition.op, condition.threshold, condition.text) == (op, threshold, canonical)
    assert type(condition.threshold) is type(threshold)
    assert not condition.relative
    assert str(condition) == canonical


@pytest.mark.parametrize(
    ("text", "bop", "barg", "canonical", "baseline", "bound"),
    [
        P("<= baseline", None, 0.0, "<= baseline", 0.03, 0.03, id="plain-baseline"),
        P("<= baseline * 1.2", "*", 1.2, "<= baseline * 1.2", 0.05, 0.06, id="times"),
        P("<=baseline*1.2", "*", 1.2, "<= baseline * 1.2", 0.05, 0.06, id="times-no-spaces"),
        P("< baseline + 0.01", "+", 0.01, "< baseline + 0.01", 0.02, 0.03, id="plus"),
        P("> baseline - 2", "-", 2.0, "> baseline - 2", 10.0, 8.0, id="minus"),
        P(">= baseline * 50%", "*", 0.5, ">= baseline * 50%", 4.0, 2.0, id="times-percent"),
    ],
)
def test_relative_condition_bounds_by_the_baseline_value(  # noqa: PLR0917
    text: str, bop: str | None, barg: float, canonical: str, baseline: float, bound: float
) -> None:
    condition = parse_condition(text)
    assert (condition.baseline_op, condition.baseline_arg, condition.text) == (bop, barg, canonical)
    assert condition.relative
    assert condition.threshold is None
    assert condition.bound(baseline) == pytest.approx(bound)


def test_relative_condition_without_baseline_value_is_an_error() -> None:
    with pytest.raises(
        ValueError, match=r"^condition '<= baseline \* 2' needs the baseline's value$"
    ):
        parse_condition("<= baseline * 2").bound()


@pytest.mark.parametrize(
    ("text", "value", "baseline", "expected"),
    [
        P("<= 0.04", 0.04, None, True, id="le-at-bound"),
        P("<= 0.04", 0.0401, None, False, id="le-above"),
        P("< 0.04", 0.04, None, False, id="lt-at-bound"),
        P("> 0", 1, None, True, id="gt-int-value"),
        P(">= 5", 4.99, None, False, id="ge-below"),
        P("== 0", 0.0, None, True, id="eq-zero"),
        P("== 0", 1.0, None, False, id="eq-nonzero"),
        P("!= 0", 3.0, None, True, id="ne"),
        P("== true", True, None, True, id="true-is-true"),
        P("== true", 1.0, None, True, id="one-is-true"),
        P("== true", 0.0, None, False, id="zero-is-not-true"),
        P("== false", 0.0, None, True, id="zero-is-false"),
        P("!= true", False, None, True, id="ne-true"),
        P("<= 0.04", math.nan, None, False, id="nan-never-passes-le"),
        P("!= 0", math.nan, None, False, id="nan-never-passes-ne"),
        P("== false", math.nan, None, False, id="nan-is-not-false"),
        P("!= true", math.nan, None, False, id="nan-is-not-not-true"),
        P("<= baseline * 1.2", 0.059, 0.05, True, id="relative-below"),
        P("<= baseline * 1.2", 0.061, 0.05, False, id="relative-above"),
        P("<= baseline", 0.01, math.nan, False, id="nan-baseline-never-passes"),
        P("<= 1e300", math.inf, None, False, id="inf-above-finite-bound"),
    ],
)
def test_condition_holds(
    text: str, value: float | bool, baseline: float | None, expected: bool
) -> None:
    assert parse_condition(text).holds(value, baseline) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        P(
            "0.04",
            "cannot parse condition '0.04': expected OP VALUE, e.g. '<= 0.04', '== false'"
            " or '<= baseline * 1.2'",
            id="missing-operator",
        ),
        P(
            "=< 0.04",
            "cannot parse condition '=< 0.04': expected OP VALUE, e.g. '<= 0.04', '== false'"
            " or '<= baseline * 1.2'",
            id="reversed-operator",
        ),
        P(
            "= 1",
            "cannot parse condition '= 1': expected OP VALUE, e.g. '<= 0.04', '== false'"
            " or '<= baseline * 1.2'",
            id="single-equals",
        ),
        P(
            "<= 0.04x",
            "cannot parse condition '<= 0.04x': expected OP VALUE, e.g. '<= 0.04', '== false'"
            " or '<= baseline * 1.2'",
            id="trailing-garbage",
        ),
        P(
            "<=",
            "cannot parse condition '<=': expected OP VALUE, e.g. '<= 0.04', '== false'"
            " or '<= baseline * 1.2'",
            id="operator-only",
        ),
        P(
            "",
            "cannot parse condition '': expected OP VALUE, e.g. '<= 0.04', '== false'"
            " or '<= baseline * 1.2'",
            id="empty",
        ),
        P(
            "<= __import__('os')",
            "cannot parse condition \"<= __import__('os')\": expected OP VALUE, e.g. '<= 0.04',"
            " '== false' or '<= baseline * 1.2'",
            id="code-is-not-evaluated",
        ),
        P(
            "<= nan",
            "cannot parse condition '<= nan': expected OP VALUE, e.g. '<= 0.04', '== false'"
            " or '<= baseline * 1.2'",
            id="nan-word",
        ),
        P(
            "<= baseline * x",
            "cannot parse condition '<= baseline * x': expected OP VALUE, e.g. '<= 0.04',"
            " '== false' or '<= baseline * 1.2'",
            id="baseline-times-word",
        ),
        P(
            "<= baseline / 2",
            "cannot parse condition '<= baseline / 2': expected OP VALUE, e.g. '<= 0.04',"
            " '== false' or '<= baseline * 1.2'",
            id="baseline-divided",
        ),
        P(
            "< true",
            "cannot parse condition '< true': true/false compare only with == or !=",
            id="ordered-boolean",
        ),
        P(
            ">= false",
            "cannot parse condition '>= false': true/false compare only with == or !=",
            id="ordered-false",
        ),
        P(
            "<= 1e999",
            "cannot parse condition '<= 1e999': the number must be finite",
            id="infinite-number",
        ),
        P(
            "<= baseline * 1e999",
            "cannot parse condition '<= baseline * 1e999': the number must be finite",
            id="infinite-baseline-factor",
        ),
        P(
            0.04,
            "expected a condition like '<= 0.04' (an operator first), got 0.04",
            id="yaml-number",
        ),
        P(0, "expected a condition like '<= 0.04' (an operator first), got 0", id="yaml-int"),
        P(
            True,
            "expected a condition like '<= 0.04' or '== false', got true (write '== true')",
            id="yaml-true",
        ),
        P(
            False,
            "expected a condition like '<= 0.04' or '== false', got false (write '== false')",
            id="yaml-false",
        ),
        P(None, "expected a condition like '<= 0.04', got nothing", id="yaml-null"),
        P(["<", 1], "expected a condition like '<= 0.04', got a list", id="yaml-list"),
    ],
)
def test_bad_condition_message_quotes_the_text(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as caught:
        parse_condition(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "metric", "condition", "canonical"),
    [
        P("exception_rate > 0.06", "exception_rate", "> 0.06", "exception_rate > 0.06", id="gt"),
        P("exception_rate>0.06", "exception_rate", "> 0.06", "exception_rate > 0.06", id="tight"),
        P(
            "  reviewer_queue_sla_breach == true ",
            "reviewer_queue_sla_breach",
            "== true",
            "reviewer_queue_sla_breach == true",
            id="boolean-padded",
        ),
        P(
            "critical_regressions > 0",
            "critical_regressions",
            "> 0",
            "critical_regressions > 0",
            id="count",
        ),
        P(
            "_x1 >= baseline * 2",
            "_x1",
            ">= baseline * 2",
            "_x1 >= baseline * 2",
            id="relative-underscore-name",
        ),
        P("Rate != 1", "Rate", "!= 1", "Rate != 1", id="capitalised-name"),
    ],
)
def test_trigger_parses_metric_and_condition(
    text: str, metric: str, condition: str, canonical: str
) -> None:
    trigger = parse_trigger(text)
    assert (trigger.metric, trigger.condition.text, trigger.text, str(trigger)) == (
        metric,
        condition,
        canonical,
        canonical,
    )
    assert isinstance(trigger.condition, Condition)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        P(
            "exception_rate",
            "cannot parse trigger 'exception_rate': expected METRIC OP VALUE,"
            " e.g. 'exception_rate > 0.06'",
            id="metric-only",
        ),
        P(
            "> 0.06",
            "cannot parse trigger '> 0.06': expected METRIC OP VALUE, e.g. 'exception_rate > 0.06'",
            id="no-metric",
        ),
        P(
            "exception_rate >> 0.06",
            "cannot parse trigger 'exception_rate >> 0.06': expected METRIC OP VALUE,"
            " e.g. 'exception_rate > 0.06'",
            id="double-operator",
        ),
        P(
            "1rate > 0",
            "cannot parse trigger '1rate > 0': expected METRIC OP VALUE,"
            " e.g. 'exception_rate > 0.06'",
            id="name-starts-with-digit",
        ),
        P(
            "exception-rate > 0",
            "cannot parse trigger 'exception-rate > 0': expected METRIC OP VALUE,"
            " e.g. 'exception_rate > 0.06'",
            id="dash-in-name",
        ),
        P(
            "sla_breach > true",
            "cannot parse trigger 'sla_breach > true': true/false compare only with == or !=",
            id="ordered-boolean",
        ),
        P(
            "x > 1e400",
            "cannot parse trigger 'x > 1e400': the number must be finite",
            id="infinite",
        ),
        P(
            "",
            "cannot parse trigger '': expected METRIC OP VALUE, e.g. 'exception_rate > 0.06'",
            id="empty",
        ),
        P(5, "expected a trigger like 'exception_rate > 0.06', got int", id="yaml-number"),
        P(None, "expected a trigger like 'exception_rate > 0.06', got nothing", id="yaml-null"),
    ],
)
def test_bad_trigger_message_quotes_the_text(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as caught:
        parse_trigger(text)
    assert str(caught.value) == message
