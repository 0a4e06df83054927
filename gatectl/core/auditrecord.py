"""What goes into an audit record: one per decision change and one per human action.

A record says what happened to one gate (``action``), what it did to the
traffic (``share`` before and after), who did it (``actor``: the controller's
identity, or the human whose name the API server or the state store recorded),
why (``reason``), and on what evidence (every check with its query, value,
bounds, threshold and samples, the window, the policy's revision and hash).
Records are built here, purely; ``gatectl.engine.audit`` chains and ships them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gatectl.core.observations import Decision
from gatectl.core.redact import redact_url
from gatectl.core.render import decision_to_dict
from gatectl.core.status import GateStatus
from gatectl.core.timeparse import format_time
from gatectl.policy.models import Gate

__all__ = [
    "HUMAN_ACTIONS",
    "decision_record",
    "finite",
    "policy_of",
    "status_records",
]

HUMAN_ACTIONS = {"approved": "approve", "reset": "reset", "fallback-requested": "fallback"}
"""Status history entries made by a human, and the record ``action`` each becomes."""
_ROLLOUT_ACTIONS = {
    "start": "start",
    "new-revision": "new-revision",
    "steps-edited": "steps-edited",
}
_HIDDEN = "<redacted>"


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``None`` (JSON cannot hold them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def policy_of(gate: Gate) -> dict[str, Any]:
    """The policy a record was decided under: source, revision, its spec and the spec's hash.

    Secrets never enter the log: header values and webhook URLs are redacted, a
    Prometheus URL loses its user info. The hash is over the redacted spec.
    """
    spec = gate.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    prometheus = spec.get("prometheus")
    if isinstance(prometheus, dict):
        if prometheus.get("headers"):
            prometheus["headers"] = dict.fromkeys(prometheus["headers"], _HIDDEN)
        if isinstance(prometheus.get("url"), str):
            prometheus["url"] = redact_url(prometheus["url"])
    webhook = spec.get("webhook")
    if isinstance(webhook, dict):
        webhook["url"] = _HIDDEN
        if webhook.get("headers"):
            webhook["headers"] = dict.fromkeys(webhook["headers"], _HIDDEN)
    spec = finite(spec)
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {
        "source": gate.source,
        "revision": gate.revision,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "spec": spec,
    }


def _base(gate: Gate, *, now: datetime, action: str, kind: str, actor: str) -> dict[str, Any]:
    return {
        "time": format_time(now),
        "gate": gate.name,
        "namespace": gate.namespace,
        "workflow": gate.workflow,
        "revision": gate.revision,
        "action": action,
        "kind": kind,
        "actor": actor,
    }


def decision_record(
    gate: Gate,
    decision: Decision,
    *,
    before: GateStatus,
    phase: str,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """The record of a decision that changed (action, phase, share or a check's result)."""
    body = decision_to_dict(decision, gate=gate.name, workflow=gate.workflow)
    evidence = {
        key: body[key]
        for key in (
            "evaluated_at",
            "window",
            "samples",
            "criteria",
            "triggers",
            "inconclusive",
            "inconclusive_count",
            "awaiting_approval",
            "complete",
            "notes",
            "freshness",
            "warming_up",
        )
        if key in body
    }
    action = "complete" if decision.complete else decision.action.value
    record = _base(gate, now=now, action=action, kind="decision", actor=actor)
    record.update(
        {
            "phase": phase,
            "share": {"before": before.share, "after": decision.next_share},
            "step": {"before": before.step, "after": decision.next_step + 1},
            "reason": decision.reasons[0] if decision.reasons else "",
            "reasons": list(decision.reasons),
            "evidence": finite(evidence),
            "policy": policy_of(gate),
        }
    )
    return record


def status_records(
    gate: Gate,
    *,
    before: GateStatus | None,
    after: GateStatus,
    actor: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """Records of what ``prepare`` did: a new gate, a new revision, edited steps, approvals,
    resets and human fallbacks (the history entries it added), oldest first."""
    if before is not None and after.history is before.history:
        return []  # most passes: the history as it was (and, packed, not decoded for nothing)
    old = list(before.history) if before is not None else []
    added = [entry for entry in after.history if entry not in old]
    records: list[dict[str, Any]] = []
    if not added:
        return records  # most passes: nothing added, and the policy is not dumped for nothing
    share: float | None = before.share if before is not None else None
    step: int | None = before.step if before is not None else None
    policy = policy_of(gate)
    policy.pop("spec")
    for entry in added:
        kind_of = str(entry.get("action"))
        if kind_of in HUMAN_ACTIONS:
            action, kind, who = HUMAN_ACTIONS[kind_of], "human", str(entry.get("by") or "unknown")
        elif kind_of in _ROLLOUT_ACTIONS:
            action, kind, who = _ROLLOUT_ACTIONS[kind_of], "rollout", actor
        else:
            continue
        new_share, new_step = share, step
        if action == "fallback":
            new_share, new_step = 0.0, 0
        elif action in ("start", "new-revision", "reset", "steps-edited"):
            new_share, new_step = after.share, after.step
        record = _base(gate, now=now, action=action, kind=kind, actor=who)
        record.update(
            {
                "phase": after.phase,
                "share": {"before": share, "after": new_share},
                "step": {"before": step, "after": new_step},
                "reason": _reason(entry),
                "evidence": finite({k: v for k, v in entry.items() if k not in ("time", "by")}),
                "policy": policy,
            }
        )
        records.append(record)
        share, step = new_share, new_step
    return records


def _reason(entry: Mapping[str, Any]) -> str:
    action = entry.get("action")
    if action == "approved":
        return f"promotion into step {entry.get('step')} approved"
    if action == "reset":
        return "reset: the rollout restarts at step 1"
    if action == "fallback-requested":
        return str(entry.get("reason") or "fallback requested")
    if action == "start":
        return "new gate: starts at step 1"
    if action == "new-revision":
        return f"new revision {entry.get('revision')} (was {entry.get('previous')}): step 1"
    return f"steps edited: the share {entry.get('share')} is now step {entry.get('step')}"
