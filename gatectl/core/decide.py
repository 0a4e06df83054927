"""The decision: a pure function of policy, observations, gate state and now.

Follows PRODUCT.md §4 in order — rollback triggers, missing data, sample
count, success criteria, promotion window, approval — and returns the action
with every check's evidence and every reason that blocks promotion, the
deciding one first. No I/O, no clock: ``now`` is an argument, so any past
decision can be reproduced exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from gatectl.core import stats
from gatectl.core.catalog import BOOLEAN_METRICS
from gatectl.core.drift import RECENT_SCALES, recent_confidence, recent_key, scale_span
from gatectl.core.exposure import check_exposure
from gatectl.core.freshness import Verdict, judge, missing_reason, overrule
from gatectl.core.observations import (
    Action,
    CheckResult,
    Decision,
    Exposure,
    GateState,
    Interval,
    Observation,
    ObservationSet,
    Window,
)
from gatectl.policy.durations import format_duration
from gatectl.policy.expr import Condition
from gatectl.policy.models import CheckSettings, GateSpec, TriggerSpec

__all__ = ["decide", "evaluation_window", "fallback_target", "format_value"]

_UPPER_OPS = ("<", "<=")
"""A rate must stay below the threshold: its upper bound decides a pass."""
_LOWER_OPS = (">", ">=")
_NEEDS_AT_MOST = 10**12
"""Beyond this many more requests, "needs ~N more" says only "more than" this."""


def evaluation_window(spec: GateSpec, *, started_at: datetime, now: datetime) -> Window:
    """The window: time since the step started; queries cover at most the promotion window."""
    elapsed = max(0.0, (now - started_at).total_seconds())
    return Window(
        started_at=started_at, elapsed_seconds=elapsed, required_seconds=spec.promotion_window
    )


def fallback_target(spec: GateSpec, step: int) -> tuple[int, float]:
    """(step, share) after a fallback: deterministic path (-1, 0.0) or the previous step."""
    if spec.fallback_mode == "previous_step" and step > 0:
        return step - 1, spec.shares[step - 1]
    return -1, 0.0


def format_value(value: float | bool | None) -> str:
    """A value as people read it in reasons: ``true``, ``0.052``, ``1,234``, ``no data``."""
    if value is None:
        return "no data"
    if isinstance(value, bool):
        return "true" if value else "false"
    if math.isfinite(value) and value == int(value) and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _percent(confidence: float) -> str:
    return f"{confidence * 100:g} %"


@dataclass(frozen=True)
class _Outcome:
    result: str
    value: float | bool | None
    threshold: float | bool | None = None
    interval: Interval | None = None
    baseline: float | None = None
    note: str | None = None


def _point(value: float | bool | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _boolean_view(metric: str, condition: Condition, value: float) -> float | bool:
    if condition.is_boolean or metric in BOOLEAN_METRICS:
        return value != 0.0
    return value


class _Bounds:
    """The confidence intervals of one decision, each computed once.

    A criterion and a trigger on one metric (``exception_rate <= 0.04`` and
    ``exception_rate > 0.06``) bound the same counts at the same level: one
    pair of root searches, not two. Lives for one decision: nothing is kept
    between gates or passes.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[float, float, float, float], Interval] = {}

    def rate(
        self, events: float, trials: float, *, confidence: float, dispersion: float
    ) -> Interval:
        key = (events, trials, confidence, dispersion)
        known = self._known.get(key)
        if known is None:
            known = stats.rate_interval(
                events, trials, confidence=confidence, dispersion=dispersion
            )
            self._known[key] = known
        return known


