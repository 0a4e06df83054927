"""The known history every end-to-end test reads, and small helpers.

The history is built here, five minutes at a time, with exact whole-event counts per
pod, so a test can state what the canary's numbers are and check gatectl
against both that and Prometheus's own answer. It runs from ``AT - 50h`` to
``AT + 1h``: ``AT`` (a whole hour, a day ago) is the instant the tests
evaluate at; the hour after it holds later events, so ``--at AT`` must ignore
them. Each workflow is a scenario named after what it shows.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from gatectl.demo.localprom import SeriesSpec

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
AT = NOW - timedelta(days=1)
"""The instant the tests evaluate at (queries carry time=AT)."""
DATA_START = AT - timedelta(hours=50)
DATA_END = AT + timedelta(hours=1)
STEP = timedelta(minutes=5)
"""One sample every 5 minutes per series: fine for windows of hours, and quick to backfill."""

SEED_POLICY = """\
workflow_release_gate:
  canary_traffic: 0.10
  promotion_window_hours: 48
  success_criteria:
    exception_rate: "<= 0.04"
    human_override_rate: "<= 0.15"
    critical_regressions: "== 0"
  rollback_trigger:
    - exception_rate > 0.06
    - reviewer_queue_sla_breach == true
    - critical_regressions > 0
  fallback_mode: deterministic_path
"""
"""The seed policy, verbatim; its gate and workflow are the file's stem."""


