"""``gatectl replay``: backtest a policy on history, printed as a timeline, JSON or a plot.

The stepping itself is ``gatectl.engine.replay`` (the controller's own
transitions, instant by instant); this module renders it for people (the
timeline and summary table, JSON with every evaluation's evidence) and holds
the command's arguments. Heavy modules are imported inside functions: this
module is imported whenever the command line is built.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gatectl.cli.exitcodes import EXIT_CODES

if TYPE_CHECKING:
    from gatectl.core.observations import Decision
    from gatectl.engine.replay import Replay

__all__ = ["add_parser", "render_replays", "replay_to_dict", "run"]


def _percent(share: float) -> str:
    return f"{share * 100:g}%"


def _first_reason(decision: Decision) -> str:
    return decision.reasons[0] if decision.reasons else ""


def _render_one(replay: Replay) -> str:
    from gatectl.core.timeparse import format_time
    from gatectl.engine.replay import decision_word, summarize, timeline
    from gatectl.policy.durations import format_duration

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
                decision_word(d),
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
    from gatectl.core.render import decision_to_dict
    from gatectl.core.timeparse import format_time
    from gatectl.engine.replay import summarize, timeline

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
    from gatectl.core.timeparse import parse_time
    from gatectl.errors import UsageError

    try:
        return parse_time(text, now=now)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


@dataclass(frozen=True)
class _Range:
    at: list[datetime]
    started_at: datetime


def _range(args: argparse.Namespace, *, now: datetime) -> _Range:
    from gatectl.engine.replay import MAX_EVALUATIONS, instants
    from gatectl.errors import UsageError
    from gatectl.policy.durations import parse_duration

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

    from gatectl.core.render import render_json
    from gatectl.engine.replay import replay_from_prometheus
    from gatectl.policy import load_gates

    # Whole seconds: relative times (-6h) then print as 2026-11-20T06:00:00Z.
    span = _range(args, now=datetime.now(UTC).replace(microsecond=0))
    if args.plot:
        from gatectl.cli import plot

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
        from gatectl.cli import plot

        for path in plot.write_plots(replays, args.plot):
            print(f"plot written to {path}", file=sys.stderr)
    worst = max((r.final.decision.action for r in replays), key=lambda a: a.severity)
    return EXIT_CODES[worst.value]
