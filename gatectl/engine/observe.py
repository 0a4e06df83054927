"""Observe: read what gates need from Prometheus, separate from deciding.

Planning (which templates, workflows, windows and tracks to read) is pure;
executing sends the queries concurrently. In batch mode (the controller) reads
that share a built-in definition, a window and a track are answered by one
``sum by (workflow)`` query for all their workflows, so a tick over 10,000
gates costs a handful of queries. Thresholds never appear here.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from gatectl.adapters.prometheus import Sample, format_labels, value_or_error
from gatectl.core.catalog import (
    BUILTIN,
    FRESHNESS_LABEL,
    SAMPLES_METRIC,
    Read,
    batch_query,
    definition_for,
    freshness_batch_query,
    freshness_query,
    freshness_steps,
    newest_query,
    render,
)
from gatectl.core.dispersion import (
    DISPERSION_LABEL,
    POOL_LOOKBACK_SECONDS,
    DispersionSums,
    dispersion_bound,
    dispersion_interval,
    dispersion_query,
    pooled_bound,
    sums_from,
)
from gatectl.core.drift import RECENT_SCALES, recent_key, recent_span
from gatectl.core.observations import Freshness, Observation, ObservationSet
from gatectl.errors import QueryError
from gatectl.policy.durations import prometheus_range
from gatectl.policy.models import BUILTIN_METRICS, Gate, MetricDefinition

__all__ = [
    "RECENT_ANCHOR_SECONDS",
    "GatePlan",
    "QueryClient",
    "observe",
    "plan_gate",
    "quantize_window",
    "recent_window",
]


class QueryClient(Protocol):
    """What observe needs of a Prometheus client."""

    async def query(self, promql: str, *, at: datetime) -> list[Sample]:
        """Run an instant query at ``at``."""
        ...


@dataclass(frozen=True)
class GatePlan:
    """What to read for one gate: metric definitions per track, over one window."""

    key: str
    workflow: str
    window_seconds: float
    canary: Mapping[str, MetricDefinition | None]
    baseline: Mapping[str, MetricDefinition] = field(default_factory=dict)
    dispersion_interval: int = 60
    """Seconds per interval of the rates' dispersion estimate (``gatectl.core.dispersion``)."""
    exposure_grace: float | None = None
    """The exposure check's grace (its recent window); ``None``: the check is off."""
    recent: Mapping[str, MetricDefinition] = field(default_factory=dict)
    """Rate metrics of rollback triggers, also read over the recent window."""

    def reads(self) -> Iterable[Read]:
        """Every template this gate needs, once per track."""
        for track, metrics in (("canary", self.canary), ("baseline", self.baseline)):
            for definition in metrics.values():
                if definition is None:
                    continue
                for template in _templates(definition):
                    yield Read(template, self.workflow, self.window_seconds, track)
        if self.exposure_grace is not None:
            yield Read(_REQUESTS, self.workflow, self.window_seconds, "baseline")
            yield Read(_REQUESTS, self.workflow, self.exposure_grace, "canary")


_REQUESTS: str = BUILTIN[SAMPLES_METRIC].query or ""
"""The request count's template (the exposure check reads it on both tracks)."""


def _templates(definition: MetricDefinition) -> tuple[str, ...]:
    if definition.query is not None:
        return (definition.query,)
    assert definition.numerator is not None and definition.denominator is not None
    return (definition.numerator, definition.denominator)


def plan_gate(gate: Gate, *, window_seconds: float) -> GatePlan:
    """The reads one gate needs: each metric it names, the sample count, baselines if relative."""
    spec = gate.spec
    canary: dict[str, MetricDefinition | None] = {
        name: definition_for(name, spec.metrics) for name in spec.metric_names()
    }
    canary[SAMPLES_METRIC] = definition_for(SAMPLES_METRIC, {})
    relative = {name for name, c in spec.success_criteria.items() if c.condition.relative}
    relative |= {
        t.expression.metric for t in spec.rollback_trigger if t.expression.condition.relative
    }
    baseline = {
        name: definition
        for name in sorted(relative)
        if (definition := definition_for(name, spec.metrics)) is not None
    }
    return GatePlan(
        key=gate.key,
        workflow=gate.workflow,
        window_seconds=window_seconds,
        canary=canary,
        baseline=baseline,
        dispersion_interval=dispersion_interval(spec.prometheus.scrape_interval),
        exposure_grace=spec.exposure.grace if spec.exposure.enabled else None,
        recent={
            t.expression.metric: definition
            for t in spec.rollback_trigger
            if not t.expression.condition.relative
            and (definition := definition_for(t.expression.metric, spec.metrics)) is not None
            and definition.numerator is not None
        },
    )