@dataclass(frozen=True)
class Flow:
    """One workflow's history: requests a minute per pod and per track, and event rates."""

    name: str
    canary_pods: tuple[float, ...] = (4.0, 4.0, 4.0)
    exception_rate: float = 0.02
    override_rate: float = 0.05
    baseline_pods: tuple[float, ...] | None = None
    """Requests a minute per baseline pod; ``None``: one pod carrying the rest of the
    traffic at ``share`` (canary / (canary + baseline) = ``share``, what gatectl set)."""
    share: float = 0.10
    """The canary share the data follows (the seed policy's ``canary_traffic``)."""
    baseline_exception_rate: float = 0.02
    baseline_override_rate: float = 0.05
    regressions_at: tuple[datetime, ...] = ()
    sla_breached: tuple[tuple[datetime, datetime], ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def canary_requests_per_minute(self) -> float:
        """All canary pods together."""
        return sum(self.canary_pods)

    @property
    def baseline(self) -> tuple[float, ...]:
        """Requests a minute per baseline pod (the share's complement unless given)."""
        if self.baseline_pods is not None:
            return self.baseline_pods
        return (self.canary_requests_per_minute * (1 - self.share) / self.share,)


FLOWS: dict[str, Flow] = {
    flow.name: flow
    for flow in (
        # Healthy all along; a critical regression 30 minutes after AT (seen only later).
        Flow("healthy", regressions_at=(AT + timedelta(minutes=30),)),
        Flow("exception-spike", exception_rate=0.10),
        Flow("sla-breach", sla_breached=((AT - timedelta(hours=5), AT - timedelta(hours=4)),)),
        Flow("regression", regressions_at=(AT - timedelta(hours=2),)),
        Flow("overrides-high", override_rate=0.20),
        # One request an hour: 48 in the window, below min_samples (100).
        Flow("sparse", canary_pods=(1 / 60,), exception_rate=0.0, override_rate=0.0),
        # The deterministic path is terrible; the canary is fine. Mixing them would fail.
        Flow(
            "baseline-bad",
            canary_pods=(10.0, 10.0),
            exception_rate=0.01,
            override_rate=0.04,
            baseline_pods=(90.0, 90.0),
            baseline_exception_rate=0.5,
            baseline_override_rate=0.6,
        ),
        # Four pods with different traffic: the sample count is their sum.
        Flow("pods-summed", canary_pods=(1.0, 2.0, 3.0, 4.0)),
        # Healthy, with the router at a later step's share (the exposure check reads it).
        Flow("healthy-at-25", share=0.25),
        Flow("healthy-at-50", share=0.5),
    )
}


def _instants(start: datetime, end: datetime) -> Iterator[datetime]:
    moment = start
    while moment <= end:
        yield moment
        moment += STEP


def _counter_series(flow: Flow, track: str, pods: tuple[float, ...]) -> Iterator[SeriesSpec]:
    exception_rate = flow.exception_rate if track == "canary" else flow.baseline_exception_rate
    override_rate = flow.override_rate if track == "canary" else flow.baseline_override_rate
    for index, per_minute in enumerate(pods):
        labels = {"workflow": flow.name, "track": track, "instance": f"pod-{index}:8080"}
        labels.update(flow.labels)
        totals = {"requests": 0.0, "exceptions": 0.0, "overrides": 0.0, "regressions": 0.0}
        # Fractional events carry over, so the counts are exact whole numbers.
        carry = {"requests": 0.0, "exceptions": 0.0, "overrides": 0.0}
        points: dict[str, list[tuple[float, float]]] = {k: [] for k in totals}
        for moment in _instants(DATA_START, DATA_END):
            if moment > DATA_START:
                carry["requests"] += per_minute * STEP.total_seconds() / 60
                requests = int(carry["requests"] + 1e-9)
                carry["requests"] -= requests
                totals["requests"] += requests
                for name, rate in (("exceptions", exception_rate), ("overrides", override_rate)):
                    carry[name] += requests * rate
                    events = int(carry[name] + 1e-9)
                    carry[name] -= events
                    totals[name] += events
                if track == "canary" and index == 0:
                    previous = moment - STEP
                    totals["regressions"] += sum(
                        1 for r in flow.regressions_at if previous < r <= moment
                    )
            for name, value in totals.items():
                points[name].append((moment.timestamp(), value))
        for name, metric in (
            ("requests", "workflow_requests_total"),
            ("exceptions", "workflow_exceptions_total"),
            ("overrides", "workflow_human_overrides_total"),
            ("regressions", "workflow_critical_regressions_total"),
        ):
            yield SeriesSpec(name=metric, kind="counter", labels=labels, samples=points[name])


def history(flows: Mapping[str, Flow] = FLOWS) -> list[SeriesSpec]:
    """Every series of every flow, from DATA_START to DATA_END, one sample every STEP."""
    series: list[SeriesSpec] = []
    for flow in flows.values():
        series += _counter_series(flow, "canary", flow.canary_pods)
        series += _counter_series(flow, "baseline", flow.baseline)
        gauge = [
            (
                moment.timestamp(),
                1.0 if any(lo <= moment <= hi for lo, hi in flow.sla_breached) else 0.0,
            )
            for moment in _instants(DATA_START, DATA_END)
        ]
        series.append(
            SeriesSpec(
                name="workflow_reviewer_queue_sla_breached",
                kind="gauge",
                labels={"workflow": flow.name, "instance": "queue:9100"},
                samples=gauge,
            )
        )
    return series


class PromQuery:
    """Asks Prometheus directly (not through gatectl), to check gatectl's numbers."""

    def __init__(self, url: str) -> None:
        self.url = url

    def value(self, promql: str, *, at: datetime = AT) -> float:
        """The single value of an instant query at ``at``."""
        response = httpx.get(
            f"{self.url}/api/v1/query", params={"query": promql, "time": at.timestamp()}
        )
        response.raise_for_status()
        result = response.json()["data"]["result"]
        assert len(result) == 1, f"{promql}: {json.dumps(result)}"
        return float(result[0]["value"][1])


def write_seed(directory: Path, workflow: str) -> Path:
    """The verbatim seed policy as ``<workflow>.yaml`` (gate and workflow are the stem)."""
    path = directory / f"{workflow}.yaml"
    path.write_text(SEED_POLICY, encoding="utf-8")
    return path


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rfc3339(moment: datetime) -> str:
    """``2026-11-20T12:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
