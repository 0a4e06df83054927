"""A gate's persisted status and how a decision changes it: pure, shared by every store.

Everything the controller needs to resume lives here (Kubernetes ``status``
or one entry of the state file): step, share, when the step started, the
spec revision, the inconclusive count, the sticky fallback, the last
decision and a short history. A traffic change is recorded in two phases —
``pending`` first, then committed once the actuator has applied it — so a
crash at any instant leaves either the old step or a pending change that the
next pass completes, never a step taken twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from gatectl.core.observations import PHASES, Action, Decision, GateState
from gatectl.core.packed import PackedHistory
from gatectl.core.render import decision_to_dict
from gatectl.core.timeparse import format_time, parse_time
from gatectl.policy.models import Gate

__all__ = [
    "CONDITION_TYPES",
    "HISTORY_BYTES",
    "HISTORY_LIMIT",
    "PHASES",
    "GateRequests",
    "GateStatus",
    "Transition",
    "apply_decision",
    "approved",
    "commit_pending",
    "fallback_due",
    "gate_state",
    "initial_status",
    "phase_of",
    "prepare",
]

HISTORY_LIMIT = 20


@dataclass(frozen=True)
class GateRequests:
    """What humans asked for: approval of a step, a reset, a pause, a fallback (annotations or
    state file)."""

    approved_step: int | None = None
    """Promotion *into* this step (1-based) is approved."""
    approved_by: str | None = None
    approved_at: str | None = None
    reset_token: str | None = None
    """A new token (usually a timestamp) asks for a reset; each token acts once."""
    reset_by: str | None = None
    paused: bool = False
    fallback_token: str | None = None
    """A new token (the time it was asked) falls the gate back now; each token acts once."""
    fallback_by: str | None = None
    fallback_reason: str | None = None


@dataclass(frozen=True)
class GateStatus:
    """The persisted state of one gate (``status`` of a ReleaseGate)."""

    step: int
    """1-based current step; 0 once fallen back to the deterministic path."""
    share: float
    step_started_at: datetime
    revision: str
    phase: str = "Progressing"
    inconclusive_count: int = 0
    fallen_back: bool = False
    last_decision: Mapping[str, Any] | None = None
    history: Sequence[Mapping[str, Any]] = ()
    """Oldest first: a tuple, or as a store keeps it (``PackedHistory``, decoded when read)."""
    observed_generation: int | None = None
    pending: Mapping[str, Any] | None = None
    last_reset: str | None = None
    last_approval: str | None = None
    message: str | None = None
    conditions: tuple[Mapping[str, Any], ...] = field(default=())
    rollout_started_at: datetime | None = None
    """When this rollout began (a new revision or a reset): older approvals do not count."""
    last_fallback: str | None = None
    """The last human fallback token acted on (``gatectl fallback``)."""
    stopped: Mapping[str, Any] | None = None
    """While a human fallback holds: who (``by``), why (``reason``) and when (``at``)."""
    workflow: str | None = None
    audit: Mapping[str, Any] | None = None
    """The audit chain's record about this gate written last: ``{"seq", "sha256"}``."""

    def to_dict(self) -> dict[str, Any]:
        """The ``status`` object (camelCase, JSON-ready)."""
        body: dict[str, Any] = {
            "phase": self.phase,
            "step": self.step,
            "share": self.share,
            "stepStartedAt": format_time(self.step_started_at),
            "revision": self.revision,
            "inconclusiveCount": self.inconclusive_count,
            "fallenBack": self.fallen_back,
            "history": (
                self.history  # left packed: the store that packed it writes it
                if isinstance(self.history, PackedHistory)
                else [dict(h) for h in self.history]
            ),
            "conditions": [dict(c) for c in self.conditions],
        }
        optional = {
            "lastDecision": dict(self.last_decision) if self.last_decision else None,
            "observedGeneration": self.observed_generation,
            "pending": dict(self.pending) if self.pending else None,
            "lastReset": self.last_reset,
            "lastApproval": self.last_approval,
            "message": self.message,
            "rolloutStartedAt": (
                format_time(self.rollout_started_at) if self.rollout_started_at else None
            ),
            "lastFallback": self.last_fallback,
            "humanFallback": dict(self.stopped) if self.stopped else None,
            "workflow": self.workflow,
            "audit": dict(self.audit) if self.audit else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> GateStatus | None:
        """Read a persisted status; ``None`` when there is none or it is unusable."""
        try:
            started = parse_time(str(body["stepStartedAt"]), now=datetime.now().astimezone())
            rollout = body.get("rolloutStartedAt")
            return cls(
                step=int(body["step"]),
                share=float(body["share"]),
                step_started_at=started,
                revision=str(body["revision"]),
                phase=str(body.get("phase", "Progressing")),
                inconclusive_count=int(body.get("inconclusiveCount", 0)),
                fallen_back=bool(body.get("fallenBack", False)),
                last_decision=body.get("lastDecision"),
                history=_history(body.get("history")),
                observed_generation=body.get("observedGeneration"),
                pending=body.get("pending"),
                last_reset=body.get("lastReset"),
                last_approval=body.get("lastApproval"),
                message=body.get("message"),
                conditions=tuple(body.get("conditions") or ()),
                rollout_started_at=parse_time(str(rollout), now=started) if rollout else started,
                last_fallback=body.get("lastFallback"),
                stopped=body.get("humanFallback"),
                workflow=body.get("workflow"),
                audit=body.get("audit"),
            )
        except (KeyError, TypeError, ValueError):
            return None


def initial_status(
    gate: Gate, *, now: datetime, history: Sequence[Mapping[str, Any]] = ()
) -> GateStatus:
    """Step 1 of a new revision, starting now."""
    return GateStatus(
        step=1,
        share=gate.spec.shares[0],
        step_started_at=now,
        revision=gate.revision or "",
        observed_generation=gate.generation,
        history=history,
        rollout_started_at=now,
        workflow=gate.workflow,
    )


def _event(now: datetime, action: str, **fields: Any) -> dict[str, Any]:
    return {"time": format_time(now), "action": action, **fields}


HISTORY_BYTES = 32_000
"""History is trimmed (oldest first) to this many bytes of JSON as well as HISTORY_LIMIT entries,
so a status stays far below etcd's object limit whatever the policy or the fleet."""


def _size(item: Any) -> int:
    return len(json.dumps(item, separators=(",", ":"), default=str))


def _history(value: Any) -> Sequence[Mapping[str, Any]]:
    """A persisted history: kept packed if it is (not decoded until read), else a tuple."""
    if isinstance(value, PackedHistory):
        return value
    return tuple(value or ())


def _push(
    history: Sequence[Mapping[str, Any]], entry: Mapping[str, Any]
) -> tuple[Mapping[str, Any], ...]:
    if _size(entry) > HISTORY_BYTES // 2:
        # One entry alone too large (a policy with very many checks): keep what happened.
        entry = {k: v for k, v in entry.items() if k != "evidence"} | {"evidenceOmitted": True}
    kept = list((*history, entry)[-HISTORY_LIMIT:])
    sizes = [_size(h) for h in kept]
    while len(kept) > 1 and sum(sizes) + len(kept) + 1 > HISTORY_BYTES:
        kept.pop(0)
        sizes.pop(0)
    return tuple(kept)


def prepare(
    status: GateStatus | None, gate: Gate, requests: GateRequests, *, now: datetime
) -> GateStatus:
    """The status to decide from: created, restarted on a new revision, or reset by a human."""
    if status is None:
        return initial_status(
            gate, now=now, history=(_event(now, "start", revision=gate.revision),)
        )
    last_fallback, audit = status.last_fallback, status.audit  # a restart keeps these
    if _new_revision(status, gate) and status.pending is None:
        entry = _event(now, "new-revision", revision=gate.revision, previous=status.revision)
        fresh = initial_status(gate, now=now, history=_push(status.history, entry))
        return replace(fresh, last_fallback=last_fallback, audit=audit)
    if (
        requests.reset_token
        and requests.reset_token != status.last_reset
        and status.pending is None
    ):
        entry = _event(now, "reset", by=requests.reset_by or "unknown", token=requests.reset_token)
        fresh = initial_status(gate, now=now, history=_push(status.history, entry))
        return replace(
            fresh,
            last_reset=requests.reset_token,
            last_approval=status.last_approval,
            last_fallback=last_fallback,
            audit=audit,
        )
    if status.observed_generation != gate.generation:
        status = replace(status, observed_generation=gate.generation)
    if status.workflow != gate.workflow:
        status = replace(status, workflow=gate.workflow)
    if fallback_due(status, requests):
        status = _fall_back(status, requests, now=now)
    status = _realign(status, gate, now=now)
    token = (
        f"{requests.approved_step}:{requests.approved_by}:{requests.approved_at}"
        if requests.approved_step is not None
        else None
    )
    if token and token != status.last_approval and _fresh(status, requests):
        entry = _event(
            now,
            "approved",
            step=requests.approved_step,
            by=requests.approved_by or "unknown",
            at=requests.approved_at,
        )
        status = replace(status, last_approval=token, history=_push(status.history, entry))
    return status


def fallback_due(status: GateStatus, requests: GateRequests) -> bool:
    """A human fallback (``gatectl fallback``) not acted on yet, and not undone by a later reset.

    Each token acts once. A reset given after it (its token is a later time) has
    already cleared it, so an old fallback annotation never comes back.
    """
    token = requests.fallback_token
    if not isinstance(token, str) or not token or token == status.last_fallback:
        return False
    if any(
        h.get("action") == "fallback-requested" and h.get("token") == token for h in status.history
    ):
        return False  # acted on already (``lastFallback`` lost: a CRD that predates it prunes it)
    if status.pending is not None:
        return False  # finish the traffic change in flight first (the next pass falls back)
    return not (status.last_reset and _later(status.last_reset, token))


def _later(first: str, second: str) -> bool:
    """``first`` is a later time than ``second`` (tokens are times; unreadable ones are not)."""
    try:
        reference = datetime.now().astimezone()
        return parse_time(first, now=reference) > parse_time(second, now=reference)
    except ValueError:
        return False


def _fall_back(status: GateStatus, requests: GateRequests, *, now: datetime) -> GateStatus:
    """The deterministic path now, whatever the metrics say: sticky until a reset or revision."""
    by = str(requests.fallback_by or "unknown")
    reason = str(requests.fallback_reason or "")
    token = str(requests.fallback_token)
    entry = _event(now, "fallback-requested", by=by, reason=reason, token=token, share=status.share)
    return replace(
        status,
        step=0,
        share=0.0,
        fallen_back=True,
        phase="FallenBack",
        step_started_at=now,
        inconclusive_count=0,
        last_fallback=token,
        stopped={"by": by, "reason": reason, "at": token},
        history=_push(status.history, entry),
        message=_stop_message({"by": by, "reason": reason}),
    )


def _stop_message(stopped: Mapping[str, Any]) -> str:
    reason = str(stopped.get("reason") or "").strip()
    return f"fallen back by {stopped.get('by', 'unknown')}" + (f": {reason}" if reason else "")


def _new_revision(status: GateStatus, gate: Gate) -> bool:
    """A new ``spec.revision`` was declared. Other edits never restart a rollout.

    A gate that declares no revision keeps the one its status has (statuses written
    before ``revision`` existed carry a hash of the spec: no restart on upgrade).
    """
    return gate.revision is not None and gate.revision != status.revision


def _realign(status: GateStatus, gate: Gate, *, now: datetime) -> GateStatus:
    """After the steps were edited mid-rollout, the step that matches the current share.

    Traffic never moves because of an edit: the share stays, ``step`` becomes the
    last step at or below it, and the next promotion goes to the first step above
    it (``decide`` reads the share from the status). A fallen-back gate stays at 0.
    """
    shares = gate.spec.shares
    if status.step < 1 or status.fallen_back:
        return status
    if status.step <= len(shares) and shares[status.step - 1] == status.share:
        return status
    at_or_below = [index for index, share in enumerate(shares, 1) if share <= status.share]
    step = at_or_below[-1] if at_or_below else 1
    if step == status.step:
        return status
    entry = _event(now, "steps-edited", share=status.share, step=step, previous=status.step)
    return replace(status, step=step, history=_push(status.history, entry))


def approved(status: GateStatus, requests: GateRequests) -> bool:
    """An approval of the next step, given during this rollout (not a stale one).

    ``gatectl approve`` records when (``approved-at``); an approval from before
    the current revision or reset started does not count.
    """
    if requests.approved_step is None or requests.approved_step != status.step + 1:
        return False
    return _fresh(status, requests)


def _fresh(status: GateStatus, requests: GateRequests) -> bool:
    """The approval was given after this rollout (revision or reset) began."""
    if not requests.approved_at:
        return False
    try:
        at = parse_time(requests.approved_at, now=status.step_started_at)
    except ValueError:
        return False
    return at >= (status.rollout_started_at or status.step_started_at)


def gate_state(status: GateStatus, requests: GateRequests) -> GateState:
    """What the pure decision needs from the status."""
    return GateState(
        step_started_at=status.step_started_at,
        step=status.step - 1,
        inconclusive_count=status.inconclusive_count,
        approved=approved(status, requests),
        fallen_back=status.fallen_back,
        share=None if status.step < 1 or status.fallen_back else status.share,
    )


def phase_of(decision: Decision) -> str:
    """The phase a decision puts the gate in."""
    if decision.action is Action.FALLBACK:
        return "FallenBack"
    if decision.complete or (decision.action is Action.PROMOTE and decision.next_share >= 1.0):
        return "Promoted"
    if decision.action is Action.PROMOTE:
        return "Progressing"
    if decision.awaiting_approval:
        return "AwaitingApproval"
    # Waiting out the window, or a step's first seconds (warming up), is progress, not a problem.
    only_window = all(r.startswith(("promotion window:", "warming up:")) for r in decision.reasons)
    return "Progressing" if only_window else "Holding"


@dataclass(frozen=True)
class Transition:
    """The outcome of applying a decision to a status."""

    status: GateStatus
    """The final status (with ``pending`` set when traffic must move first)."""
    changed: bool
    """The decision or its evidence differs from the last one: a history entry."""
    announce: bool
    """The action, phase, share or completion changed: record an Event, call the webhook."""
    new_share: float | None
    """The share the actuator must apply before the step is committed, if it moves."""


def _decision_key(decision: Decision, phase: str) -> tuple[Any, ...]:
    checks = tuple(
        (c.metric, c.condition, c.result) for c in (*decision.criteria, *decision.triggers)
    )
    return (decision.action.value, phase, decision.current_share, decision.next_share, checks)


_TOO_FEW = re.compile(r"^too few samples: .*, need (\S+)$")


def _message(decision: Decision) -> str | None:
    """The first reason, phrased so that it does not change every tick (no countdown)."""
    if not decision.reasons:
        return None
    first = decision.reasons[0]
    if first.startswith("promotion window:"):
        window = decision.window
        ends = window.started_at + timedelta(seconds=window.required_seconds)
        return f"healthy so far; the promotion window ends at {format_time(ends)}"
    few = _TOO_FEW.match(first)
    if few is not None:  # the count grows every pass; the need does not
        return f"too few samples: fewer than {few.group(1)} canary requests in the window"
    undecided = [c for c in decision.criteria if c.result == "undecided"]
    if undecided and (first.startswith("needs ") or " not yet shown at " in first):
        # Its counts move every pass: the status would be rewritten every pass for them.
        check = undecided[0]
        return f"gathering evidence: {check.metric} {check.condition} not yet shown"
    if first.startswith("warming up:"):  # its window grows each tick: say when the step began
        started = format_time(decision.window.started_at)
        return f"warming up: the step started at {started}; no data is read for its first scrapes"
    return first


CONDITION_TYPES = ("Promoted", "FallenBack", "AwaitingApproval", "Inconclusive")
"""Condition types in ``status.conditions`` (for ``kubectl wait --for=condition=...``)."""


def _conditions(
    previous: tuple[Mapping[str, Any], ...], *, phase: str, decision: Decision, now: datetime
) -> tuple[Mapping[str, Any], ...]:
    """Standard conditions; one changes (and its lastTransitionTime) only when it flips."""
    wanted = {
        "Promoted": phase == "Promoted",
        "FallenBack": phase == "FallenBack",
        "AwaitingApproval": phase == "AwaitingApproval",
        "Inconclusive": decision.inconclusive,
    }
    old = {c.get("type"): c for c in previous}
    result: list[Mapping[str, Any]] = []
    for kind, value in wanted.items():
        flag = "True" if value else "False"
        before = old.get(kind)
        if before is not None and before.get("status") == flag:
            result.append(before)
            continue
        result.append(
            {
                "type": kind,
                "status": flag,
                "reason": phase,
                "message": (_message(decision) or "")[:1000],
                "lastTransitionTime": format_time(now.replace(microsecond=0)),
            }
        )
    return tuple(result)


def apply_decision(
    status: GateStatus, decision: Decision, gate: Gate, *, now: datetime
) -> Transition:
    """Fold one decision into the status; a share change becomes ``pending``."""
    phase = phase_of(decision)
    evidence = decision_to_dict(decision, gate=gate.name, workflow=gate.workflow)
    summary = {
        "action": decision.action.value,
        "phase": phase,
        "time": format_time(now),
        "share": decision.current_share,
        "nextShare": decision.next_share,
        "complete": decision.complete,
        "reasons": list(decision.reasons),
        "key": repr(_decision_key(decision, phase)),
    }
    previous = status.last_decision or {}
    # A step's first seconds (warming up) are neither a new decision in history nor an Event.
    changed = previous.get("key") != summary["key"] and not decision.warming_up
    announce = not decision.warming_up and any(
        previous.get(field) != summary[field]
        for field in ("action", "phase", "nextShare", "complete")
    )
    history = status.history
    if changed:
        entry = {
            **summary,
            "evidence": {k: evidence[k] for k in ("samples", "criteria", "triggers")},
        }
        entry.pop("key")
        history = _push(history, entry)
    last = summary if changed else status.last_decision
    updated = replace(
        status,
        phase=phase,
        inconclusive_count=decision.inconclusive_count,
        last_decision=last,
        history=history,
        message=_stop_message(status.stopped) if status.stopped else _message(decision),
        conditions=_conditions(status.conditions, phase=phase, decision=decision, now=now),
    )
    moves = decision.next_share != status.share or (
        decision.action is Action.FALLBACK and not status.fallen_back
    )
    if not moves:
        return Transition(updated, changed, announce, None)
    pending = {
        "step": decision.next_step + 1,
        "share": decision.next_share,
        "decidedAt": format_time(now),
        "fallenBack": decision.action is Action.FALLBACK,
        "action": decision.action.value,
    }
    return Transition(replace(updated, pending=pending), True, True, decision.next_share)


def commit_pending(status: GateStatus, *, now: datetime) -> GateStatus:
    """Make a pending step current once the actuator applied its share at ``now``.

    The new step's window starts when traffic moved (``now``), not when the step
    was decided: a step completed after a crash or a slow pass never counts time
    spent at the old share.
    """
    if not status.pending:
        return status
    pending = status.pending
    fallen = bool(pending.get("fallenBack", False))
    return replace(
        status,
        step=int(pending["step"]),
        share=float(pending["share"]),
        step_started_at=now,
        fallen_back=status.fallen_back or fallen,
        inconclusive_count=0,
        pending=None,
    )
