"""The ``gatectl`` command line: argument parsing, dispatch, output and exit codes.

``main(argv) -> int``; each subcommand is a small function returning an exit
code. Bad input (a ``GatectlError``) is one line on stderr and exit 2 (or the
decision's code); anything else is a bug: exit 1, with the traceback only
under ``--debug``. Heavy modules are imported inside the commands that use
them, so ``gatectl evaluate`` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gatectl import __version__
from gatectl.cli.exitcodes import EXIT_BUG, EXIT_CODES, EXIT_USAGE

if TYPE_CHECKING:
    from datetime import datetime

    from gatectl.core.observations import Decision
    from gatectl.errors import PolicyError
    from gatectl.policy import Gate

__all__ = ["build_parser", "main"]

_EVALUATE_EPILOG = """\
exit codes (several gates: the worst wins, fallback > hold > promote):
  0   promote (or complete)     10  hold     20  fallback
  2   invalid input: policy, flags, unreadable file
  1   internal error (a bug)

TIME is RFC 3339 (2026-11-20T12:00:00Z) or relative to --at (-6h, -90m).
The Prometheus URL comes from --prometheus-url, else $GATECTL_PROMETHEUS_URL,
else the policy's prometheus.url.

examples:
  gatectl evaluate policies/ticket-triage.yaml --started-at -50h \\
      --prometheus-url http://127.0.0.1:9090
  gatectl evaluate policies/ --started-at 2026-11-20T12:00:00Z --step 2 --output json
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as exit 2 without a traceback (its default)."""


_WHOLE = re.compile(r"-?[0-9]{1,9}")
_SHARE = re.compile(r"(?:0|1)?(?:\.[0-9]{1,9})?")


def _whole(text: str) -> int:
    """A flag's whole number: ASCII digits, at most 9 (``int()`` also takes ``1_0``, ``٣``)."""
    if not _WHOLE.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}")
    return int(text)


def _share(text: str) -> float:
    """A flag's share of traffic, ``0 <= x <= 1`` (``float()`` also takes ``nan``, ``1e9``)."""
    raw = text.strip()
    if not raw or raw == "." or not _SHARE.fullmatch(raw) or float(raw) > 1:
        raise argparse.ArgumentTypeError(
            f"expected a share between 0 and 1 (e.g. 0.25), got {text[:40]!r}"
        )
    return float(raw)


