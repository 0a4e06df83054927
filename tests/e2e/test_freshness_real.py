"""Stale, thin and tainted data never promotes: ``gatectl evaluate`` against a real Prometheus.

Issue 9's cases, reproduced on a Prometheus backfilled with promtool: a canary
whose series stopped 45 hours ago (3,610 samples in the first 3 h of its 48 h
window), 10 minutes of data in a 48 h window, and a workflow named
``x{{track}}`` next to a workflow ``xcanary``. Also a step's first seconds
(issue 13): warming up is a hold, not an inconclusive evaluation, and a trigger
that has data still fires. Every run is ``--at AT``, so it is reproducible.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.prometheus import Counting, require_prometheus

from e2e.support import AT, SEED_POLICY, rfc3339
from gatectl.adapters.prometheus import PrometheusClient
from gatectl.cli import main
from gatectl.core.catalog import freshness_query, freshness_steps, newest_query
from gatectl.core.observations import Freshness
from gatectl.demo.localprom import LocalPrometheus, SeriesSpec, render_openmetrics
from gatectl.engine.observe import observe, plan_gate
from gatectl.policy.durations import format_duration
from gatectl.policy.models import Gate, GateSpec

pytestmark = pytest.mark.prometheus

WINDOW = timedelta(hours=48)
PASSED = AT - timedelta(hours=49)
"""A step that began 49 h before AT: its 48 h window has passed."""


@dataclass(frozen=True)
class Scenario:
    """One workflow's canary counters: a sample every ``every`` from ``start``, ``count`` times."""

    workflow: str
    start: datetime
    every: timedelta
    count: int
    requests_per_sample: int
    exception_rate: float = 0.01

    @property
    def last(self) -> datetime:
        return self.start + self.every * (self.count - 1)

    def series(self) -> Iterator[SeriesSpec]:
        stamps = [(self.start + self.every * i).timestamp() for i in range(self.count)]
        labels = {"workflow": self.workflow, "track": "canary", "instance": "pod-0:8080"}
        for name, share in (
            ("workflow_requests_total", 1.0),
            ("workflow_exceptions_total", self.exception_rate),
            ("workflow_human_overrides_total", 0.02),
            ("workflow_critical_regressions_total", 0.0),
        ):
            points = [
                (t, float(math.floor(i * self.requests_per_sample * share + 1e-9)))
                for i, t in enumerate(stamps)
            ]
            yield SeriesSpec(name=name, kind="counter", labels=labels, samples=points)
        gauge = [(t, 0.0) for t in stamps]
        yield SeriesSpec(
            name="workflow_reviewer_queue_sla_breached",
            kind="gauge",
            labels={"workflow": self.workflow, "instance": "queue:9100"},
            samples=gauge,
        )


MINUTE = timedelta(minutes=1)
SCENARIOS = {
    s.workflow: s
    for s in (
        # Issue 9: 3,610 samples in the first 3 h of the 48 h window, then nothing for 45 h.
        Scenario("stopped", AT - WINDOW, timedelta(seconds=3), 3610, 1),
        # Issue 9: 10 minutes of data (every 15 s) at the end of a 48 h window.
        Scenario("brief", AT - timedelta(minutes=10), timedelta(seconds=15), 41, 50),
        # Healthy and complete (no exceptions at all): the control that still promotes.
        Scenario("steady", AT - timedelta(hours=50), MINUTE, 51 * 60, 5, 0.0),
        # A workflow whose name looks like a placeholder, with bad data ...
        Scenario("x{{track}}", AT - timedelta(hours=50), MINUTE, 50 * 60 + 1, 10, 0.5),
        # ... and the workflow it would become if {{track}} were filled in, with good data.
        Scenario("xcanary", AT - timedelta(hours=50), MINUTE, 50 * 60 + 1, 10),
        # Half of all requests fail, sampled every 2 s over the last 10 minutes.
        Scenario("burning", AT - timedelta(minutes=10), timedelta(seconds=2), 301, 20, 0.5),
    )
}


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, promtool = require_prometheus()
    server = LocalPrometheus(
        tmp_path_factory.mktemp("freshness-prometheus"), binary=binary, promtool=promtool
    )
    series = [spec for scenario in SCENARIOS.values() for spec in scenario.series()]
    server.backfill(render_openmetrics(series))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def write_policy(directory: Path, workflow: str, *, extra: str = "") -> Path:
    """The verbatim seed policy for ``workflow`` (the file is named after a safe form of it)."""
    stem = "".join(c if c.isalnum() else "-" for c in workflow).strip("-")
    path = directory / f"{stem}.yaml"
    head, rest = SEED_POLICY.split("\n", 1)
    path.write_text(f"{head}\n  workflow: {json.dumps(workflow)}\n{rest}{extra}", encoding="utf-8")
    return path