RECENT_ANCHOR_SECONDS = RECENT_SCALES[0]
"""The first recent window starts at the whole hour before the current one (1 h to 2 h long)."""
_RECENT_KEY = "\x00recent"


def recent_window(at: datetime, scale: int = RECENT_ANCHOR_SECONDS) -> float:
    """Seconds since the whole multiple of ``scale`` before the current one (core.drift)."""
    return recent_span(at.timestamp(), scale)


def quantize_window(seconds: float) -> float:
    """Round a query window down so that many gates share one batch query.

    Whole minutes past an hour, ten seconds past five minutes, else whole
    seconds: at most 1.7 % of the window is left out of the query.
    """
    step = 60.0 if seconds >= 3600 else 10.0 if seconds >= 300 else 1.0
    return max(1.0, math.floor(seconds / step) * step)


_Value = float | QueryError


async def _run(client: QueryClient, promql: str, at: datetime) -> list[Sample] | QueryError:
    try:
        return await client.query(promql, at=at)
    except QueryError as exc:
        return exc


async def _execute(
    reads: set[Read], client: QueryClient, *, at: datetime, batch: bool, concurrency: int
) -> dict[Read, _Value]:
    """Answer every read, batching where allowed; failures become QueryError values."""
    limit = asyncio.Semaphore(concurrency)
    results: dict[Read, _Value] = {}

    async def one(read: Read) -> None:
        promql = read.promql()
        async with limit:
            answer = await _run(client, promql, at)
        if isinstance(answer, QueryError):
            results[read] = answer
            return
        # The evidence shows the query already: the message need not repeat it.
        results[read] = value_or_error(answer)

    async def grouped(group: list[Read]) -> None:
        first = group[0]
        workflows = sorted({r.workflow for r in group})
        promql = batch_query(
            first.template,
            workflows=workflows,
            window_seconds=first.window_seconds,
            track=first.track,
        )
        assert promql is not None
        async with limit:
            answer = await _run(client, promql, at)
        if isinstance(answer, QueryError):
            for read in group:
                results[read] = answer
            return
        by_workflow: dict[str, list[Sample]] = defaultdict(list)
        for sample in answer:
            by_workflow[sample.labels.get("workflow", "")].append(sample)
        for read in group:
            # A gate's evidence names its own query (read.promql()), never the batch:
            # the batch lists every workflow, so quoting it would grow with the fleet.
            results[read] = value_or_error(by_workflow.get(read.workflow, []))

    tasks = []
    groups: dict[tuple[str, str, str], list[Read]] = defaultdict(list)
    for read in reads:
        if batch and read.batchable:
            groups[read.batch_key()].append(read)
        else:
            tasks.append(one(read))
    for group in groups.values():
        tasks.append(grouped(group) if len(group) > 1 else one(group[0]))
    await asyncio.gather(*tasks)
    return results


