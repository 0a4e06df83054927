"""``gatectl replay``: backtest a policy on history before it enforces anything.

A team about to put a gate in front of its AI path wants to know what the gate
*would have done* last week: when it would have promoted, how long it would
have held and why, whether a known incident would have fallen it back. Replay
answers that by stepping through a past range exactly as the controller does
at each tick — ``prepare`` the status, derive the decision's state, read the
metrics as of that instant over the window since the (simulated) step start,
``decide``, ``apply_decision``, and commit the new step at once (there is no
actuator) — so steps, windows, inconclusive streaks and sticky fallbacks carry
over from one instant to the next with the controller's own transitions.

The stepping (:func:`replay_gate`) takes its observations from a callable, so
it is tested with fake observations; :func:`replay_from_prometheus` is the
shell that reads a real Prometheus with ``time=`` each instant. Rendering and
the ``gatectl replay`` command live in ``gatectl.cli.replay``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gatectl.core.observations import Action, Decision, ObservationSet
    from gatectl.core.status import GateRequests, GateStatus
    from gatectl.engine.observe import GatePlan
    from gatectl.policy.models import Gate

__all__ = [
    "MAX_EVALUATIONS",
    "Observer",
    "Replay",
    "ReplayPoint",
    "ReplaySummary",
    "decision_word",
    "instants",
    "replay_from_prometheus",
    "replay_gate",
    "summarize",
    "timeline",
]

MAX_EVALUATIONS = 50_000
"""More instants than this is a mistake (``--every 1s`` over a month): refused up front."""
APPROVER = "gatectl replay --approve-all"


class Observer(Protocol):
    """Reads one gate's metrics as of ``at`` (a fake in tests, Prometheus in the shell)."""

    def __call__(self, plan: GatePlan, *, at: datetime) -> ObservationSet:
        """The observations ``plan`` asks for, as of ``at``."""
        ...


@dataclass(frozen=True)
class ReplayPoint:
    """One simulated evaluation: the decision and the status after it was committed."""

    at: datetime
    decision: Decision
    phase: str
    step: int
    """1-based step after the decision (0 once fallen back to the deterministic path)."""
    share: float
    """The share after the decision was applied."""


@dataclass(frozen=True)
class Replay:
    """A gate's whole replay: every evaluation, in time order, and the final status."""

    gate: Gate
    started_at: datetime
    every_seconds: float
    points: tuple[ReplayPoint, ...]
    status: GateStatus

    @property
    def final(self) -> ReplayPoint:
        """The last evaluation."""
        return self.points[-1]


@dataclass(frozen=True)
class ReplaySummary:
    """When the gate would have promoted, held and fallen back, and where it ended."""

    promotions: tuple[tuple[datetime, float, float], ...]
    """(when, share before, share after) of each promotion."""
    completed_at: datetime | None
    """The first instant the AI path had 100 % of traffic."""
    fallback_at: datetime | None
    """The instant the gate fell back (fallback is sticky)."""
    fallback_reason: str | None
    counts: dict[str, int]
    """Evaluations per decision: promote, complete (promote at 100 %), hold, fallback."""
    inconclusive: int
    """Evaluations decided by missing data."""
    final_decision: Action
    final_share: float
    final_phase: str


