"""Built-in queries, templating and batch queries (PRODUCT.md §3)."""

from __future__ import annotations

import pytest

from gatectl.core.catalog import (
    BUILTIN,
    Read,
    batch_query,
    definition_for,
    escape_label_value,
    freshness_batch_query,
    freshness_query,
    freshness_resolution,
    freshness_steps,
    newest_query,
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


@pytest.mark.parametrize(
    ("workflow", "track", "expected"),
    [
        pytest.param(
            "x{{track}}",
            "canary",
            'x{workflow="x{{track}}",track="canary"}[60s]',
            id="workflow-named-like-track",
        ),
        pytest.param(
            "x{{window}}",
            "canary",
            'x{workflow="x{{window}}",track="canary"}[60s]',
            id="workflow-named-like-window",
        ),
        pytest.param(
            "{{window}}{{track}}",
            "baseline",
            'x{workflow="{{window}}{{track}}",track="baseline"}[60s]',
            id="workflow-named-like-both",
        ),
    ],
)
def test_placeholders_are_filled_in_one_pass_so_values_are_never_templates(
    workflow: str, track: str, expected: str
) -> None:
    template = 'x{workflow="{{workflow}}",track="{{track}}"}[{{window}}]'
    assert render(template, workflow=workflow, window_seconds=60, track=track) == expected


def test_freshness_query_for_one_workflow_is_exactly_this() -> None:
    series = 'workflow_requests_total{workflow="x\\"y",track="canary"}'
    latest = f"max by (workflow) (timestamp({series}))"
    assert freshness_query(['x"y'], window_seconds=172800.9) == (
        f'label_replace({latest} or max_over_time(({latest})[172800s:1728s]), "gatectl_read",'
        f' "newest", "", "") or label_replace(count_over_time((max by (workflow) ({series}))'
        '[172800s:1728s]), "gatectl_read", "coverage", "", "")'
    )


def test_freshness_query_for_several_workflows_matches_an_escaped_regex() -> None:
    query = freshness_query(["b.c", "a"], window_seconds=600)
    assert query.count('workflow_requests_total{workflow=~"^(a|b\\\\.c)$",track="canary"}') == 3
    assert query.count("[600s:6s]") == 2


def test_a_fleet_reads_freshness_with_one_subquery_and_newest_apart() -> None:
    series = 'workflow_requests_total{workflow=~"^(a|b)$",track="canary"}'
    latest = f"max by (workflow) (timestamp({series}))"
    assert freshness_batch_query(["b", "a"], window_seconds=600) == (
        f'label_replace({latest}, "gatectl_read", "newest", "", "") or label_replace('
        f'count_over_time((max by (workflow) ({series}))[600s:6s]), "gatectl_read",'
        ' "coverage", "", "")'
    )
    assert newest_query(["b", "a"], window_seconds=600) == (
        f'label_replace(max_over_time(({latest})[600s:6s]), "gatectl_read", "newest", "", "")'
    )


@pytest.mark.parametrize(
    ("window", "resolution"),
    [
        pytest.param(0.2, 1, id="under-a-second"),
        pytest.param(12, 1, id="seconds"),
        pytest.param(101, 2, id="just-over-100-seconds"),
        pytest.param(600, 6, id="ten-minutes"),
        pytest.param(172800, 1728, id="48h"),
    ],
)
def test_freshness_resolution_probes_the_window_about_100_times(
    window: float, resolution: int
) -> None:
    assert freshness_resolution(window) == resolution


@pytest.mark.parametrize(
    ("window", "at", "steps"),
    [
        pytest.param(600, 1_800_000_000.0, 101, id="aligned-ends-both-count"),
        pytest.param(600, 1_800_000_003.0, 100, id="unaligned"),
        pytest.param(172800, 1_728_000_000.0, 101, id="48h-aligned"),
        pytest.param(172800, 1_728_000_100.0, 100, id="48h-unaligned"),
        pytest.param(0.5, 1_800_000_000.5, 1, id="one-second"),
    ],
)
def test_freshness_steps_counts_the_subquery_instants(window: float, at: float, steps: int) -> None:
    assert freshness_steps(window, at=at) == steps