def _observation(
    metric: str,
    definition: MetricDefinition | None,
    plan: GatePlan,
    track: str,
    values: Mapping[Read, _Value],
) -> Observation:
    if definition is None:
        return Observation.missing(
            metric, f"no definition for metric {metric!r}: add it under metrics: in the policy"
        )

    def read(template: str) -> Read:
        return Read(template, plan.workflow, plan.window_seconds, track)

    if definition.query is not None:
        r = read(definition.query)
        value = values[r]
        if isinstance(value, QueryError):
            return Observation.missing(metric, str(value), r.promql())
        if value < 0 and _is_builtin_count(metric, definition):
            return Observation.missing(metric, _negative("count", value), r.promql())
        return Observation(metric=metric, value=value, query=r.promql())
    assert definition.numerator is not None and definition.denominator is not None
    num_read, den_read = read(definition.numerator), read(definition.denominator)
    query = {"numerator": num_read.promql(), "denominator": den_read.promql()}
    numerator, denominator = values[num_read], values[den_read]
    if isinstance(numerator, QueryError):
        return Observation.missing(metric, f"numerator: {numerator}", query)
    if isinstance(denominator, QueryError):
        return Observation.missing(metric, f"denominator: {denominator}", query)
    for part, count in (("numerator", numerator), ("denominator", denominator)):
        if count < 0:
            return Observation.missing(metric, _negative(part, count), query)
    if denominator <= 0:
        return Observation(
            metric=metric,
            value=None,
            query=query,
            error=f"no {track} requests in the window (denominator is {denominator:g})",
            numerator=numerator,
            denominator=denominator,
        )
    rate = numerator / denominator
    if not math.isfinite(rate) or numerator < 0:
        return Observation(
            metric=metric,
            value=None,
            query=query,
            error=f"rate is not a number ({numerator:g}/{denominator:g})",
        )
    if rate > 1 + RATE_SLACK:
        return Observation.missing(
            metric,
            f"rate is above 1 ({numerator:g}/{denominator:g}): more events than requests",
            query,
        )
    if rate > 1:
        # increase() extrapolates each counter on its own: a path where every request
        # fails can read a hair above 1. That is a failure rate of 1, not no data (which
        # would hold a canary that must fall back).
        rate, numerator = 1.0, denominator
    return Observation(
        metric=metric, value=rate, query=query, numerator=numerator, denominator=denominator
    )


RATE_SLACK = 0.05
"""A rate up to ``1 + RATE_SLACK`` reads as 1 (``increase()`` extrapolation); above, no data."""


def _is_builtin_count(metric: str, definition: MetricDefinition) -> bool:
    """A built-in count (``critical_regressions``, the sample count); a policy's own query
    may mean anything, so only its author knows whether below 0 is wrong."""
    kind = "count" if metric == SAMPLES_METRIC else BUILTIN_METRICS.get(metric)
    return kind == "count" and definition == BUILTIN.get(metric)


def _negative(what: str, count: float) -> str:
    return f"{what} is negative ({count:g}): a count cannot be below 0"


async def observe(
    plans: Sequence[GatePlan],
    client: QueryClient,
    *,
    at: datetime,
    batch: bool = False,
    concurrency: int = 16,
) -> dict[str, ObservationSet]:
    """Read every plan's metrics as of ``at``; a failed query is no data, never an exception."""
    read_at = at - timedelta(seconds=float(getattr(client, "query_offset", 0.0)))
    spans = {scale: recent_window(read_at, scale) for scale in RECENT_SCALES}
    # One plan per gate and recent scale shorter than its window (gatectl.core.drift).
    recent_plans = {
        (plan.key, scale): replace(
            plan,
            key=f"{plan.key}{_RECENT_KEY}{scale}",
            window_seconds=span,
            canary=dict(plan.recent),
            baseline={},
            exposure_grace=None,
            recent={},
        )
        for plan in plans
        for scale, span in spans.items()
        if plan.recent and span < plan.window_seconds
    }
    reads = {r for plan in [*plans, *recent_plans.values()] for r in plan.reads()}
    values, freshness, spread = await asyncio.gather(
        _execute(reads, client, at=at, batch=batch, concurrency=concurrency),
        _read_freshness(plans, client, at=at, concurrency=concurrency),
        _read_dispersion(
            [*plans, *recent_plans.values()],
            client,
            at=at,
            batch=batch,
            concurrency=concurrency,
            pooled={plan.key for plan in plans},
        ),
    )

    def measured(observation: Observation, track: str, key: str | None = None) -> Observation:
        sums = spread.get((observation.metric, track, key or plan.key))
        if sums is None or not observation.is_rate or observation.value is None:
            return observation
        if track == "canary":
            # Every canary window (since the step, recent): pooled with the baseline's
            # history (core.dispersion).
            history = spread.get((observation.metric, _HISTORY, plan.key))
            return replace(observation, dispersion=pooled_bound(sums, history))
        return replace(observation, dispersion=dispersion_bound(sums))

    observed: dict[str, ObservationSet] = {}
    for plan in plans:
        canary = {
            m: measured(_observation(m, d, plan, "canary", values), "canary")
            for m, d in plan.canary.items()
            if m != SAMPLES_METRIC
        }
        baseline = {
            m: measured(_observation(m, d, plan, "baseline", values), "baseline")
            for m, d in plan.baseline.items()
        }
        samples = _observation(SAMPLES_METRIC, plan.canary[SAMPLES_METRIC], plan, "canary", values)
        baseline_samples = recent = None
        if plan.exposure_grace is not None:
            requests = BUILTIN[SAMPLES_METRIC]
            baseline_samples = _observation(SAMPLES_METRIC, requests, plan, "baseline", values)
            lately = replace(plan, window_seconds=plan.exposure_grace)
            recent = _observation(SAMPLES_METRIC, requests, lately, "canary", values)
        latest: dict[str, Observation] = {}
        for scale in RECENT_SCALES:
            if (again := recent_plans.get((plan.key, scale))) is not None:
                latest |= {
                    recent_key(m, scale): measured(
                        _observation(m, d, again, "canary", values), "canary", again.key
                    )
                    for m, d in again.canary.items()
                }
        span = spans[RECENT_SCALES[0]]
        observed[plan.key] = ObservationSet(
            canary=canary,
            samples=samples,
            baseline=baseline,
            freshness=freshness[plan.key],
            baseline_samples=baseline_samples,
            recent_samples=recent,
            recent=latest,
            recent_seconds=span if latest else None,
        )
    return observed


