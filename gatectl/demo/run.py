"""``gatectl demo``: the whole product in one command, against a real Prometheus.

A new user should see a gate decide before writing a policy or wiring a
pipeline. The demo generates about 50 hours of example metrics (one sample a
minute, several pods per track, so the queries' ``sum`` matters), backfills
them into a real Prometheus with ``promtool``, starts it on 127.0.0.1 and
evaluates the example policies through the same code path as ``gatectl
evaluate``. The bundled scenarios are built so that one gate promotes, one
holds and one falls back; the decisions are printed with their evidence, with
a short story of what happened and the ``gatectl evaluate`` command line that
reproduces each one.

Generating the data is pure (``example_series``); ``run_demo`` is the shell.
Nothing here is imported on the ``gatectl evaluate`` path.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from gatectl.errors import UsageError

if TYPE_CHECKING:
    from gatectl.core.observations import Decision
    from gatectl.demo.localprom import SeriesSpec
    from gatectl.policy.models import Gate

__all__ = [
    "DEMO_HOURS",
    "SCENARIOS",
    "Printer",
    "Scenario",
    "bundled_policies",
    "example_series",
    "run_demo",
]

DEMO_HOURS = 50.0
"""How much history the demo generates, ending at "now"."""
STEP_SECONDS = 60
"""One sample a minute per series."""
_MARKER = ".gatectl-demo"
"""A file that marks a data directory as the demo's own, so a rerun may wipe it."""
_INSTALL_HINT = "sudo apt-get install -y --no-install-recommends prometheus"


@dataclass(frozen=True)
class Track:
    """One track's traffic: pods, requests a minute per pod, and rates as functions of age."""

    pods: int
    requests_per_minute: float
    exception_rate: Callable[[float], float]
    """Fraction of requests that raise, given the sample's age in minutes (0 = now)."""
    override_rate: Callable[[float], float]
    regressions_at_minutes: tuple[float, ...] = ()
    """Ages (minutes before now) of critical regressions."""


def _const(value: float) -> Callable[[float], float]:
    return lambda _age: value


@dataclass(frozen=True)
class Scenario:
    """One example workflow: its traffic, when its canary step started, and its story."""

    workflow: str
    expected: str
    """The decision the bundled policy should reach: promote, hold or fallback."""
    started_hours_ago: float
    story: str
    canary: Track
    baseline: Track
    sla_breached_minutes: tuple[tuple[float, float], ...] = ()
    """(from, to) ages in minutes during which the reviewer queue breached its SLA."""
    seed: int = 0
    extra_labels: dict[str, str] = field(default_factory=dict)


def _spike(*, before: float, after: float, since_minutes: float) -> Callable[[float], float]:
    return lambda age: after if age <= since_minutes else before


# Each baseline carries the rest of the traffic at the share the bundled policy sets,
# canary / (canary + baseline) = canary_traffic (the exposure check reads it): 24 of 240
# requests a minute (10 %), 12 of 240 (5 %), 60 of 600 (10 %).
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        workflow="ticket-triage",
        expected="promote",
        started_hours_ago=49.0,
        story="the AI path has been healthy at 10 % for 49h, longer than its 48h window",
        canary=Track(pods=3, requests_per_minute=8, exception_rate=_const(0.02),
                     override_rate=_const(0.08)),
        baseline=Track(pods=3, requests_per_minute=72, exception_rate=_const(0.035),
                       override_rate=_const(0.12)),
        seed=1,
    ),
    Scenario(
        workflow="document-intake",
        expected="hold",
        started_hours_ago=2.0,
        story="healthy, but only 2h into a 6h promotion window: it waits",
        canary=Track(pods=2, requests_per_minute=6, exception_rate=_const(0.01),
                     override_rate=_const(0.06)),
        baseline=Track(pods=2, requests_per_minute=114, exception_rate=_const(0.015),
                       override_rate=_const(0.07)),
        seed=2,
    ),
    Scenario(
        workflow="request-routing",
        expected="fallback",
        started_hours_ago=3.0,
        story="exceptions jumped from 1 % to 25 % 40 minutes ago: the rollback trigger fires"
        " and all traffic goes back to the deterministic path",
        canary=Track(pods=2, requests_per_minute=30,
                     exception_rate=_spike(before=0.01, after=0.25, since_minutes=40),
                     override_rate=_const(0.05)),
        baseline=Track(pods=2, requests_per_minute=270, exception_rate=_const(0.01),
                       override_rate=_const(0.06)),
        seed=3,
    ),
)  # fmt: skip
"""The bundled example: one gate promotes, one holds, one falls back."""

_COUNTERS = (
    "workflow_requests_total",
    "workflow_exceptions_total",
    "workflow_human_overrides_total",
    "workflow_critical_regressions_total",
)
_GAUGE = "workflow_reviewer_queue_sla_breached"


