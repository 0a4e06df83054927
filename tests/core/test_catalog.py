"""Built-in queries, templating and batch queries (PRODUCT.md §3)."""

from __future__ import annotations

import pytest

from gatectl.core.catalog import (
    BUILTIN,
    Read,
    batch_query,
    definition_for,
    escape_label_value,
    regex_alternation,
    render,
)
from gatectl.policy import MetricDefinition


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        pytest.param(
            "exception_rate",
            (
                'sum(increase(workflow_exceptions_total{workflow="triage",track="canary"}[3600s]))',
                'sum(increase(workflow_requests_total{workflow="triage",track="canary"}[3600s]))',
            ),
            id="exception-rate",
        ),
        pytest.param(
            "human_override_rate",
            (
                'sum(increase(workflow_human_overrides_total{workflow="triage",track="canary"}[3600s]))',
                'sum(increase(workflow_requests_total{workflow="triage",track="canary"}[3600s]))',
            ),
            id="override-rate",
        ),
        pytest.param(
            "critical_regressions",
            (
                'sum(increase(workflow_critical_regressions_total{workflow="triage",track="canary"}[3600s]))',
            ),
            id="regressions",
        ),
        pytest.param(
            "reviewer_queue_sla_breach",
            (
                'max(max_over_time(workflow_reviewer_queue_sla_breached{workflow="triage"}[3600s])) > bool 0',
            ),
            id="sla-breach-has-no-track",
        ),
        pytest.param(
            "samples",
            ('sum(increase(workflow_requests_total{workflow="triage",track="canary"}[3600s]))',),
            id="samples",
        ),
    ],
)
def test_builtin_queries_are_exactly_the_contract(metric: str, expected: tuple[str, ...]) -> None:
    definition = BUILTIN[metric]
    templates = (
        (definition.query,) if definition.query else (definition.numerator, definition.denominator)
    )
    rendered = tuple(render(t or "", workflow="triage", window_seconds=3600) for t in templates)
    assert rendered == expected


@pytest.mark.parametrize(
    ("workflow", "matcher"),
    [
        pytest.param('a"} or vector(1) #', 'workflow="a\\"} or vector(1) #"', id="quote-injection"),
        pytest.param("a\\b", 'workflow="a\\\\b"', id="backslash"),
        pytest.param("a\nb", 'workflow="a\\nb"', id="newline"),
    ],
)
def test_workflow_names_can_never_change_a_query(workflow: str, matcher: str) -> None:
    query = render(
        BUILTIN["critical_regressions"].query or "", workflow=workflow, window_seconds=60
    )
    assert matcher in query
    assert query.count('"') - query.count('\\"') == 4  # two strings, nothing escaped out


def test_template_spacing_and_track_and_window_rounding() -> None:
    assert (
        render(
            "{{ workflow }}/{{track}}/{{ window }}",
            workflow="w",
            window_seconds=59.9,
            track="baseline",
        )
        == "w/baseline/59s"
    )
    assert render("[{{window}}]", workflow="w", window_seconds=0.2) == "[1s]"


def test_policy_definition_wins_over_builtin() -> None:
    custom = {"exception_rate": MetricDefinition(query="my_query")}
    assert definition_for("exception_rate", custom) == custom["exception_rate"]
    assert definition_for("critical_regressions", custom) == BUILTIN["critical_regressions"]
    assert definition_for("unknown", custom) is None


def test_batch_query_groups_by_workflow_with_an_escaped_regex() -> None:
    query = batch_query(
        BUILTIN["exception_rate"].numerator or "", workflows=["b.c", "a"], window_seconds=600
    )
    assert query == (
        'sum by (workflow) (increase(workflow_exceptions_total{workflow=~"^(a|b\\\\.c)$",'
        'track="canary"}[600s]))'
    )
    sla = batch_query(
        BUILTIN["reviewer_queue_sla_breach"].query or "", workflows=["a"], window_seconds=60
    )
    assert (
        sla
        == 'max by (workflow) (max_over_time(workflow_reviewer_queue_sla_breached{workflow=~"^(a)$"}[60s])) > bool 0'
    )


@pytest.mark.parametrize(
    "template",
    [
        pytest.param('rate(x{workflow="{{workflow}}"}[{{window}}])', id="no-outer-aggregation"),
        pytest.param(
            'sum(x{workflow="{{workflow}}"}) / sum(y{workflow="{{workflow}}"})', id="two-uses"
        ),
        pytest.param('sum(x{app="{{workflow}}"})', id="other-label"),
    ],
)
def test_custom_shapes_are_read_one_gate_at_a_time(template: str) -> None:
    assert batch_query(template, workflows=["a"], window_seconds=60) is None
    assert not Read(template, "a", 60).batchable


def test_regex_alternation_escapes_metacharacters() -> None:
    assert regex_alternation(["a+b", "c|d", "e(f)"]) == "^(a\\+b|c\\|d|e\\(f\\))$"
    assert escape_label_value('x"y') == 'x\\"y'


def test_catalog_defines_exactly_the_policy_models_builtin_metrics() -> None:
    from gatectl.core.catalog import BOOLEAN_METRICS, SAMPLES_METRIC
    from gatectl.policy import BUILTIN_METRICS

    assert set(BUILTIN) - {SAMPLES_METRIC} == set(BUILTIN_METRICS)
    assert {"reviewer_queue_sla_breach"} == BOOLEAN_METRICS
