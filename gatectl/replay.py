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
shell that reads a real Prometheus with ``time=`` each instant. Rendering
(timeline table, JSON) is pure. Heavy modules are imported inside functions:
this module is imported whenever the command line is built.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gatectl.controller.state import GateRequests, GateStatus
    from gatectl.observations import Action, Decision, ObservationSet
    from gatectl.observe import GatePlan
    from gatectl.policy.models import Gate

__all__ = [
    "MAX_EVALUATIONS",
    "Observer",
    "Replay",
    "ReplayPoint",
    "ReplaySummary",
    "add_parser",
    "instants",
    "render_replays",
    "replay_from_prometheus",
    "replay_gate",
    "replay_to_dict",
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
    from gatectl.controller.state import GateRequests
    from gatectl.timeparse import format_time

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
    from gatectl.controller.state import (
        apply_decision,
        commit_pending,
        gate_state,
        initial_status,
        prepare,
    )
    from gatectl.decide import decide, evaluation_window
    from gatectl.observe import plan_gate

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


def summarize(replay: Replay) -> ReplaySummary:
    """What a reader wants first: promotions, completion, the fallback, the final state."""
    from gatectl.observations import Action

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
    counts = Counter(_word(p.decision) for p in replay.points)
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


def _percent(share: float) -> str:
    return f"{share * 100:g}%"


def _word(decision: Decision) -> str:
    if decision.complete:
        return "complete"
    return decision.action.value


def _first_reason(decision: Decision) -> str:
    return decision.reasons[0] if decision.reasons else ""


def _render_one(replay: Replay) -> str:
    from gatectl.durations import format_duration
    from gatectl.timeparse import format_time

    gate = replay.gate
    points = replay.points
    every = format_duration(replay.every_seconds) if replay.every_seconds else "once"
    lines = [
        f"{gate.name}  (workflow {gate.workflow}): {format_time(points[0].at)} .."
        f" {format_time(points[-1].at)} every {every}, {len(points)} evaluation(s),"
        f" first step from {format_time(replay.started_at)}",
    ]
    rows = [("TIME", "DECISION", "SHARE", "PHASE", "REASON")]
    for point in timeline(points):
        d = point.decision
        rows.append(
            (
                format_time(point.at),
                _word(d),
                f"{_percent(d.current_share)} -> {_percent(point.share)}",
                point.phase,
                _first_reason(d),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:4], widths, strict=True)]
        lines.append("  " + "  ".join([*cells, row[4]]).rstrip())
    summary = summarize(replay)
    lines.append("  summary:")
    for when, before, after in summary.promotions:
        lines.append(f"    promoted   {format_time(when)}  {_percent(before)} -> {_percent(after)}")
    if summary.completed_at is not None:
        lines.append(f"    complete   {format_time(summary.completed_at)}  100% on the AI path")
    if summary.fallback_at is not None:
        lines.append(
            f"    fell back  {format_time(summary.fallback_at)}  {summary.fallback_reason}"
        )
    if not summary.promotions and summary.fallback_at is None:
        lines.append("    never promoted, never fell back")
    counts = summary.counts
    lines.append(
        f"    final      {summary.final_decision.value} at {_percent(summary.final_share)}"
        f" ({summary.final_phase}); evaluations: {counts['promote']} promote,"
        f" {counts['complete']} complete, {counts['hold']} hold"
        f" ({summary.inconclusive} inconclusive), {counts['fallback']} fallback"
    )
    if summary.final_decision.value == "hold":
        lines.append(f"    holding    {_first_reason(replay.final.decision)}")
    return "\n".join(lines)


def render_replays(replays: Sequence[Replay]) -> str:
    """The timeline and summary of each gate, for people."""
    return "\n\n".join(_render_one(r) for r in replays)


def replay_to_dict(replay: Replay) -> dict[str, Any]:
    """JSON-ready: range, summary, transitions and every evaluation's full evidence."""
    from gatectl.output import decision_to_dict
    from gatectl.timeparse import format_time

    gate = replay.gate
    summary = summarize(replay)
    evaluations = []
    for point in replay.points:
        body = decision_to_dict(point.decision, gate=gate.name, workflow=gate.workflow)
        body["phase"] = point.phase
        body["share_after"] = point.share
        evaluations.append(body)
    return {
        "gate": gate.name,
        "workflow": gate.workflow,
        "from": format_time(replay.points[0].at),
        "to": format_time(replay.points[-1].at),
        "every_seconds": replay.every_seconds,
        "started_at": format_time(replay.started_at),
        "summary": {
            "final_decision": summary.final_decision.value,
            "final_share": summary.final_share,
            "final_phase": summary.final_phase,
            "promotions": [
                {"at": format_time(when), "from_share": before, "to_share": after}
                for when, before, after in summary.promotions
            ],
            "completed_at": format_time(summary.completed_at) if summary.completed_at else None,
            "fallback_at": format_time(summary.fallback_at) if summary.fallback_at else None,
            "fallback_reason": summary.fallback_reason,
            "evaluations": summary.counts,
            "inconclusive": summary.inconclusive,
        },
        "transitions": [
            {
                "at": format_time(p.at),
                "decision": p.decision.action.value,
                "complete": p.decision.complete,
                "phase": p.phase,
                "share": p.decision.current_share,
                "next_share": p.share,
                "reason": _first_reason(p.decision),
            }
            for p in timeline(replay.points)
        ],
        "evaluations": evaluations,
    }


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

    from gatectl.observe import observe, quantize_window
    from gatectl.prometheus import PrometheusClient

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