async def _read_freshness(
    plans: Sequence[GatePlan], client: QueryClient, *, at: datetime, concurrency: int
) -> dict[str, Freshness]:
    """The canary request series' newest sample and coverage: one query per window for all."""
    by_window: dict[int, list[GatePlan]] = defaultdict(list)
    for plan in plans:
        by_window[max(1, math.floor(plan.window_seconds))].append(plan)
    limit = asyncio.Semaphore(concurrency)
    found: dict[str, Freshness] = {}

    async def one(window: int, group: list[GatePlan]) -> None:
        workflows = sorted({p.workflow for p in group})
        promql = freshness_batch_query(workflows, window_seconds=window)
        async with limit:
            answer = await _run(client, promql, at)
        # Ages count from the instant the data was read as of (``at - query_offset``).
        read_at = at - timedelta(seconds=float(getattr(client, "query_offset", 0.0)))
        steps = freshness_steps(window, at=read_at.timestamp())
        read = _freshness_by_workflow(answer, at=read_at, steps=steps)
        failed: dict[str, str] = {}
        if not isinstance(read, QueryError):
            # Covered, yet no sample within the lookback delta: its newest is older.
            older = [w for w, (newest, present) in read.items() if newest is None and present > 0]
            if older:
                async with limit:
                    answer = await _run(client, newest_query(older, window_seconds=window), at)
                again = _freshness_by_workflow(answer, at=read_at, steps=steps)
                for workflow in older:
                    if isinstance(again, QueryError):
                        failed[workflow] = str(again)
                    else:
                        read[workflow] = (again.get(workflow, (None, 0.0))[0], read[workflow][1])
        for plan in group:
            alone = freshness_query([plan.workflow], window_seconds=window)
            error = str(read) if isinstance(read, QueryError) else failed.get(plan.workflow)
            if error is not None:
                found[plan.key] = Freshness(query=alone, error=error)
                continue
            assert not isinstance(read, QueryError)
            newest, present = read.get(plan.workflow, (None, 0.0))
            found[plan.key] = Freshness(newest_age_seconds=newest, coverage=present, query=alone)

    await asyncio.gather(*(one(w, g) for w, g in by_window.items()))
    return found


def _freshness_by_workflow(
    answer: list[Sample] | QueryError, *, at: datetime, steps: int
) -> dict[str, tuple[float | None, float]] | QueryError:
    """workflow -> (newest sample's age in seconds, share of the window covered)."""
    if isinstance(answer, QueryError):
        return answer
    newest: dict[str, float] = {}
    present: dict[str, float] = {}
    for sample in answer:
        kind = sample.labels.get(FRESHNESS_LABEL)
        workflow = sample.labels.get("workflow")
        if workflow is None or kind not in ("newest", "coverage"):
            return QueryError(f"unexpected series {format_labels(sample.labels)[:200]}")
        if not math.isfinite(sample.value):
            return QueryError(f"{kind} of {workflow[:100]!r} is {sample.value:g}")
        if kind == "newest":
            newest[workflow] = max(0.0, at.timestamp() - sample.value)
        else:
            present[workflow] = min(1.0, max(0.0, sample.value) / steps)
    return {w: (newest.get(w), present.get(w, 0.0)) for w in newest.keys() | present.keys()}