def _evaluate(
    metric: str,
    condition: Condition,
    observation: Observation | None,
    baseline: Observation | None,
    *,
    confidence: float | None,
    trigger: bool,
    bounds: _Bounds,
) -> _Outcome:
    """Evaluate one condition; ``result`` is phrased for a criterion (pass/fail/undecided/no_data).

    For a trigger the caller maps pass -> fired, fail -> not_fired.
    """
    if observation is None or _point(observation.value) is None:
        cause = observation.error if observation is not None else "metric was not read"
        return _Outcome("no_data", None, note=cause or "no data")
    value = float(observation.value)  # type: ignore[arg-type]
    shown = _boolean_view(metric, condition, value)
    base_value: float | None = None
    if condition.relative:
        if baseline is None or _point(baseline.value) is None:
            cause = baseline.error if baseline is not None else "baseline was not read"
            return _Outcome("no_data", shown, note=f"baseline: {cause or 'no data'}")
        base_value = float(baseline.value)  # type: ignore[arg-type]
    threshold = condition.bound(base_value)
    bounded = (
        confidence is not None
        and observation.is_rate
        and not condition.is_boolean
        and condition.op in _UPPER_OPS + _LOWER_OPS
        and (not condition.relative or (baseline is not None and baseline.is_rate))
    )
    if not bounded:
        holds = condition.holds(shown, base_value)
        return _Outcome("pass" if holds else "fail", shown, threshold, baseline=base_value)
    assert confidence is not None
    problem = _count_problem(observation, baseline if condition.relative else None)
    if problem is not None:
        return _Outcome("no_data", shown, note=problem)
    interval = _interval(condition, observation, baseline, confidence=confidence, bounds=bounds)
    # With a relative condition the interval is of canary - bound, compared with 0.
    limit = 0.0 if condition.relative else float(threshold)
    strict = condition.op in ("<", ">")
    if condition.op in _UPPER_OPS:
        proven = interval.upper < limit if strict else interval.upper <= limit
        refuted = interval.lower >= limit if strict else interval.lower > limit
        side = "upper"
    else:
        proven = interval.lower > limit if strict else interval.lower >= limit
        refuted = interval.upper <= limit if strict else interval.upper < limit
        side = "lower"
    if trigger:
        # A trigger "x > t" fires only when the bound proves x > t: noise alone never falls back.
        return _Outcome("pass" if proven else "fail", shown, threshold, interval, base_value)
    if proven:
        return _Outcome("pass", shown, threshold, interval, base_value)
    if refuted:
        return _Outcome("fail", shown, threshold, interval, base_value)
    note = None
    if not condition.relative:
        more = stats.samples_needed(
            observation.numerator or 0.0,
            observation.denominator or 0.0,
            threshold=limit,
            confidence=confidence,
            side=side,  # type: ignore[arg-type]
            dispersion=_phi(observation),
        )
        if more is not None:
            amount = f"~{more:,}" if more <= _NEEDS_AT_MOST else f"more than {_NEEDS_AT_MOST:,}"
            note = (
                f"needs {amount} more requests to show {metric} {condition.text}"
                f" at {_percent(confidence)}"
            )
    if note is None:
        note = (
            f"{metric} {condition.text} not yet shown at {_percent(confidence)}"
            f" (bounds {interval.lower:.4g}..{interval.upper:.4g})"
        )
    return _Outcome("undecided", shown, threshold, interval, base_value, note)


def _count_problem(observation: Observation, baseline: Observation | None) -> str | None:
    """Why the counts cannot be bounded (negative, not finite, above 2**62), or ``None``.

    Such an answer is no data with that cause, never an exception out of the decision.
    """
    for prefix, counted in (("", observation), ("baseline: ", baseline)):
        if counted is not None:
            error = stats.count_error(counted.numerator or 0.0, counted.denominator or 0.0)
            if error is not None:
                return prefix + error
    return None


def _phi(observation: Observation) -> float:
    """The dispersion factor the bounds use: 1 when not measured (or not a usable number)."""
    phi = observation.dispersion
    return phi if phi is not None and math.isfinite(phi) and phi >= 1.0 else 1.0


def _interval(
    condition: Condition,
    observation: Observation,
    baseline: Observation | None,
    *,
    confidence: float,
    bounds: _Bounds,
) -> Interval:
    events = observation.numerator or 0.0
    trials = observation.denominator or 0.0
    if not condition.relative:
        return bounds.rate(events, trials, confidence=confidence, dispersion=_phi(observation))
    assert baseline is not None
    scale, offset = 1.0, 0.0
    if condition.baseline_op == "*":
        scale = condition.baseline_arg
    elif condition.baseline_op == "+":
        offset = condition.baseline_arg
    elif condition.baseline_op == "-":
        offset = -condition.baseline_arg
    # As stats.difference_interval computes it, from intervals the decision may have already.
    each = stats.difference_level(confidence)
    return stats.difference_of(
        bounds.rate(events, trials, confidence=each, dispersion=_phi(observation)),
        bounds.rate(
            baseline.numerator or 0.0,
            baseline.denominator or 0.0,
            confidence=each,
            dispersion=_phi(baseline),
        ),
        confidence=confidence,
        scale=scale,
        offset=offset,
    )


