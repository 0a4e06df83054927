"""Formats of a decision: the JSON object of PRODUCT.md §5, YAML, and a table for people.

Pure functions from ``Decision`` to text or plain data; the CLI, the
controller's status history and the replay command all use these.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from gatectl.core.decide import format_value
from gatectl.core.observations import CheckResult, Decision, Freshness
from gatectl.core.timeparse import format_time
from gatectl.policy.durations import format_duration

__all__ = [
    "check_to_dict",
    "decision_to_dict",
    "freshness_to_dict",
    "render_json",
    "render_table",
    "render_yaml",
]


def _number(value: float | bool | None) -> float | bool | None:
    if value is None or isinstance(value, bool):
        return value
    return round(float(value), 10)


def check_to_dict(check: CheckResult) -> dict[str, Any]:
    """One criterion or trigger as JSON-ready data."""
    body: dict[str, Any] = {"metric": check.metric}
    if check.kind == "criterion":
        body["condition"] = check.condition
    else:
        body["expression"] = check.condition
    body["value"] = _number(check.value)
    body["result"] = check.result
    body["query"] = dict(check.query) if isinstance(check.query, Mapping) else check.query
    if check.threshold is not None:
        body["threshold"] = _number(check.threshold)
    if check.baseline is not None:
        body["baseline"] = _number(check.baseline)
    if check.samples is not None:
        body["samples"] = _number(check.samples)
    if check.interval is not None:
        body["lower_bound"] = _number(check.interval.lower)
        body["upper_bound"] = _number(check.interval.upper)
        body["confidence"] = check.interval.confidence
        body["method"] = check.interval.method
    if check.dispersion is not None:
        body["dispersion"] = _number(check.dispersion)
    if check.dry_run:
        body["dry_run"] = True
    if check.error is not None:
        body["error"] = check.error
    elif check.note is not None:
        body["note"] = check.note
    return body


def decision_to_dict(
    decision: Decision, *, gate: str, workflow: str, namespace: str | None = None
) -> dict[str, Any]:
    """The JSON object of one gate's decision (PRODUCT.md §5)."""
    body: dict[str, Any] = {"gate": gate}
    if namespace is not None:
        body["namespace"] = namespace
    body.update(
        {
            "workflow": workflow,
            "decision": decision.action.value,
            "current_share": decision.current_share,
            "next_share": decision.next_share,
            "step": decision.current_step + 1,
            "next_step": decision.next_step + 1,
            "complete": decision.complete,
            "evaluated_at": format_time(decision.evaluated_at),
            "window": {
                "started_at": format_time(decision.window.started_at),
                "elapsed_seconds": round(decision.window.elapsed_seconds, 3),
                "required_seconds": decision.window.required_seconds,
            },
            "samples": _number(decision.samples),
            "criteria": [check_to_dict(c) for c in decision.criteria],
            "triggers": [check_to_dict(t) for t in decision.triggers],
            "reasons": list(decision.reasons),
            "inconclusive": decision.inconclusive,
            "inconclusive_count": decision.inconclusive_count,
            "awaiting_approval": decision.awaiting_approval,
        }
    )
    if decision.notes:
        body["notes"] = list(decision.notes)
    if decision.freshness is not None:
        body["freshness"] = freshness_to_dict(decision.freshness)
    if decision.warming_up:
        body["warming_up"] = True
    if decision.exposure is not None:
        exposure: dict[str, Any] = {"status": decision.exposure.status}
        if decision.exposure.observed_share is not None:
            exposure["observed_share"] = _number(decision.exposure.observed_share)
            exposure["requests"] = _number(decision.exposure.requests)
        if decision.exposure.message is not None:
            exposure["message"] = decision.exposure.message
        body["exposure"] = exposure
    return body


def freshness_to_dict(freshness: Freshness) -> dict[str, Any]:
    """The canary request series' newest sample age and window coverage, as JSON-ready data."""
    body: dict[str, Any] = {
        "newest_sample_age_seconds": _number(freshness.newest_age_seconds),
        "coverage": _number(freshness.coverage),
        "query": freshness.query,
    }
    if freshness.error is not None:
        body["error"] = freshness.error
    return body


def _freshness_line(freshness: Freshness) -> str:
    if freshness.error is not None:
        return f"  data     freshness unknown: {freshness.error}"
    if freshness.newest_age_seconds is None:
        return "  data     no canary request sample in the window"
    return (
        f"  data     newest sample {format_duration(freshness.newest_age_seconds)} ago,"
        f" {math.floor((freshness.coverage or 0.0) * 100)} % of the window covered"
    )


def render_json(items: Sequence[Mapping[str, Any]]) -> str:
    """One object for one gate, a list for several."""
    payload: Any = items[0] if len(items) == 1 else list(items)
    return json.dumps(payload, indent=2)


def render_yaml(items: Sequence[Mapping[str, Any]]) -> str:
    """The same data as YAML."""
    import yaml

    payload: Any = dict(items[0]) if len(items) == 1 else [dict(i) for i in items]
    return yaml.safe_dump(payload, sort_keys=False, allow_unicode=True)


_RESULT_WORDS = {
    "pass": "pass",
    "fail": "FAIL",
    "undecided": "undecided",
    "no_data": "NO DATA",
    "fired": "FIRED",
    "not_fired": "ok",
}


def _share(value: float) -> str:
    return f"{value * 100:g}%"


def _bounds(check: CheckResult) -> str:
    if check.interval is None:
        return ""
    return f"[{check.interval.lower:.3g}, {check.interval.upper:.3g}]"


def render_table(decisions: Sequence[tuple[str, str, Decision]]) -> str:
    """A block per gate that a person reads at a glance."""
    blocks: list[str] = []
    for gate, workflow, decision in decisions:
        head = f"{gate}  (workflow {workflow})"
        verdict = decision.action.value.upper()
        if decision.complete:
            verdict += " (complete)"
        lines = [
            f"{head}: {verdict}  share {_share(decision.current_share)}"
            f" -> {_share(decision.next_share)}",
            f"  window   {format_duration(decision.window.elapsed_seconds)} elapsed of"
            f" {format_duration(decision.window.required_seconds)}"
            f"   samples {format_value(decision.samples)}",
        ]
        if decision.freshness is not None:
            lines.append(_freshness_line(decision.freshness))
        rows = [("CHECK", "CONDITION", "VALUE", "BOUNDS", "RESULT")]
        for check in (*decision.criteria, *decision.triggers):
            name = check.metric if check.kind == "criterion" else "trigger"
            condition = check.condition
            result = _RESULT_WORDS.get(check.result, check.result)
            if check.dry_run:
                result += " (dry run)"
            rows.append((name, condition, format_value(check.value), _bounds(check), result))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for row in rows:
            lines.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )
        missing = {
            f"  ! {c.metric}: {c.error}"
            for c in (*decision.criteria, *decision.triggers)
            if c.result == "no_data"
        }
        lines.extend(sorted(missing))
        lines.append("  reasons:")
        lines.extend(f"    - {reason}" for reason in decision.reasons)
        lines.extend(f"    · {note}" for note in decision.notes)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