def evaluate(
    capsys: pytest.CaptureFixture[str], url: str, policy: Path, *extra: str
) -> tuple[int, dict[str, Any]]:
    argv = ["evaluate", str(policy), "--prometheus-url", url, "--output", "json"]
    argv += ["--at", rfc3339(AT)]
    if "--started-at" not in extra:
        argv += ["--started-at", rfc3339(PASSED)]
    code = main([*argv, *extra])
    out, _ = capsys.readouterr()
    body: dict[str, Any] = json.loads(out)
    return code, body


def test_a_series_that_stopped_45_hours_ago_is_stale_and_never_promotes(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, tmp_path: Path
) -> None:
    code, body = evaluate(capsys, prometheus_url, write_policy(tmp_path, "stopped"))

    assert (code, body["decision"], body["next_share"]) == (10, "hold", 0.1)
    age = body["freshness"]["newest_sample_age_seconds"]
    true_age = (AT - SCENARIOS["stopped"].last).total_seconds()
    # Past Prometheus' 5 m lookback the age is found by a subquery probing the window
    # 100 times (every 1728 s): never younger than the truth, at most a probe step older.
    assert true_age <= age <= true_age + 1728 + 300
    stale = f"stale: newest sample {format_duration(math.floor(age))} ago (max_staleness 5m)"
    assert body["reasons"] == [f"no data: {stale}"]
    assert body["inconclusive"] is True
    assert body["samples"] is None
    for check in body["criteria"] + body["triggers"]:
        assert (check["result"], check["error"]) == ("no_data", stale)


def test_stale_request_series_holds_a_gate_whose_own_metric_is_always_fresh(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, tmp_path: Path
) -> None:
    # vector(0.9) has a value at every instant; the gate's freshness is its request series'.
    extra = '  metrics:\n    answer_quality: {query: "vector(0.9)"}\n'
    policy = write_policy(tmp_path, "stopped", extra=extra)
    text = policy.read_text(encoding="utf-8").replace(
        "  success_criteria:\n", '  success_criteria:\n    answer_quality: ">= 0.8"\n'
    )
    policy.write_text(text, encoding="utf-8")

    code, body = evaluate(capsys, prometheus_url, policy)

    assert (code, body["decision"]) == (10, "hold")
    quality = next(c for c in body["criteria"] if c["metric"] == "answer_quality")
    assert quality["result"] == "no_data"
    assert quality["error"].startswith("stale: newest sample 4")
    assert body["reasons"][0].startswith("no data: stale: newest sample 4")


def test_ten_minutes_of_data_in_a_48h_window_is_mostly_empty_and_never_promotes(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, tmp_path: Path
) -> None:
    code, body = evaluate(capsys, prometheus_url, write_policy(tmp_path, "brief"))

    assert (code, body["decision"], body["next_share"]) == (10, "hold", 0.1)
    assert body["freshness"]["newest_sample_age_seconds"] == 0
    assert body["freshness"]["coverage"] <= 0.02
    assert body["samples"] == 2000
    # 10 minutes hold one or two of the probe's 29-minute steps, depending on how AT (a
    # whole hour a day ago) falls on Prometheus' epoch-aligned grid: 0.99 % or 1.98 %
    shown = math.floor(body["freshness"]["coverage"] * 100)
    assert shown in {0, 1}
    assert body["reasons"] == [
        f"mostly empty window: canary requests cover {shown} % of the 48h0m window"
        " (the series starts or stops inside it; at least 50 % needed)"
    ]
    assert body["inconclusive"] is False
    assert {c["result"] for c in body["criteria"]} == {"pass"}


def test_a_complete_fresh_history_promotes_and_shows_its_freshness(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, tmp_path: Path
) -> None:
    code, body = evaluate(capsys, prometheus_url, write_policy(tmp_path, "steady"))

    assert (code, body["decision"], body["next_share"]) == (0, "promote", 1.0)
    freshness = body["freshness"]
    assert (freshness["newest_sample_age_seconds"], freshness["coverage"]) == (0, 1.0)
    assert 'workflow_requests_total{workflow="steady",track="canary"}' in freshness["query"]


def test_a_workflow_named_like_a_placeholder_reads_only_its_own_series(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, tmp_path: Path
) -> None:
    code, body = evaluate(capsys, prometheus_url, write_policy(tmp_path, "x{{track}}"))

    assert (code, body["decision"], body["next_share"]) == (20, "fallback", 0.0)
    rate = next(c for c in body["criteria"] if c["metric"] == "exception_rate")
    assert rate["value"] == pytest.approx(0.5, abs=0.001)
    queries = json.dumps([c["query"] for c in body["criteria"]] + [body["freshness"]["query"]])
    assert "xcanary" not in queries
    assert 'workflow=\\"x{{track}}\\",track=\\"canary\\"' in queries
    # The workflow its name would have turned into is healthy and promotes on its own.
    code, body = evaluate(capsys, prometheus_url, write_policy(tmp_path, "xcanary"))
    assert (code, body["decision"]) == (0, "promote")