def _level(settings: CheckSettings, spec: GateSpec) -> float | None:
    """The check's confidence level, else the gate's; ``None`` when ``off`` (point values)."""
    chosen = settings.confidence if settings.confidence is not None else spec.confidence
    return None if chosen == "off" else chosen


def _check(
    kind: str,
    *,
    metric: str,
    condition: Condition,
    text: str,
    settings: CheckSettings,
    spec: GateSpec,
    observations: ObservationSet,
    bounds: _Bounds,
) -> CheckResult:
    observation = observations.canary.get(metric)
    outcome = _evaluate(
        metric,
        condition,
        observation,
        observations.baseline.get(metric),
        confidence=_level(settings, spec),
        trigger=kind == "trigger",
        bounds=bounds,
    )
    result = outcome.result
    if kind == "trigger":
        result = {"pass": "fired", "fail": "not_fired"}.get(result, result)
    return CheckResult(
        kind=kind,  # type: ignore[arg-type]
        metric=metric,
        condition=text,
        result=result,
        value=outcome.value,
        query=observation.query if observation is not None else "",
        threshold=outcome.threshold,
        error=outcome.note if result == "no_data" else None,
        samples=observation.denominator if observation is not None else None,
        interval=outcome.interval,
        baseline=outcome.baseline,
        dry_run=settings.dry_run,
        note=outcome.note,
        # Only where bounds used it: with point values it would only churn the evidence.
        dispersion=observation.dispersion if outcome.interval is not None and observation else None,
    )


def _recent(
    check: CheckResult,
    trigger: TriggerSpec,
    *,
    spec: GateSpec,
    observations: ObservationSet,
    state: GateState,
    now: datetime,
    bounds: _Bounds,
) -> CheckResult:
    """The trigger on the recent windows too, when the whole window did not fire it.

    Three scales (``gatectl.core.drift``): the window of scale ``L`` starts at
    the whole multiple of ``L`` before the current one; the ``j``-th such
    anchor since the step began gets its own confidence sequence at error
    ``drift.anchor_error`` (a share of ``alpha`` per scale, spread over the
    anchors so that they sum to it), so all of them together err with
    probability at most ``alpha`` (docs/statistics.md). The shortest window that proves
    the condition fires.
    """
    confidence = _level(trigger, spec)
    if check.result == "fired" or confidence is None or observations.recent_seconds is None:
        return check
    if trigger.expression.condition.relative:
        return check
    for scale in RECENT_SCALES:
        observation = observations.recent.get(recent_key(check.metric, scale))
        if observation is None:
            continue
        level = recent_confidence(
            confidence,
            scale=scale,
            started_seconds=state.step_started_at.timestamp(),
            now_seconds=now.timestamp(),
        )
        outcome = _evaluate(
            check.metric,
            trigger.expression.condition,
            observation,
            None,
            confidence=level,
            trigger=True,
            bounds=bounds,
        )
        if outcome.result != "pass":
            continue
        seconds = scale_span(observations.recent_seconds, now_seconds=now.timestamp(), scale=scale)
        return CheckResult(
            kind="trigger",
            metric=check.metric,
            condition=check.condition,
            result="fired",
            value=outcome.value,
            query=observation.query,
            threshold=outcome.threshold,
            samples=observation.denominator,
            interval=outcome.interval,
            dry_run=check.dry_run,
            note=f"fired on the last {format_duration(seconds)}",
            dispersion=observation.dispersion,
        )
    return check


def _describe(check: CheckResult) -> str:
    value = format_value(check.value)
    if check.kind == "trigger":
        text = f"rollback trigger fired: {check.condition} (value {value}"
        if check.interval is not None:
            text += (
                f", lower bound {check.interval.lower:.4g} at {_percent(check.interval.confidence)}"
            )
        if check.note and check.note.startswith("fired on the last "):
            text += ", " + check.note[len("fired ") :]
        return text + ")"
    if check.result == "undecided" and check.note:
        return check.note
    text = f"{check.metric} = {value} fails {check.condition}"
    if check.baseline is not None:
        text += f" (baseline {format_value(check.baseline)})"
    if check.interval is not None:
        text += f" (bounds {check.interval.lower:.4g}..{check.interval.upper:.4g})"
    return text