def _track_series(
    scenario: Scenario, track_name: str, track: Track, *, end: float, first_minute: int
) -> Iterator[SeriesSpec]:
    """Counters of every pod of one track, from ``first_minute`` minutes ago until ``end``."""
    from gatectl.demo.localprom import SeriesSpec

    rng = random.Random(f"{scenario.seed}/{track_name}")
    for pod in range(track.pods):
        labels = {
            "workflow": scenario.workflow,
            "track": track_name,
            "instance": f"{scenario.workflow}-{track_name}-{pod}:8080",
        }
        totals = dict.fromkeys(_COUNTERS, 0.0)
        carry = dict.fromkeys(_COUNTERS, rng.random())
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in _COUNTERS}
        regressions = sorted(track.regressions_at_minutes, reverse=True)
        for age in range(first_minute, -1, -1):
            stamp = end - age * STEP_SECONDS
            if age < first_minute:
                requests = max(0, round(track.requests_per_minute * rng.uniform(0.8, 1.2)))
                expected = {
                    "workflow_requests_total": float(requests),
                    "workflow_exceptions_total": requests * track.exception_rate(age),
                    "workflow_human_overrides_total": requests * track.override_rate(age),
                    "workflow_critical_regressions_total": 0.0,
                }
                # Whole events: the fractional part carries over to the next minute.
                for name, amount in expected.items():
                    carry[name] += amount
                    whole = int(carry[name])
                    carry[name] -= whole
                    totals[name] += whole
                if pod == 0 and regressions and regressions[0] >= age:
                    regressions.pop(0)
                    totals["workflow_critical_regressions_total"] += 1
            for name in _COUNTERS:
                samples[name].append((stamp, totals[name]))
        for name in _COUNTERS:
            yield SeriesSpec(name=name, kind="counter", labels=labels, samples=samples[name])


def example_series(
    scenarios: Sequence[Scenario] = SCENARIOS, *, end: datetime, hours: float = DEMO_HOURS
) -> list[SeriesSpec]:
    """The demo's history, one sample a minute ending at ``end``; pure and deterministic.

    Each workflow has ``pods`` series per counter and track (the built-in
    queries must sum them); the canary track starts at its step's start, the
    baseline runs all along; the reviewer-queue gauge is one series per workflow.
    """
    from gatectl.demo.localprom import SeriesSpec

    stamp_end = end.timestamp()
    total_minutes = int(hours * 60)
    series: list[SeriesSpec] = []
    for scenario in scenarios:
        canary_minutes = min(total_minutes, int(scenario.started_hours_ago * 60))
        series += _track_series(
            scenario, "canary", scenario.canary, end=stamp_end, first_minute=canary_minutes
        )
        series += _track_series(
            scenario, "baseline", scenario.baseline, end=stamp_end, first_minute=total_minutes
        )
        gauge = []
        for age in range(total_minutes, -1, -1):
            breached = any(lo >= age >= hi for lo, hi in scenario.sla_breached_minutes)
            gauge.append((stamp_end - age * STEP_SECONDS, 1.0 if breached else 0.0))
        series.append(
            SeriesSpec(
                name=_GAUGE,
                kind="gauge",
                labels={"workflow": scenario.workflow, "instance": "reviewer-queue:9100"},
                samples=gauge,
            )
        )
    return series


def bundled_policies() -> Path:
    """Example policies: ``gatectl/data/policies`` when packaged, else the repo's ``policies/``."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "data" / "policies", package.parent / "policies"):
        if candidate.is_dir():
            return candidate
    raise UsageError(
        "the example policies were not found (neither gatectl/data/policies nor policies/"
        " next to the package): pass --policies DIR"
    )


class Printer(Protocol):
    """Prints decisions in the chosen output format (the CLI's own printer)."""

    def __call__(
        self, items: Sequence[tuple[Gate, Decision]], /, *, output: str
    ) -> None: ...  # pragma: no cover


def _prepare_data_dir(data_dir: str | None) -> tuple[Path, bool]:
    """(directory, remove it afterwards); a rerun may reuse a directory the demo made."""
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="gatectl-demo-")), True
    path = Path(data_dir)
    if path.exists() and any(path.iterdir()):
        if not (path / _MARKER).exists():
            raise UsageError(
                f"--data-dir {data_dir} is not empty and was not made by gatectl demo:"
                " give an empty or new directory"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / _MARKER).write_text("made by gatectl demo; safe to delete\n", encoding="utf-8")
    return path, False


