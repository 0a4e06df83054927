"""Checks across fields that pydantic's per-field validation cannot express.

A criterion naming a metric nobody defines would never get data and hold the
gate forever; a boolean metric compared with ``> 0.5`` is a typo for
``== true``. These are caught when the policy loads, each reported at the
field path that names the metric.
"""

from __future__ import annotations

from gatectl.policy.expr import Condition
from gatectl.policy.messages import did_you_mean, excerpt
from gatectl.policy.models import BUILTIN_METRICS, GateSpec

__all__ = ["spec_problems"]

Problem = tuple[tuple[str | int, ...], str]


def _kind(spec: GateSpec, metric: str) -> str | None:
    """``rate``/``count``/``boolean``, ``None`` when only the query knows, or ``"undefined"``."""
    own = spec.metrics.get(metric)
    if own is not None:
        return "rate" if own.is_rate else None
    return BUILTIN_METRICS.get(metric, "undefined")


def _check(spec: GateSpec, metric: str, condition: Condition) -> str | None:
    kind = _kind(spec, metric)
    if kind == "undefined":
        known = sorted({*BUILTIN_METRICS, *spec.metrics})
        return (
            f"unknown metric {excerpt(metric)}{did_you_mean(metric, known)}: define it under"
            f" metrics, or use a built-in one ({', '.join(sorted(BUILTIN_METRICS))})"
        )
    if kind == "boolean" and not condition.is_boolean:
        return (
            f"{metric} is true or false: compare it with == true or == false,"
            f" not {excerpt(condition.text)}"
        )
    if kind in ("rate", "count") and condition.is_boolean:
        return f"{metric} is a number: compare it with a number, not {excerpt(condition.text)}"
    if kind == "boolean" and condition.relative:
        return f"{metric} has no baseline track: compare it with true or false"
    return None


def spec_problems(spec: GateSpec) -> list[Problem]:
    """Every cross-field problem of ``spec`` as (field path inside the spec, message)."""
    problems: list[Problem] = []
    for metric, criterion in spec.success_criteria.items():
        message = _check(spec, metric, criterion.condition)
        if message is not None:
            problems.append((("success_criteria", metric), message))
    for index, trigger in enumerate(spec.rollback_trigger):
        message = _check(spec, trigger.expression.metric, trigger.expression.condition)
        if message is not None:
            problems.append((("rollback_trigger", index), message))
    return problems
