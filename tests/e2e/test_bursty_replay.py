"""Bursty failures on a real Prometheus: the dispersion it measures, and replays that hold.

Per-minute exception counts are drawn Beta-binomially (intra-minute
correlation 0.2, 400 canary requests a minute: true dispersion ~81) and
backfilled with promtool, a sample every 15 s. The dispersion query's answer
is compared with Pearson's statistic computed here from the minutes
themselves; a healthy bursty canary is replayed minute by minute and never
falls back (though binomial bounds on the same counts would fire), and a bad
bursty canary falls back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import chi2 as scipy_chi2
from support.prometheus import require_prometheus

from gatectl.adapters.prometheus import PrometheusClient
from gatectl.cli import main
from gatectl.core import stats
from gatectl.demo.localprom import LocalPrometheus, SeriesSpec, render_openmetrics
from gatectl.engine.observe import observe, plan_gate
from gatectl.policy.models import Gate, GateSpec

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=12)
"""When the replayed step begins (a whole hour, half a day ago)."""
LEAD = 30
"""Minutes of data before T0."""
MINUTES = LEAD + 180
PER_MINUTE = 400
RHO = 0.2
WORKFLOWS = {"bursty-healthy": (0.02, 15), "bursty-bad": (0.15, 12)}
"""workflow -> (mean exception rate, seed: one where binomial bounds falsely fire)."""

POLICY = """\
workflow_release_gate:
  workflow: {workflow}
  canary_traffic: 0.1
  promotion_window: 2h
  min_samples: 100
  success_criteria:
    exception_rate: "<= 0.04"
  rollback_trigger:
    - exception_rate > 0.06
"""


def minutes(mean: float, seed: int) -> list[int]:
    """Exceptions in each minute (400 requests each), Beta-binomial with correlation RHO."""
    rng = np.random.default_rng(seed)
    scale = (1.0 - RHO) / RHO
    rates = rng.beta(mean * scale, (1.0 - mean) * scale, size=MINUTES)
    return [int(x) for x in rng.binomial(PER_MINUTE, rates)]


COUNTS = {w: minutes(mean, seed) for w, (mean, seed) in WORKFLOWS.items()}
START = T0 - timedelta(minutes=LEAD)


def series(workflow: str) -> Iterator[SeriesSpec]:
    """Four samples a minute; minute m's counts land on its four samples, after START + 60 m."""
    labels = {"workflow": workflow, "track": "canary", "instance": "pod-0:8080"}
    requests, exceptions = [(START.timestamp(), 0.0)], [(START.timestamp(), 0.0)]
    total_requests = total_exceptions = 0
    for m, x in enumerate(COUNTS[workflow]):
        for j in range(4):
            total_requests += PER_MINUTE // 4
            total_exceptions += x // 4 + (1 if j < x % 4 else 0)
            stamp = START.timestamp() + 60 * m + 15 * (j + 1)
            requests.append((stamp, float(total_requests)))
            exceptions.append((stamp, float(total_exceptions)))
    yield SeriesSpec("workflow_requests_total", "counter", labels, requests)
    yield SeriesSpec("workflow_exceptions_total", "counter", labels, exceptions)


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, promtool = require_prometheus()
    server = LocalPrometheus(
        tmp_path_factory.mktemp("bursty-prometheus"), binary=binary, promtool=promtool
    )
    server.backfill(render_openmetrics([s for w in WORKFLOWS for s in series(w)]))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def pearson(events: list[int]) -> float:
    """The dispersion bound from Pearson's X^2 / (k - 1) over minutes of PER_MINUTE requests.

    X^2 exactly, the chi-squared quantile from scipy (gatectl's Wilson-Hilferty one is
    within 1e-4 of it at 60 degrees of freedom).
    """
    p = Fraction(sum(events), PER_MINUTE * len(events))
    chi2 = sum(Fraction(x - PER_MINUTE * p) ** 2 / (PER_MINUTE * p * (1 - p)) for x in events)
    dof = len(events) - 1
    return min(PER_MINUTE, max(1.0, float(chi2 / dof)) * dof / scipy_chi2.ppf(0.05, dof))


