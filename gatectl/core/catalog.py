"""The built-in metric catalog and query templating (PRODUCT.md §3).

Pure: turns a gate's metric names into the PromQL that reads them. A policy's
own ``metrics:`` entry wins over the built-in definition of the same name.
Templates use ``{{workflow}}``, ``{{window}}`` and ``{{track}}``; values are
escaped for a PromQL double-quoted string, so a workflow name can never change
what a query means.

Built-in definitions also have a *batch* form that reads many workflows in one
query (``workflow=~"^(a|b)$"`` and ``sum by (workflow)``): the controller uses
it so that 10,000 gates cost a handful of queries, not one per gate per metric.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from gatectl.core.labels import escape_label_value
from gatectl.policy.durations import prometheus_range
from gatectl.policy.models import BUILTIN_METRICS, MetricDefinition

__all__ = [
    "BOOLEAN_METRICS",
    "BUILTIN",
    "SAMPLES_METRIC",
    "Read",
    "batch_query",
    "definition_for",
    "escape_label_value",
    "regex_alternation",
    "render",
]

SAMPLES_METRIC = "samples"
"""The pseudo-metric name of the canary request count."""


def _sum_increase(series: str, *, track: bool = True) -> str:
    track_matcher = ',track="{{track}}"' if track else ""
    return f'sum(increase({series}{{workflow="{{{{workflow}}}}"{track_matcher}}}[{{{{window}}}}]))'


_REQUESTS = _sum_increase("workflow_requests_total")

BUILTIN: dict[str, MetricDefinition] = {
    "exception_rate": MetricDefinition(
        numerator=_sum_increase("workflow_exceptions_total"), denominator=_REQUESTS
    ),
    "human_override_rate": MetricDefinition(
        numerator=_sum_increase("workflow_human_overrides_total"), denominator=_REQUESTS
    ),
    "critical_regressions": MetricDefinition(
        query=_sum_increase("workflow_critical_regressions_total")
    ),
    "reviewer_queue_sla_breach": MetricDefinition(
        query='max(max_over_time(workflow_reviewer_queue_sla_breached{workflow="{{workflow}}"}'
        "[{{window}}])) > bool 0"
    ),
    SAMPLES_METRIC: MetricDefinition(query=_REQUESTS),
}
"""Built-in definitions, keyed by metric name (``samples`` is the request count)."""

BOOLEAN_METRICS = frozenset(name for name, kind in BUILTIN_METRICS.items() if kind == "boolean")
"""Built-in metrics whose value is a boolean (0 is false, anything else true)."""

_PLACEHOLDER = re.compile(r"\{\{\s*(workflow|window|track)\s*\}\}")


_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def regex_alternation(values: list[str]) -> str:
    """An anchored RE2 alternation matching exactly ``values`` (regex metacharacters escaped)."""
    return "^(" + "|".join(_RE2_SPECIAL.sub(r"\\\1", v) for v in sorted(values)) + ")$"


def render(template: str, *, workflow: str, window_seconds: float, track: str = "canary") -> str:
    """Fill a query template; label values are escaped, the window is whole seconds."""
    values = {
        "workflow": escape_label_value(workflow),
        "window": prometheus_range(window_seconds),
        "track": escape_label_value(track),
    }
    if "{{ " in template or " }}" in template:
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    # The common shape, without a regex: this runs for every read of every gate.
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", value)
    return template


def definition_for(metric: str, custom: dict[str, MetricDefinition]) -> MetricDefinition | None:
    """The policy's own definition of ``metric``, else the built-in one, else ``None``."""
    if metric in custom:
        return custom[metric]
    return BUILTIN.get(metric)


@dataclass(frozen=True)
class Read:
    """One PromQL template to read for one workflow, over one window, on one track."""

    template: str
    workflow: str
    window_seconds: float
    track: str = "canary"

    def promql(self) -> str:
        """The rendered query for this workflow alone."""
        return render(
            self.template,
            workflow=self.workflow,
            window_seconds=self.window_seconds,
            track=self.track,
        )

    @property
    def batchable(self) -> bool:
        """True when the template can read many workflows in one query (built-in shape)."""
        return _batch_parts(self.template) is not None

    def batch_key(self) -> tuple[str, str, str]:
        """Reads with equal keys can share one query."""
        return (self.template, prometheus_range(self.window_seconds), self.track)


_BATCH_SHAPE = re.compile(r'^(sum|max)\((.*)workflow="\{\{workflow\}\}"(.*)\)((?: > bool 0)?)$')


@functools.lru_cache(maxsize=1024)
def _batch_parts(template: str) -> tuple[str, str, str, str] | None:
    match = _BATCH_SHAPE.match(template)
    if match is None or template.count("{{workflow}}") != 1:
        return None
    agg, before, after, suffix = match.groups()
    return agg, before, after, suffix


def batch_query(
    template: str, *, workflows: list[str], window_seconds: float, track: str = "canary"
) -> str | None:
    """One query reading ``template`` for every workflow, grouped ``by (workflow)``.

    Only templates of the built-in shape (an outer ``sum(...)`` or ``max(...)``
    whose only use of ``{{workflow}}`` is a ``workflow="{{workflow}}"`` matcher)
    can be batched; others give ``None`` and are read one gate at a time.
    """
    parts = _batch_parts(template)
    if parts is None:
        return None
    agg, before, after, suffix = parts
    regex = escape_label_value(regex_alternation(workflows))
    inner = f'{before}workflow=~"{regex}"{after}'
    body = f"{agg} by (workflow) ({inner}){suffix}"
    return render(body, workflow="", window_seconds=window_seconds, track=track)