def _find_binaries() -> tuple[str, str]:
    from gatectl.demo.localprom import find_binaries

    found = find_binaries()
    if found is None:
        raise UsageError(
            "gatectl demo needs the prometheus and promtool binaries on PATH"
            f" (Debian/Ubuntu: {_INSTALL_HINT})"
        )
    return found


def _format_time(moment: datetime) -> str:
    from gatectl.core.timeparse import format_time

    return format_time(moment)


def _relative(path: str) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _started_at(gate: Gate, scenarios: dict[str, Scenario], *, end: datetime) -> datetime:
    scenario = scenarios.get(gate.workflow)
    hours = scenario.started_hours_ago if scenario is not None else DEMO_HOURS - 1
    return end - timedelta(hours=hours)


def _explain(
    evaluations: Sequence[tuple[Gate, Decision]],
    scenarios: dict[str, Scenario],
    *,
    url: str,
    at: datetime,
    policies: Path,
    starts: dict[str, datetime],
    keep_running: bool,
    out: TextIO,
) -> None:
    def say(text: str = "") -> None:
        print(text, file=out)

    say()
    say("What happened:")
    for gate, decision in evaluations:
        scenario = scenarios.get(gate.workflow)
        story = scenario.story if scenario is not None else "no example data for this workflow"
        verdict = decision.action.value.upper()
        moved = f"{decision.current_share * 100:g} % -> {decision.next_share * 100:g} %"
        say(f"  {gate.name}: {verdict} ({moved}): {story}.")
        if scenario is not None and scenario.expected != decision.action.value:
            say(f"    (expected {scenario.expected.upper()} with the bundled example data)")
    say()
    say(f"Prometheus on {url} held ~{DEMO_HOURS:g}h of example metrics (1-minute samples,")
    say("several pods per track). The same decisions, from the command line:")
    for gate, _ in evaluations:
        source = _relative(gate.source.rsplit(":", 1)[0] if gate.source else str(policies))
        say(
            f"  gatectl evaluate {source} --prometheus-url {url}"
            f" --started-at {_format_time(starts[gate.key])} --at {_format_time(at)}"
        )
    say("Exit codes: 0 promote, 10 hold, 20 fallback (several gates: the worst wins).")
    if keep_running:
        say(f"Prometheus keeps running; stop it with: curl -X POST {url}/-/quit")
    else:
        say("(run `gatectl demo --keep-running` to keep Prometheus up and try them)")


def run_demo(
    *,
    policies: str | None,
    data_dir: str | None,
    output: str,
    keep_running: bool,
    printer: Printer,
    scenarios: Sequence[Scenario] = SCENARIOS,
    out: TextIO | None = None,
) -> int:
    """Backfill example data, start Prometheus, evaluate the policies, print; returns 0.

    Raises ``UsageError`` when prometheus/promtool are missing or the
    directories are unusable. ``out`` receives the narrative (default stdout
    for the table, stderr for json/yaml so that stdout stays machine-readable).
    """
    from gatectl.core.observations import GateState
    from gatectl.demo.localprom import LocalPrometheus, render_openmetrics
    from gatectl.engine.evaluate import evaluate_gates
    from gatectl.policy import load_gates

    narrative = out or (sys.stdout if output == "table" else sys.stderr)
    prometheus, promtool = _find_binaries()
    policy_path = Path(policies) if policies is not None else bundled_policies()
    gates = load_gates([policy_path])
    by_workflow = {s.workflow: s for s in scenarios}

    end = datetime.now(UTC).replace(second=0, microsecond=0)
    directory, temporary = _prepare_data_dir(data_dir)
    server = LocalPrometheus(directory / "tsdb", binary=prometheus, promtool=promtool)
    began = time.monotonic()
    try:
        print(
            f"gatectl demo: backfilling {DEMO_HOURS:g}h of example metrics with promtool...",
            file=narrative,
        )
        server.backfill(render_openmetrics(example_series(scenarios, end=end)))
        server.start()
        print(f"gatectl demo: Prometheus is up on {server.url}; evaluating...", file=narrative)
        starts = {g.key: _started_at(g, by_workflow, end=end) for g in gates}
        states = [(g, GateState(step_started_at=starts[g.key])) for g in gates]
        evaluations = [(e.gate, e.decision) for e in evaluate_gates(states, at=end, url=server.url)]
        print(file=narrative)
        narrative.flush()
        printer(evaluations, output=output)
        sys.stdout.flush()
        _explain(
            evaluations,
            by_workflow,
            url=server.url,
            at=end,
            policies=policy_path,
            starts=starts,
            keep_running=keep_running,
            out=narrative,
        )
        print(f"(demo took {time.monotonic() - began:.1f}s)", file=narrative)
    finally:
        if not keep_running:
            server.stop()
            if temporary:
                shutil.rmtree(directory, ignore_errors=True)
    return 0