def _exposure(
    spec: GateSpec, observations: ObservationSet, *, share: float, window: Window, warming: bool
) -> Exposure | None:
    """The exposure check, or ``None`` when it was not read (off) or the step is warming up."""
    read = observations.baseline_samples is not None or observations.recent_samples is not None
    if not spec.exposure.enabled or not read or warming:
        return None
    return check_exposure(
        spec.exposure,
        share=share,
        canary=observations.samples,
        baseline=observations.baseline_samples,
        recent=observations.recent_samples,
        elapsed_seconds=window.elapsed_seconds,
        confidence=None if spec.confidence == "off" else spec.confidence,
    )


def decide(
    spec: GateSpec, observations: ObservationSet, state: GateState, *, now: datetime
) -> Decision:
    """Decide promote / hold / fallback for one gate, with its evidence (PRODUCT.md §4)."""
    shares = spec.shares
    step = min(max(state.step, 0), len(shares) - 1)
    share = shares[step] if state.share is None else state.share
    # The next step is the first share above the current one: ``step + 1`` unless the
    # steps were edited mid-rollout and the gate sits between two of them.
    above = [index for index, candidate in enumerate(shares) if candidate > share]
    promote_to = above[0] if above else None
    window = evaluation_window(spec, started_at=state.step_started_at, now=now)
    bounds = _Bounds()
    checked: list[tuple[CheckResult, CheckSettings]] = [
        (
            _check(
                "criterion",
                metric=metric,
                condition=c.condition,
                text=c.condition.text,
                settings=c,
                spec=spec,
                observations=observations,
                bounds=bounds,
            ),
            c,
        )
        for metric, c in spec.success_criteria.items()
    ]
    checked += [
        (
            _recent(
                _check(
                    "trigger",
                    metric=t.expression.metric,
                    condition=t.expression.condition,
                    text=t.expression.text,
                    settings=t,
                    spec=spec,
                    observations=observations,
                    bounds=bounds,
                ),
                t,
                spec=spec,
                observations=observations,
                state=state,
                now=now,
                bounds=bounds,
            ),
            t,
        )
        for t in spec.rollback_trigger
    ]
    # Stale, unknown or warming-up data can prove harm (a fired trigger) but never health.
    quality = judge(
        observations.freshness,
        elapsed_seconds=window.elapsed_seconds,
        window_seconds=window.query_seconds,
        max_staleness=spec.prometheus.max_staleness,
        scrape_interval=spec.prometheus.scrape_interval,
    )
    warming = quality.verdict is Verdict.WARMING_UP
    checked = [(overrule(c, quality), s) for c, s in checked]
    criteria = tuple(c for c, _ in checked if c.kind == "criterion")
    triggers = tuple(c for c, _ in checked if c.kind == "trigger")
    enforced = [(c, s) for c, s in checked if not s.dry_run]
    samples = None if quality.withholds_data else _point(observations.samples.value)
    notes = tuple(
        f"dry run: {c.condition if c.kind == 'trigger' else c.metric + ' ' + c.condition}"
        f" is {c.result.replace('_', ' ')}"
        for c, s in checked
        if s.dry_run and c.result not in ("pass", "not_fired")
    )

    exposure = _exposure(spec, observations, share=share, window=window, warming=warming)
    if exposure is not None and exposure.status == "not_checked" and not exposure.blocks:
        notes += (exposure.message or "",)

    def build(
        action: Action,
        reasons: list[str],
        *,
        sticky: tuple[int, float] | None = None,
        inconclusive: bool = False,
        inconclusive_count: int = 0,
        complete: bool = False,
        awaiting_approval: bool = False,
    ) -> Decision:
        at_step, at_share = sticky or (step, share)
        next_step, next_share = at_step, at_share
        if sticky is not None:
            pass  # already on the fallback path: nothing moves
        elif action is Action.FALLBACK:
            next_step, next_share = fallback_target(spec, step)
        elif action is Action.PROMOTE and promote_to is not None:
            next_step, next_share = promote_to, shares[promote_to]
        return Decision(
            action=action,
            current_step=at_step,
            current_share=at_share,
            next_step=next_step,
            next_share=next_share,
            evaluated_at=now,
            window=window,
            samples=samples,
            criteria=criteria,
            triggers=triggers,
            reasons=tuple(reasons),
            notes=notes,
            inconclusive=inconclusive,
            inconclusive_count=inconclusive_count,
            complete=complete,
            awaiting_approval=awaiting_approval,
            freshness=observations.freshness,
            warming_up=warming and action is Action.HOLD,
            exposure=exposure,
        )

    if state.fallen_back:
        sticky_reason = (
            "fell back earlier: fallback is sticky until `gatectl reset` or a new revision"
        )
        # state.step is where the fallback left the gate: -1 is the deterministic path.
        at = (-1, 0.0) if state.step < 0 else (step, share)
        return build(Action.FALLBACK, [sticky_reason], sticky=at)

    # 1. rollback triggers
    reasons = [_describe(c) for c, _ in enforced if c.kind == "trigger" and c.result == "fired"]
    fired = bool(reasons)

    # 2. missing data (inconclusive); warming up is neither missing data nor a reset of the count
    missing = [(c, s) for c, s in enforced if c.result == "no_data" and not warming]
    # A metric read by a criterion and a trigger is one missing number: say it once.
    missing_reasons = list(
        dict.fromkeys(missing_reason(c.metric, c.error, quality) for c, _ in missing)
    )
    on_no_data = {s.on_no_data or spec.on_no_data for _, s in missing}
    if samples is None and not warming:
        overruled = quality.no_data and _point(observations.samples.value) is not None
        cause = quality.reason if overruled else observations.samples.error
        reason = missing_reason("the sample count", cause, quality)
        missing_reasons += [reason] if reason not in missing_reasons else []
        on_no_data.add(spec.on_no_data)
    inconclusive = bool(missing_reasons)
    count = state.inconclusive_count + 1 if inconclusive else 0
    if warming:
        count = state.inconclusive_count  # warming up neither counts nor resets
    exhausted = inconclusive and "fallback" in on_no_data and count >= spec.max_inconclusive
    if exhausted:
        missing_reasons.insert(
            0,
            f"inconclusive {count} evaluations in a row"
            f" (max_inconclusive {spec.max_inconclusive}, on_no_data: fallback)",
        )
    reasons += missing_reasons
    if quality.verdict in (Verdict.WARMING_UP, Verdict.MOSTLY_EMPTY) and quality.reason:
        reasons.append(quality.reason)

    if fired or exhausted:
        return build(Action.FALLBACK, reasons, inconclusive=inconclusive, inconclusive_count=count)
    if share >= 1.0:
        return build(
            Action.PROMOTE,
            ["complete: the AI path already has 100 % of traffic"],
            complete=True,
            inconclusive=inconclusive,
            inconclusive_count=count,
        )

    # Between 2 and 3: the canary must be getting the share set (PRODUCT.md §10).
    if exposure is not None and exposure.blocks and exposure.message:
        if exposure.status == "mismatch" and spec.exposure.on_mismatch == "fallback":
            return build(Action.FALLBACK, [exposure.message, *reasons], inconclusive_count=count)
        reasons.append(exposure.message)

    # 3. sample count
    if samples is not None and samples < spec.min_samples:
        reasons.append(
            f"too few samples: {format_value(samples)} canary requests in the window,"
            f" need {spec.min_samples:,}"
        )
    # 4. success criteria
    reasons += [
        _describe(c)
        for c, _ in enforced
        if c.kind == "criterion" and c.result in ("fail", "undecided")
    ]
    # 5. promotion window
    if window.remaining_seconds > 0:
        reasons.append(f"promotion window: {format_duration(window.remaining_seconds)} remaining")
    # 6. approval
    assert promote_to is not None, "a share below 1.0 has a step above it (the last is 1.0)"
    next_share = shares[promote_to]
    blocked_before_approval = bool(reasons)
    if spec.approval and next_share > spec.approval.required_above and not state.approved:
        owner = f" from {spec.owner}" if spec.owner else ""
        reasons.append(
            f"promotion to {next_share * 100:g} % needs approval{owner}"
            f" (above {spec.approval.required_above * 100:g} %): run `gatectl approve`"
        )
    if reasons:
        return build(
            Action.HOLD,
            reasons,
            inconclusive=inconclusive,
            inconclusive_count=count,
            awaiting_approval=not blocked_before_approval,
        )
    # 7. promote
    return build(
        Action.PROMOTE,
        [f"all criteria met: promote from {share * 100:g} % to {next_share * 100:g} %"],
        inconclusive=inconclusive,
        inconclusive_count=count,
    )