_EPILOG = """\
Each instant from --from to --to (every --every) runs the controller's own
transitions: the window counts from the simulated step's start, a promotion
starts the next step at that instant, inconclusive evaluations accumulate,
and a fallback is sticky. Queries carry time=, so the result is what the
controller would have decided then, whatever was written later.

exit code: the final decision (several gates: the worst wins)
  0   promote (or complete)     10  hold     20  fallback
  2   invalid input: policy, flags, unreadable file
  1   internal error (a bug)

TIME is RFC 3339 (2026-11-20T12:00:00Z) or relative to now (-48h, -90m).

examples:
  gatectl replay policies/ticket-triage.yaml --from -7d --to -1h --every 10m \\
      --prometheus-url http://127.0.0.1:9090
  gatectl replay policies/ --from 2026-11-18T00:00:00Z --to 2026-11-21T00:00:00Z \\
      --output json > replay.json
  gatectl replay policies/ticket-triage.yaml --from -3d --to now --plot replay.png
"""


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``gatectl replay``."""
    p = sub.add_parser(
        "replay",
        help="backtest a policy over a past range: when it would have promoted or fallen back",
        description="Replay each gate over a past range as the controller would have run it,"
        " and print the timeline of its decisions (promote, hold, fallback) with the reason"
        " for each change, then a summary. Nothing is changed anywhere.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy file(s) or directories")
    p.add_argument(
        "--from", dest="start", required=True, metavar="TIME", help="first evaluation; required"
    )
    p.add_argument(
        "--to", dest="end", required=True, metavar="TIME", help="last evaluation; required"
    )
    p.add_argument(
        "--every",
        default="5m",
        metavar="DURATION",
        help="time between evaluations (90s, 5m, 1h); default 5m",
    )
    p.add_argument(
        "--started-at",
        metavar="TIME",
        help="when the first step began (the window counts from here); default --from",
    )
    p.add_argument("--prometheus-url", metavar="URL", help="Prometheus base URL")
    p.add_argument(
        "--approve-all",
        action="store_true",
        help="grant every approval the policy asks for (default: hold awaiting approval)",
    )
    p.add_argument(
        "--exact-windows",
        action="store_true",
        help="query the exact window, as gatectl evaluate does (default: rounded down as the"
        " controller does to batch queries: whole minutes past 1h, 10 s past 5m)",
    )
    p.add_argument(
        "--output",
        "-o",
        choices=("table", "json"),
        default="table",
        help="table (timeline and summary) or json (with every evaluation's evidence)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw share, metrics against thresholds and decisions to FILE.png or"
        " FILE.svg (needs pip install 'gatectl[plot]')",
    )
    p.set_defaults(func=run)


def _time(text: str, *, now: datetime, flag: str) -> datetime:
    from gatectl.errors import UsageError
    from gatectl.timeparse import parse_time

    try:
        return parse_time(text, now=now)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


@dataclass(frozen=True)
class _Range:
    at: list[datetime]
    started_at: datetime


def _range(args: argparse.Namespace, *, now: datetime) -> _Range:
    from gatectl.durations import parse_duration
    from gatectl.errors import UsageError

    start = _time(args.start, now=now, flag="--from")
    end = _time(args.end, now=now, flag="--to")
    started = _time(args.started_at, now=now, flag="--started-at") if args.started_at else start
    try:
        every = parse_duration(args.every)
    except ValueError as exc:
        raise UsageError(f"--every: {exc}") from None
    if every <= 0:
        raise UsageError("--every must be longer than 0")
    if end < start:
        raise UsageError(f"--to {args.end} is before --from {args.start}")
    if end > now:
        raise UsageError(f"--to {args.end} is in the future: replay reads history")
    if started > start:
        raise UsageError(
            f"--started-at {args.started_at} is after --from {args.start}:"
            " the step must have begun by the first evaluation"
        )
    count = int((end - start).total_seconds() // every) + 1
    if count > MAX_EVALUATIONS:
        raise UsageError(
            f"{count:,} evaluations between --from and --to every {args.every}:"
            f" at most {MAX_EVALUATIONS:,}; use a larger --every"
        )
    return _Range(at=instants(start, end, every_seconds=every), started_at=started)


def run(args: argparse.Namespace) -> int:
    """``gatectl replay``: load, replay each gate, print, plot; the exit code of the worst."""
    from datetime import UTC

    from gatectl.cli import EXIT_CODES
    from gatectl.output import render_json
    from gatectl.policy import load_gates

    # Whole seconds: relative times (-6h) then print as 2026-11-20T06:00:00Z.
    span = _range(args, now=datetime.now(UTC).replace(microsecond=0))
    if args.plot:
        from gatectl import plot

        plot.check_target(args.plot)
    gates = load_gates(args.paths)
    replays = [
        replay_from_prometheus(
            gate,
            at=span.at,
            started_at=span.started_at,
            url=args.prometheus_url,
            approve_all=args.approve_all,
            exact_windows=args.exact_windows,
        )
        for gate in gates
    ]
    if args.output == "json":
        print(render_json([replay_to_dict(r) for r in replays]))
    else:
        print(render_replays(replays))
    if args.plot:
        from gatectl import plot

        for path in plot.write_plots(replays, args.plot):
            print(f"plot written to {path}", file=sys.stderr)
    worst = max((r.final.decision.action for r in replays), key=lambda a: a.severity)
    return EXIT_CODES[worst.value]