def instants(start: datetime, end: datetime, *, every_seconds: float) -> list[datetime]:
    """``start``, ``start + every``, ... up to and including ``end``."""
    if every_seconds <= 0:
        raise ValueError(f"the step between evaluations must be > 0, got {every_seconds:g}s")
    if end < start:
        raise ValueError("the range ends before it starts")
    count = int((end - start).total_seconds() // every_seconds) + 1
    step = timedelta(seconds=every_seconds)
    return [start + step * index for index in range(count)]


def _requests(status: GateStatus, *, approve_all: bool) -> GateRequests:
    from gatectl.core.status import GateRequests
    from gatectl.core.timeparse import format_time

    if not approve_all:
        return GateRequests()
    # Approved as the step began: the token changes only with the step, as one human click
    # would, and it is never older than the rollout it approves.
    return GateRequests(
        approved_step=status.step + 1,
        approved_by=APPROVER,
        approved_at=format_time(status.step_started_at),
    )


def replay_gate(
    gate: Gate,
    *,
    at: Sequence[datetime],
    started_at: datetime,
    observer: Observer,
    approve_all: bool = False,
    query_window: Callable[[float], float] | None = None,
) -> Replay:
    """Step ``gate`` through the instants ``at`` as the controller would; pure but for ``observer``.

    The first step starts at ``started_at`` (not after ``at[0]``). Each
    instant runs the controller's transitions (``prepare``, ``gate_state``,
    ``decide``, ``apply_decision``) and commits a share change immediately.
    With ``approve_all`` every promotion that needs a human approval gets one.
    ``query_window`` maps the window's seconds to the range the queries cover
    (the controller rounds it down so that gates share batch queries); by
    default the exact window, as ``gatectl evaluate`` queries it.
    """
    from gatectl.core.decide import decide, evaluation_window
    from gatectl.core.status import (
        apply_decision,
        commit_pending,
        gate_state,
        initial_status,
        prepare,
    )
    from gatectl.engine.observe import plan_gate

    if not at:
        raise ValueError("nothing to replay: no instants")
    if started_at > at[0]:
        raise ValueError("the step cannot start after the first evaluation")
    if any(b <= a for a, b in itertools.pairwise(at)):
        raise ValueError("evaluation instants must be strictly increasing")
    spec = gate.spec
    status = initial_status(gate, now=started_at)
    points: list[ReplayPoint] = []
    for moment in at:
        requests = _requests(status, approve_all=approve_all)
        status = prepare(status, gate, requests, now=moment)
        window = evaluation_window(spec, started_at=status.step_started_at, now=moment)
        seconds = window.query_seconds
        if query_window is not None:
            seconds = query_window(seconds)
        observations = observer(plan_gate(gate, window_seconds=seconds), at=moment)
        decision = decide(spec, observations, gate_state(status, requests), now=moment)
        transition = apply_decision(status, decision, gate, now=moment)
        status = commit_pending(transition.status, now=moment)
        points.append(
            ReplayPoint(
                at=moment,
                decision=decision,
                phase=status.phase,
                step=status.step,
                share=status.share,
            )
        )
    every = (at[1] - at[0]).total_seconds() if len(at) > 1 else 0.0
    return Replay(
        gate=gate, started_at=started_at, every_seconds=every, points=tuple(points), status=status
    )


def _key(point: ReplayPoint) -> tuple[Any, ...]:
    d = point.decision
    return (d.action, d.complete, point.phase, point.share, d.inconclusive)


def timeline(points: Sequence[ReplayPoint]) -> list[ReplayPoint]:
    """The first evaluation and each one whose decision, phase or resulting share differs.

    A sticky fallback repeats the fallback at the same share: it adds no line.
    """
    lines: list[ReplayPoint] = []
    previous: tuple[Any, ...] | None = None
    for point in points:
        key = _key(point)
        if key != previous:
            lines.append(point)
        previous = key
    return lines


def decision_word(decision: Decision) -> str:
    """``complete`` for a promote at 100 %, else the action's name."""
    if decision.complete:
        return "complete"
    return decision.action.value


def summarize(replay: Replay) -> ReplaySummary:
    """What a reader wants first: promotions, completion, the fallback, the final state."""
    from gatectl.core.observations import Action

    promotions = tuple(
        (p.at, p.decision.current_share, p.decision.next_share)
        for p in replay.points
        if p.decision.action is Action.PROMOTE and p.decision.next_share != p.decision.current_share
    )
    completed = next((p.at for p in replay.points if p.share >= 1.0), None)
    fell = next(
        (p for p in replay.points if p.decision.action is Action.FALLBACK),
        None,
    )
    counts = Counter(decision_word(p.decision) for p in replay.points)
    final = replay.final
    return ReplaySummary(
        promotions=promotions,
        completed_at=completed,
        fallback_at=fell.at if fell else None,
        fallback_reason=fell.decision.reasons[0] if fell and fell.decision.reasons else None,
        counts={word: counts.get(word, 0) for word in ("promote", "complete", "hold", "fallback")},
        inconclusive=sum(1 for p in replay.points if p.decision.inconclusive),
        final_decision=final.decision.action,
        final_share=final.share,
        final_phase=final.phase,
    )


def replay_from_prometheus(
    gate: Gate,
    *,
    at: Sequence[datetime],
    started_at: datetime,
    url: str | None,
    approve_all: bool = False,
    exact_windows: bool = False,
) -> Replay:
    """Replay ``gate`` reading a real Prometheus with ``time=`` each instant (one client, one loop).

    The URL is ``url``, else ``$GATECTL_PROMETHEUS_URL``, else the policy's.
    A failed query is no data for that instant, as in the controller. Query
    windows are rounded as the controller rounds them, unless ``exact_windows``.
    """
    import asyncio

    from gatectl.adapters.prometheus import PrometheusClient
    from gatectl.engine.observe import observe, quantize_window

    client = PrometheusClient.from_settings(gate.spec.prometheus, url=url)
    with asyncio.Runner() as runner:

        def observer(plan: GatePlan, *, at: datetime) -> ObservationSet:
            return runner.run(observe([plan], client, at=at))[plan.key]

        try:
            return replay_gate(
                gate,
                at=at,
                started_at=started_at,
                observer=observer,
                approve_all=approve_all,
                query_window=None if exact_windows else quantize_window,
            )
        finally:
            runner.run(client.aclose())