def _add_evaluate(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "evaluate",
        help="decide promote / hold / fallback for each gate, once",
        description="Evaluate each gate once against Prometheus and print the decision with"
        " its evidence. The exit code is the decision, so a pipeline can branch on it.",
        epilog=_EVALUATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy file(s) or directories")
    p.add_argument(
        "--started-at",
        required=True,
        metavar="TIME",
        help="when the current step began (the window counts from here); required",
    )
    p.add_argument("--prometheus-url", metavar="URL", help="Prometheus base URL")
    p.add_argument(
        "--at",
        metavar="TIME",
        default="now",
        help="evaluate as of this instant (queries carry time=); default now",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--step", type=_whole, metavar="N", help="the canary is at step N (1 = first); default 1"
    )
    where.add_argument(
        "--current-share", type=_share, metavar="X", help="the canary's current share, e.g. 0.25"
    )
    p.add_argument(
        "--inconclusive-count",
        type=_whole,
        default=0,
        metavar="N",
        help="inconclusive evaluations in a row before this one (for on_no_data: fallback)",
    )
    p.add_argument("--approved", action="store_true", help="a human approved the next step")
    p.add_argument(
        "--output", "-o", choices=("table", "json", "yaml"), default="table", help="default table"
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="evaluate again every evaluation_interval until no gate holds (promote/fallback)",
    )
    p.add_argument("--timeout", metavar="D", help="with --wait: a hold after D (e.g. 2h) exits 10")
    p.add_argument(
        "--deadline",
        metavar="D",
        default="60s",
        help="every query of one evaluation ends within D (default 60s); a gate whose queries"
        " did not answer by then holds, saying so",
    )
    p.set_defaults(func=_cmd_evaluate)


def _add_validate(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "validate",
        help="check policies without querying anything",
        description="Load and check every policy; print one line per problem"
        " (file:line: field: message). Exit 0 when all are valid, 2 otherwise.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy file(s) or directories")
    p.set_defaults(func=_cmd_validate)


def _add_demo(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "demo",
        help="start a local Prometheus with example data and evaluate the example policies",
        description="Backfill example metrics into a real Prometheus on 127.0.0.1 (needs the"
        " prometheus and promtool binaries), then evaluate the example policies against it:"
        " one gate promotes, one holds, one falls back.",
    )
    p.add_argument("--policies", default=None, metavar="DIR", help="default: the bundled examples")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="default: a temporary directory")
    p.add_argument("--output", "-o", choices=("table", "json", "yaml"), default="table")
    p.add_argument("--keep-running", action="store_true", help="leave Prometheus up afterwards")
    p.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = _Parser(
        prog="gatectl",
        description="gatectl: a canary release gate for AI-enabled workflows. It reads a"
        " release-gate policy, pulls the AI path's metrics from Prometheus and decides"
        " promote, hold or fall back to the deterministic path, with the evidence.",
    )
    parser.add_argument("--version", action="version", version=f"gatectl {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="log retries and other warnings to stderr"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_validate(sub)
    _add_evaluate(sub)
    _add_demo(sub)
    from gatectl.cli import commands

    commands.register(sub)
    return parser


def _parse_time(text: str, *, now: datetime, flag: str) -> datetime:
    from gatectl.core.timeparse import parse_time
    from gatectl.errors import UsageError

    try:
        return parse_time(text, now=now)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _cmd_validate(args: argparse.Namespace) -> int:
    from gatectl.policy import load_policies

    result = load_policies(args.paths)
    _print_problems(result.problems, prefix="")
    if result.problems:
        print(f"{len(result.problems)} problem(s)", file=sys.stderr)
        return EXIT_USAGE
    print(f"ok: {len(result.gates)} gate(s) valid")
    return 0


def _print_problems(problems: Sequence[PolicyError], *, prefix: str) -> None:
    """One line per problem, ``file:line: field.path: message``, as ``validate`` prints them."""
    for problem in problems:
        print(f"{prefix}{problem.render()}", file=sys.stderr)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from gatectl.core.observations import GateState
    from gatectl.engine.evaluate import evaluate_gates
    from gatectl.errors import UsageError
    from gatectl.policy import load_policies

    now = datetime.now(UTC)
    at = _parse_time(args.at, now=now, flag="--at")
    from gatectl.cli import pipeline

    if args.wait and args.at != "now":
        raise UsageError("--wait evaluates as of now, again and again: drop --at")
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout is for --wait")
    timeout = pipeline.parse_timeout(args.timeout)
    deadline = _duration(args.deadline, flag="--deadline")
    started = _parse_time(args.started_at, now=at, flag="--started-at")
    if started > at:
        raise UsageError(
            f"--started-at {args.started_at} is after the evaluation instant (--at {args.at})"
        )
    if args.inconclusive_count < 0:
        raise UsageError("--inconclusive-count must be >= 0")
    loaded = load_policies(args.paths)
    if loaded.problems:
        # Every problem, as validate lists them: fixing one at a time is slow.
        _print_problems(loaded.problems, prefix="gatectl: ")
        pipeline.annotate(loaded.problems)
        return EXIT_USAGE
    gates = loaded.gates
    states = []
    for gate in gates:
        step = _step_of(gate.spec.shares, step=args.step, share=args.current_share, gate=gate.name)
        states.append(
            (
                gate,
                GateState(
                    step_started_at=started,
                    step=step,
                    inconclusive_count=args.inconclusive_count,
                    approved=args.approved,
                ),
            )
        )
    url = args.prometheus_url or os.environ.get("GATECTL_PROMETHEUS_URL") or None
    if args.wait:
        evaluations = pipeline.evaluate_until_verdict(
            states,
            evaluate=lambda s, now: evaluate_gates(s, at=now, url=url, timeout=deadline),
            timeout=timeout,
        )
    else:
        evaluations = evaluate_gates(states, at=at, url=url, timeout=deadline)
    _print_decisions([(e.gate, e.decision) for e in evaluations], output=args.output)
    pipeline.report([(e.gate, e.decision) for e in evaluations])
    worst = max((e.decision.action for e in evaluations), key=lambda a: a.severity)
    return EXIT_CODES[worst.value]


def _duration(text: str, *, flag: str) -> float:
    """A positive duration flag in seconds (``90s``, ``5m``); exit 2 naming the flag."""
    from gatectl.errors import UsageError
    from gatectl.policy.durations import parse_duration

    try:
        seconds = parse_duration(text, bare_unit="s")
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    if seconds <= 0:
        raise UsageError(f"{flag} must be longer than 0, got {text[:40]!r}")
    return seconds


def _step_of(shares: Sequence[float], *, step: int | None, share: float | None, gate: str) -> int:
    from gatectl.errors import UsageError

    if step is not None:
        if not 1 <= step <= len(shares):
            raise UsageError(
                f"--step {step}: gate {gate} has {len(shares)} steps"
                f" ({', '.join(f'{s:g}' for s in shares)})"
            )
        return step - 1
    if share is not None:
        for index, candidate in enumerate(shares):
            if abs(candidate - share) < 1e-9:
                return index
        raise UsageError(
            f"--current-share {share:g} is not a step of gate {gate}"
            f" (steps: {', '.join(f'{s:g}' for s in shares)})"
        )
    return 0


def _print_decisions(items: Sequence[tuple[Gate, Decision]], *, output: str) -> None:
    from gatectl.core.render import decision_to_dict, render_json, render_table, render_yaml

    if output == "table":
        print(render_table([(g.name, g.workflow, d) for g, d in items]))
        return
    dicts = [decision_to_dict(d, gate=g.name, workflow=g.workflow) for g, d in items]
    print(render_json(dicts) if output == "json" else render_yaml(dicts), end="\n")


def _cmd_demo(args: argparse.Namespace) -> int:
    from gatectl.demo import run_demo

    return run_demo(
        policies=args.policies,
        data_dir=args.data_dir,
        output=args.output,
        keep_running=args.keep_running,
        printer=_print_decisions,
    )


_TIME_FLAGS = ("--started-at", "--at", "--from", "--to")
_RELATIVE = re.compile(r"^-\d+(?:\.\d+)?(?:ms|s|m|h|d|w)(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))*$")


def _join_relative_times(argv: Sequence[str]) -> list[str]:
    """``--at -6h`` -> ``--at=-6h``: argparse would take ``-6h`` for an option."""
    joined: list[str] = []
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        if item in _TIME_FLAGS and index + 1 < len(items) and _RELATIVE.match(items[index + 1]):
            joined.append(f"{item}={items[index + 1]}")
            index += 2
            continue
        joined.append(item)
        index += 1
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    """Run gatectl; returns the exit code."""
    from gatectl.errors import GatectlError, PolicyError

    parser = build_parser()
    args = parser.parse_args(_join_relative_times(sys.argv[1:] if argv is None else argv))
    quiet = args.command in ("validate", "evaluate", "demo", "replay") and not args.verbose
    level = logging.DEBUG if args.debug else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.func(args)
    except PolicyError as exc:
        print(f"gatectl: {exc.render()}", file=sys.stderr)
        return EXIT_USAGE
    except GatectlError as exc:
        print(f"gatectl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (``| head``): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports it
    except KeyboardInterrupt:
        print("gatectl: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"gatectl: internal error (a bug, please report it): {type(exc).__name__}: {exc}\n"
            "         run again with --debug for the traceback",
            file=sys.stderr,
        )
        return EXIT_BUG
    return code


if __name__ == "__main__":
    raise SystemExit(main())
