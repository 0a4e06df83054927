"""The built-in metric catalog and query templating (PRODUCT.md §3).

Pure: turns a gate's metric names into the PromQL that reads them. A policy's
own ``metrics:`` entry wins over the built-in definition of the same name.
Templates use ``{{workflow}}``, ``{{window}}`` and ``{{track}}``; values are
escaped for a PromQL double-quoted string, so a workflow name can never change
what a query means.

Built-in definitions also have a *batch* form that reads many workflows in one
query (``workflow=~"^(a|b)$"`` and ``sum by (workflow)``): the controller uses
it so that 10,000 gates cost a handful of queries, not one per gate per metric.

The freshness query (``freshness_query``) reads, for every workflow of a batch
at once, the newest sample of the canary request series and how much of the
window that series covers (``gatectl.core.freshness`` judges the answer);
a fleet reads it in two parts (``freshness_batch_query``, ``newest_query``),
the second only for the rare workflow whose newest sample is not recent.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gatectl.core.labels import escape_label_value
from gatectl.policy.durations import prometheus_range
from gatectl.policy.models import BUILTIN_METRICS, MetricDefinition

__all__ = [
    "BOOLEAN_METRICS",
    "BUILTIN",
    "FRESHNESS_LABEL",
    "FRESHNESS_POINTS",
    "REQUESTS_SERIES",
    "SAMPLES_METRIC",
    "Read",
    "batch_query",
    "definition_for",
    "escape_label_value",
    "freshness_batch_query",
    "freshness_query",
    "freshness_resolution",
    "freshness_steps",
    "newest_query",
    "regex_alternation",
    "render",
]

SAMPLES_METRIC = "samples"
"""The pseudo-metric name of the canary request count."""


def _sum_increase(series: str, *, track: bool = True) -> str:
    track_matcher = ',track="{{track}}"' if track else ""
    return f'sum(increase({series}{{workflow="{{{{workflow}}}}"{track_matcher}}}[{{{{window}}}}]))'


REQUESTS_SERIES = "workflow_requests_total"
"""The canary request counter: the sample count, and the series whose freshness is the gate's."""

_REQUESTS = _sum_increase(REQUESTS_SERIES)

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
    return _alternation(tuple(sorted(values)))


@functools.lru_cache(maxsize=64)
def _alternation(values: tuple[str, ...]) -> str:
    # A fleet's batches repeat from pass to pass: 10,000 names escaped once, not each pass.
    return "^(" + "|".join(_RE2_SPECIAL.sub(r"\\\1", v) for v in values) + ")$"


def render(template: str, *, workflow: str, window_seconds: float, track: str = "canary") -> str:
    """Fill a query template; label values are escaped, the window is whole seconds."""
    parts = _template(template)
    if len(parts) == 1:
        return template
    values = {
        "workflow": escape_label_value(workflow),
        "window": prometheus_range(window_seconds),
        "track": escape_label_value(track),
    }
    # One pass: a filled-in value is never scanned again, so a workflow named
    # ``x{{track}}`` stays ``x{{track}}`` instead of becoming ``xcanary``.
    return "".join(values[part] if i % 2 else part for i, part in enumerate(parts))


@functools.lru_cache(maxsize=1024)
def _template(template: str) -> tuple[str, ...]:
    """``template`` split around its placeholders: text, name, text, …, text.

    Every gate renders its own queries each pass (their text is its evidence):
    a template is scanned once, not once per gate.
    """
    return tuple(_PLACEHOLDER.split(template))


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

    def fill(part: str) -> str:
        return render(part, workflow="", window_seconds=window_seconds, track=track)

    # The template's own parts are filled first; workflow names go in last and unscanned.
    return f'{agg} by (workflow) ({fill(before)}workflow=~"{regex}"{fill(after)}){fill(suffix)}'


FRESHNESS_POINTS = 100
"""The window is probed at this many instants to measure how much of it holds data."""

FRESHNESS_LABEL = "gatectl_read"
"""The label that tells the two answers of ``freshness_query`` apart (``newest``, ``coverage``)."""


def freshness_resolution(window_seconds: float) -> int:
    """The subquery step (whole seconds) that probes a window at ``FRESHNESS_POINTS`` instants."""
    window = max(1, math.floor(window_seconds))
    return max(1, math.ceil(window / FRESHNESS_POINTS))


def freshness_steps(window_seconds: float, *, at: float) -> int:
    """How many subquery steps ``[window:resolution]`` evaluated at unix time ``at`` has.

    Prometheus aligns subquery steps to multiples of the step since the epoch
    and (2.x) includes both ends of the range.
    """
    window = max(1, math.floor(window_seconds))
    step = freshness_resolution(window_seconds)
    return max(1, math.floor(at / step) - math.ceil((at - window) / step) + 1)


def _freshness_parts(workflows: Sequence[str], window_seconds: float) -> tuple[str, str, str]:
    """(newest sample within the lookback delta, coverage, subquery range)."""
    if len(workflows) == 1:
        matcher = f'workflow="{escape_label_value(workflows[0])}"'
    else:
        matcher = f'workflow=~"{escape_label_value(regex_alternation(list(workflows)))}"'
    series = f'{REQUESTS_SERIES}{{{matcher},track="canary"}}'
    probe = f"[{prometheus_range(window_seconds)}:{freshness_resolution(window_seconds)}s]"
    latest = f"max by (workflow) (timestamp({series}))"
    return latest, f"count_over_time((max by (workflow) ({series})){probe})", probe


def _labelled(expr: str, kind: str) -> str:
    return f'label_replace({expr}, "{FRESHNESS_LABEL}", "{kind}", "", "")'


def freshness_query(workflows: Sequence[str], *, window_seconds: float) -> str:
    """One query answering, per workflow, two series told apart by ``gatectl_read``.

    ``newest``: the unix time of the newest canary request sample — exact while
    it is within Prometheus' lookback delta (``timestamp()`` of the raw
    series), else the newest one seen by a subquery over the window.
    ``coverage``: at how many of the subquery's steps some canary request
    series of the workflow was present (compare with ``freshness_steps``).
    One workflow is matched with ``=``, several with an anchored regex.

    This is the query a gate's evidence quotes. A fleet reads the same answers
    in two parts (``freshness_batch_query``, then ``newest_query`` for the few
    workflows it needs): PromQL evaluates both sides of ``or``, so the
    ``newest`` subquery here costs as much as the coverage one even when every
    workflow's latest sample is fresh.
    """
    latest, coverage, probe = _freshness_parts(workflows, window_seconds)
    newest = f"{latest} or max_over_time(({latest}){probe})"
    return f"{_labelled(newest, 'newest')} or {_labelled(coverage, 'coverage')}"


def freshness_batch_query(workflows: Sequence[str], *, window_seconds: float) -> str:
    """``freshness_query`` without its ``newest`` subquery: one subquery, not two.

    ``newest`` is answered only for workflows with a sample within the lookback
    delta; a workflow with ``coverage`` but no ``newest`` is read again with
    ``newest_query``.
    """
    latest, coverage, _ = _freshness_parts(workflows, window_seconds)
    return f"{_labelled(latest, 'newest')} or {_labelled(coverage, 'coverage')}"


def newest_query(workflows: Sequence[str], *, window_seconds: float) -> str:
    """``newest`` for workflows whose latest sample is older than the lookback delta."""
    latest, _, probe = _freshness_parts(workflows, window_seconds)
    return _labelled(f"max_over_time(({latest}){probe})", "newest")