_HISTORY = "baseline history"
"""The track key of the baseline's longer history pooled into a canary's ``phi``."""


@dataclass(frozen=True)
class _SpreadRead:
    """One rate's per-interval counts to read for one workflow on one track."""

    numerator: str
    denominator: str
    workflow: str
    window_seconds: float
    track: str
    interval: int

    def promql(self, workflows: list[str] | None) -> str:
        """The dispersion query for this workflow alone, or for ``workflows`` grouped."""

        def over_interval(template: str) -> str:
            if workflows is None:
                return render(
                    template,
                    workflow=self.workflow,
                    window_seconds=self.interval,
                    track=self.track,
                )
            grouped = batch_query(
                template, workflows=workflows, window_seconds=self.interval, track=self.track
            )
            assert grouped is not None
            return grouped

        return dispersion_query(
            over_interval(self.numerator),
            over_interval(self.denominator),
            window_seconds=self.window_seconds,
            interval=self.interval,
        )


async def _read_dispersion(
    plans: Sequence[GatePlan],
    client: QueryClient,
    *,
    at: datetime,
    batch: bool,
    concurrency: int,
    pooled: set[str],
) -> dict[tuple[str, str, str], DispersionSums]:
    """(metric, track, gate key) -> dispersion sums of every rate the plans read.

    For the plans in ``pooled``, each canary rate's baseline over the last
    ``POOL_LOOKBACK_SECONDS`` too, as track ``_HISTORY``: one window for all
    gates, so one more query per rate definition for the fleet. One query
    per rate definition, window and track for all workflows in batch mode
    (built-in shapes), else one per gate and rate. A failed query leaves the
    rate unmeasured (bounded as independent requests), never no data.
    """
    wanted: dict[tuple[str, str, str], _SpreadRead] = {}
    for plan in plans:
        # (key's track, track read, its rate definitions, window)
        reads = [
            ("canary", "canary", plan.canary, plan.window_seconds),
            ("baseline", "baseline", plan.baseline, plan.window_seconds),
        ]
        if plan.key in pooled:  # the canary's rates, read on the baseline's longer history
            reads.append((_HISTORY, "baseline", plan.canary, POOL_LOOKBACK_SECONDS))
        for name, track, metrics, window in reads:
            for metric, definition in metrics.items():
                if definition is None or definition.numerator is None:
                    continue
                assert definition.denominator is not None
                wanted[(metric, name, plan.key)] = _SpreadRead(
                    definition.numerator,
                    definition.denominator,
                    plan.workflow,
                    window,
                    track,
                    plan.dispersion_interval,
                )
    groups: dict[tuple[str, str, str, str, int], list[_SpreadRead]] = defaultdict(list)
    alone: set[_SpreadRead] = set()
    for read in set(wanted.values()):
        if (
            batch
            and Read(read.numerator, "", 1).batchable
            and Read(read.denominator, "", 1).batchable
        ):
            key = (
                read.numerator,
                read.denominator,
                prometheus_range(read.window_seconds),
                read.track,
                read.interval,
            )
            groups[key].append(read)
        else:
            alone.add(read)
    limit = asyncio.Semaphore(concurrency)
    found: dict[_SpreadRead, DispersionSums] = {}

    async def ask(reads: list[_SpreadRead], workflows: list[str] | None) -> None:
        promql = reads[0].promql(workflows)
        async with limit:
            answer = await _run(client, promql, at)
        if isinstance(answer, QueryError):
            return
        parts: dict[str, dict[str, float]] = defaultdict(dict)
        for sample in answer:
            workflow = reads[0].workflow if workflows is None else sample.labels.get("workflow")
            part = sample.labels.get(DISPERSION_LABEL)
            if workflow is not None and part is not None:
                parts[workflow][part] = sample.value
        for read in reads:
            sums = sums_from(parts.get(read.workflow, {}))
            if sums is not None:
                found[read] = sums

    tasks = [ask([read], None) for read in alone]
    tasks += [ask(group, sorted({r.workflow for r in group})) for group in groups.values()]
    await asyncio.gather(*tasks)
    return {key: found[read] for key, read in wanted.items() if read in found}