def gate(workflow: str) -> Gate:
    spec = GateSpec.model_validate(
        {
            "canary_traffic": 0.1,
            "promotion_window": "2h",
            "success_criteria": {"exception_rate": "<= 0.04"},
        }
    )
    return Gate(name=workflow, spec=spec)


@pytest.mark.parametrize(
    "batch", [pytest.param(True, id="batched"), pytest.param(False, id="alone")]
)
def test_dispersion_is_pearsons_statistic_of_the_minutes(prometheus_url: str, batch: bool) -> None:
    at = T0 + timedelta(hours=2)
    plans = [plan_gate(gate(w), window_seconds=3600) for w in WORKFLOWS]

    async def read() -> dict[str, float | None]:
        async with PrometheusClient(prometheus_url, timeout=30) as client:
            observed = await observe(plans, client, at=at, batch=batch)
        return {p.workflow: observed[p.key].canary["exception_rate"].dispersion for p in plans}

    found = asyncio.run(read())
    end = LEAD + 120  # minutes before `at`: the minute ending at `at` is index end - 1
    for workflow in WORKFLOWS:
        # The subquery's steps at at-60m .. at (both ends, Prometheus 2.x): 61 minutes.
        window = COUNTS[workflow][end - 61 : end]
        assert found[workflow] == pytest.approx(pearson(window), rel=1e-4)
        assert found[workflow] > 20  # ~81 in truth: far from independent requests


def replay(url: str, workflow: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    path = tmp_path / f"{workflow}.yaml"
    path.write_text(POLICY.format(workflow=workflow), encoding="utf-8")
    main(
        [
            "replay",
            str(path),
            "--from",
            T0.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "--to",
            (T0 + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "--every",
            "1m",
            "--prometheus-url",
            url,
            "--output",
            "json",
        ]
    )
    body: dict = json.loads(capsys.readouterr().out)  # type: ignore[type-arg]
    return body


def test_a_healthy_bursty_canary_never_falls_back(
    prometheus_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = replay(prometheus_url, "bursty-healthy", tmp_path, capsys)

    assert body["summary"]["fallback_at"] is None
    # The same counts under binomial bounds (dispersion ignored) would have fired.
    fired_without = []
    for evaluation in body["evaluations"]:
        trigger = evaluation["triggers"][0]
        if trigger["value"] is None:
            continue
        trials = trigger["samples"]
        plain = stats.rate_interval(trigger["value"] * trials, trials, confidence=0.95)
        fired_without.append(plain.lower > 0.06)
        assert trigger["result"] == "not_fired"
    assert any(fired_without)


def test_a_bad_bursty_canary_falls_back(
    prometheus_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = replay(prometheus_url, "bursty-bad", tmp_path, capsys)

    assert body["summary"]["fallback_at"] is not None
    assert body["summary"]["fallback_reason"].startswith("rollback trigger fired: exception_rate")


def test_triggers_are_also_read_over_the_recent_window(prometheus_url: str) -> None:
    at = T0 + timedelta(hours=2)  # a whole hour: the recent window is the last hour
    spec = GateSpec.model_validate(
        {
            "canary_traffic": 0.1,
            "promotion_window": "3h",
            "success_criteria": {"exception_rate": "<= 0.04"},
            "rollback_trigger": ["exception_rate > 0.06"],
        }
    )
    plans = [plan_gate(Gate(name=w, spec=spec), window_seconds=3 * 3600) for w in WORKFLOWS]

    async def read() -> dict[str, Any]:
        async with PrometheusClient(prometheus_url, timeout=30) as client:
            return dict(await observe(plans, client, at=at, batch=True))

    observed = asyncio.run(read())
    end = LEAD + 120
    for plan in plans:
        got = observed[plan.key]
        assert got.recent_seconds == 3600.0
        recent = got.recent["exception_rate"]
        assert (recent.numerator, recent.denominator) == (
            pytest.approx(sum(COUNTS[plan.workflow][end - 60 : end])),
            pytest.approx(60 * PER_MINUTE),
        )
        assert recent.dispersion == pytest.approx(
            pearson(COUNTS[plan.workflow][end - 61 : end]), rel=1e-4
        )