def test_a_step_12s_old_is_warming_up_not_inconclusive(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, tmp_path: Path
) -> None:
    started = rfc3339(AT - timedelta(seconds=12))
    code, body = evaluate(
        capsys,
        prometheus_url,
        write_policy(tmp_path, "steady"),
        "--started-at",
        started,
        "--inconclusive-count",
        "3",
    )

    assert (code, body["decision"], body["next_share"]) == (10, "hold", 0.1)
    assert body["reasons"] == [
        "warming up: window 12s < 2 × scrape interval 15s",
        "promotion window: 47h59m remaining",
    ]
    assert (body["inconclusive"], body["inconclusive_count"]) == (False, 3)
    assert body["warming_up"] is True


def test_a_declared_scrape_interval_sets_how_long_a_step_warms_up(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, "steady", extra="  prometheus: {scrape_interval: 1m}\n")
    started = rfc3339(AT - timedelta(seconds=90))
    code, body = evaluate(capsys, prometheus_url, policy, "--started-at", started)

    assert (code, body["decision"]) == (10, "hold")
    assert body["reasons"][0] == "warming up: window 1m30s < 2 × scrape interval 1m"


def test_a_trigger_with_data_still_fires_while_warming_up(
    capsys: pytest.CaptureFixture[str], prometheus_url: str, tmp_path: Path
) -> None:
    started = rfc3339(AT - timedelta(seconds=12))
    # Point values: 12 s hold no whole minute, so the dispersion bound (docs/statistics.md)
    # counts them as one observation and proves nothing yet; this test is about warming up.
    policy = write_policy(tmp_path, "burning", extra='  confidence: "off"\n')
    code, body = evaluate(capsys, prometheus_url, policy, "--started-at", started)

    assert (code, body["decision"], body["next_share"]) == (20, "fallback", 0.0)
    fired = [t["expression"] for t in body["triggers"] if t["result"] == "fired"]
    assert fired == ["exception_rate > 0.06"]
    assert body["reasons"][0].startswith("rollback trigger fired: exception_rate > 0.06")
    assert body["reasons"][1:] == ["warming up: window 12s < 2 × scrape interval 15s"]
    assert {c["result"] for c in body["criteria"]} == {"no_data"}


def test_a_fleet_read_in_two_parts_answers_what_the_one_query_of_each_gate_answers(
    prometheus_url: str,
) -> None:
    """Batched, freshness is read as coverage plus recent newest, then the subquery only for
    the workflows without a recent sample; each gate's own (one-query) read is the oracle."""
    spec = GateSpec.model_validate(
        {
            "canary_traffic": 0.1,
            "promotion_window": "48h",
            "success_criteria": {"exception_rate": "<= 0.04"},
        }
    )
    workflows = [*SCENARIOS, "never-seen"]
    plans = [
        plan_gate(Gate(name=w, spec=spec), window_seconds=WINDOW.total_seconds()) for w in workflows
    ]

    async def read() -> tuple[dict[str, Freshness], dict[str, dict[str, float]], list[str]]:
        async with PrometheusClient(prometheus_url, timeout=30) as client:
            counting = Counting(client)
            observed = await observe(plans, counting, at=AT, batch=True)
            alone = {}
            for workflow in workflows:
                one = freshness_query([workflow], window_seconds=WINDOW.total_seconds())
                answer = await client.query(one, at=AT)
                alone[workflow] = {s.labels["gatectl_read"]: s.value for s in answer}
        found = {}
        for plan in plans:
            freshness = observed[plan.key].freshness
            assert freshness is not None and freshness.error is None
            found[plan.workflow] = freshness
        return found, alone, counting.queries

    found, alone, queries = asyncio.run(read())
    steps = freshness_steps(WINDOW.total_seconds(), at=AT.timestamp())
    for workflow in workflows:
        newest = alone[workflow].get("newest")
        expected_age = None if newest is None else max(0.0, AT.timestamp() - newest)
        coverage = min(1.0, alone[workflow].get("coverage", 0.0) / steps)
        assert (found[workflow].newest_age_seconds, found[workflow].coverage) == (
            expected_age,
            coverage,
        ), workflow
    # Only "stopped" (its last sample 45 h old) needed the subquery for its newest sample.
    reads = [q for q in queries if "gatectl_read" in q]
    assert reads[1:] == [newest_query(["stopped"], window_seconds=WINDOW.total_seconds())]
    assert found["stopped"].newest_age_seconds is not None
    assert found["stopped"].newest_age_seconds > 45 * 3600 - 1
    assert found["never-seen"].newest_age_seconds is None
