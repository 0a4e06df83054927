"""``gatectl evaluate`` in pipelines: ``--wait``, and what GitHub Actions shows.

- ``--wait [--timeout D]`` re-evaluates every ``evaluation_interval`` (the
  shortest of the gates') until no gate holds: a CI job, or Argo Rollouts'
  ``job`` metric provider, then exits with the verdict (0 promote, 20
  fallback). A hold still standing at the timeout exits 10. Inconclusive
  evaluations are counted from one round to the next, so ``on_no_data:
  fallback`` works as in the controller.
- Under GitHub Actions (``GITHUB_ACTIONS=true``) the verdict is appended as
  Markdown to ``$GITHUB_STEP_SUMMARY``, and each invalid-policy problem is
  printed as an ``::error file=…,line=…::`` annotation, so it shows on the line
  of the pull request that broke the policy.

The formatting is pure (``summary_markdown``, ``annotation``); the loop takes
its clock and sleep as arguments.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gatectl.errors import UsageError

if TYPE_CHECKING:
    from gatectl.core.observations import Decision, GateState
    from gatectl.engine.evaluate import Evaluation
    from gatectl.errors import PolicyError
    from gatectl.policy import Gate

__all__ = [
    "annotate",
    "annotation",
    "evaluate_until_verdict",
    "parse_timeout",
    "report",
    "summary_markdown",
]

_ICONS = {"promote": "✅", "hold": "⏸️", "fallback": "⛔"}


def parse_timeout(text: str | None) -> float | None:
    """``--timeout``: a duration (``90s``, ``30m``, ``2h``) in seconds, or None (no limit)."""
    if text is None:
        return None
    from gatectl.policy.durations import parse_duration

    try:
        seconds = parse_duration(text, bare_unit="s")
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from None
    if seconds <= 0:
        raise UsageError(f"--timeout must be longer than 0, got {text[:40]!r}")
    return seconds


def evaluate_until_verdict(
    states: Sequence[tuple[Gate, GateState]],
    *,
    evaluate: Callable[[Sequence[tuple[Gate, GateState]], datetime], list[Evaluation]],
    timeout: float | None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[Evaluation]:
    """Evaluate, and again every evaluation interval while any gate holds, up to ``timeout``."""
    deadline = None if timeout is None else monotonic() + timeout
    interval = min(gate.spec.evaluation_interval for gate, _ in states)
    current = list(states)
    while True:
        evaluations = evaluate(current, now())
        holding = [e for e in evaluations if e.decision.action.value == "hold"]
        if not holding:
            return evaluations
        left = None if deadline is None else deadline - monotonic()
        if left is not None and left <= 0:
            say(f"gatectl: still holding at the --timeout ({len(holding)} gate(s))")
            return evaluations
        pause = interval if left is None else min(interval, left)
        first = holding[0]
        reason = first.decision.reasons[0] if first.decision.reasons else "holding"
        say(f"gatectl: hold ({first.gate.name}: {reason}); evaluating again in {pause:g}s")
        sleep(pause)
        current = [
            (gate, _carry(state, e.decision))
            for (gate, state), e in zip(current, evaluations, strict=True)
        ]


def _carry(state: GateState, decision: Decision) -> GateState:
    """The next round's state: inconclusive evaluations in a row carry over."""
    return replace(
        state, inconclusive_count=decision.inconclusive_count if decision.inconclusive else 0
    )


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _share(value: float) -> str:
    return f"{value * 100:g} %"


def summary_markdown(items: Iterable[tuple[str, str, Decision]]) -> str:
    """The verdict as GitHub-flavoured Markdown: one table row per gate, then each gate's checks."""
    rows = list(items)
    worst = max((d.action for _, _, d in rows), key=lambda a: a.severity).value
    lines = [
        f"### gatectl: {_ICONS[worst]} {worst}",
        "",
        "| gate | workflow | decision | share | next share | why |",
        "|---|---|---|---|---|---|",
    ]
    for gate, workflow, decision in rows:
        action = decision.action.value
        why = decision.reasons[0] if decision.reasons else "all criteria met"
        lines.append(
            f"| {_cell(gate)} | {_cell(workflow)} | {_ICONS[action]} {action} |"
            f" {_share(decision.current_share)} | {_share(decision.next_share)} | {_cell(why)} |"
        )
    for gate, _, decision in rows:
        checks = [*decision.criteria, *decision.triggers]
        if not checks:
            continue
        lines += [
            "",
            f"<details><summary>{_cell(gate)}: {len(checks)} checks</summary>",
            "",
            "| check | condition | value | result |",
            "|---|---|---|---|",
        ]
        for check in checks:
            value = (
                "no data"
                if check.value is None
                else str(check.value).lower()
                if isinstance(check.value, bool)
                else f"{check.value:.6g}"
            )
            lines.append(
                f"| {_cell(check.metric)} | `{_cell(check.condition)}` | {value} | {check.result} |"
            )
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _escape(text: str, *, property_value: bool = False) -> str:
    """GitHub workflow-command escaping (``%``, CR, LF; also ``:`` and ``,`` in properties)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def annotation(problem: PolicyError) -> str:
    """``::error file=F,line=L,col=C,title=…::message`` for one policy problem."""
    properties = []
    if problem.file is not None:
        properties.append(f"file={_escape(problem.file, property_value=True)}")
        if problem.line is not None:
            properties.append(f"line={problem.line}")
            if problem.column is not None:
                properties.append(f"col={problem.column}")
    properties.append("title=invalid release-gate policy")
    field = f"{problem.path}: " if problem.path else ""
    return f"::error {','.join(properties)}::{_escape(field + problem.message)}"


def _in_github(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"


def annotate(problems: Sequence[PolicyError], *, environ: Mapping[str, str] = os.environ) -> None:
    """Under GitHub Actions, one ``::error`` line per problem on stdout (where the runner reads)."""
    if not _in_github(environ):
        return
    for problem in problems:
        print(annotation(problem), flush=True)


def report(
    items: Sequence[tuple[Gate, Decision]], *, environ: Mapping[str, str] = os.environ
) -> None:
    """Under GitHub Actions, append the Markdown verdict to ``$GITHUB_STEP_SUMMARY``."""
    path = environ.get("GITHUB_STEP_SUMMARY")
    if not _in_github(environ) or not path or not items:
        return
    text = summary_markdown((g.name, g.workflow, d) for g, d in items)
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        print(f"gatectl: warning: cannot append to $GITHUB_STEP_SUMMARY: {exc}", file=sys.stderr)
