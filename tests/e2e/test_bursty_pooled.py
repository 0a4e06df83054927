"""The canary's dispersion pooled with the baseline's history, on a real Prometheus.

A step's first minutes cannot tell a burst from a bad canary on the canary's
own intervals, so gatectl pools them with the baseline's last 6 hours
(``gatectl.core.dispersion.pooled_bound``). Per-minute counts are drawn here
and backfilled with promtool (a sample every 15 s; the baseline nine times
the canary's requests, from 6 h before the step on). Each canary is replayed
twice, on a workflow with that baseline and on a twin with the very same
canary counts and no baseline (the canary's own bound: the rule before
pooling):

- a bad canary (0.12, independent requests) falls back at its third look
  with the baseline; its twin still holds then, and falls back later;
- healthy bursty canaries (correlation 0.2) never fall back: bursty on both
  tracks, or on the canary only (the guard keeps the canary's own bound);
- batched, the baseline's history is one query for all gates, and the
  canary's factor is the pooled bound computed here from the drawn minutes.
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
from scipy.optimize import brentq
from scipy.stats import chi2
from support.prometheus import Counting, require_prometheus

from gatectl.adapters.prometheus import PrometheusClient
from gatectl.cli import main
from gatectl.demo.localprom import LocalPrometheus, SeriesSpec, render_openmetrics
from gatectl.engine.observe import observe, plan_gate
from gatectl.policy.models import Gate, GateSpec

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
"""When the replayed step begins (a whole hour, 6 hours ago)."""
HISTORY = 6 * 60 + 5
"""Minutes of baseline before T0 (the pooled 6 h and a little more)."""
AFTER = 90
"""Minutes of data after T0."""
BASELINE_SIZE = 9


def draw(per_minute: int, mean: float, rho: float, count: int, seed: int) -> list[int]:
    """Exceptions per minute, Beta-binomial with correlation ``rho`` (binomial at 0)."""
    rng = np.random.default_rng(seed)
    if rho == 0.0:
        rates = np.full(count, mean)
    else:
        scale = (1.0 - rho) / rho
        rates = rng.beta(mean * scale, (1.0 - mean) * scale, size=count)
    return [int(x) for x in rng.binomial(per_minute, rates)]


CANARIES: dict[str, tuple[int, list[int], float]] = {
    # workflow: (canary requests a minute, exceptions per minute since T0, baseline rho)
    "pooled-bad": (100, draw(100, 0.12, 0.0, AFTER, seed=3), 0.0),
    "pooled-bursty": (400, draw(400, 0.02, 0.2, AFTER, seed=4), 0.2),
    "pooled-canary-only": (400, draw(400, 0.02, 0.2, AFTER, seed=5), 0.0),
}


def counter(
    workflow: str, track: str, start: datetime, per_minute: int, counts: list[int]
) -> Iterator[SeriesSpec]:
    """Four samples a minute from ``start``; minute m's counts land on its four samples."""
    labels = {"workflow": workflow, "track": track, "instance": f"{track}-0:8080"}
    requests, exceptions = [(start.timestamp(), 0.0)], [(start.timestamp(), 0.0)]
    total_requests = total_exceptions = 0
    for m, x in enumerate(counts):
        for j in range(4):
            total_requests += per_minute // 4
            total_exceptions += x // 4 + (1 if j < x % 4 else 0)
            stamp = start.timestamp() + 60 * m + 15 * (j + 1)
            requests.append((stamp, float(total_requests)))
            exceptions.append((stamp, float(total_exceptions)))
    yield SeriesSpec("workflow_requests_total", "counter", labels, requests)
    yield SeriesSpec("workflow_exceptions_total", "counter", labels, exceptions)


BASELINES = {
    workflow: draw(BASELINE_SIZE * per_minute, 0.02, rho, HISTORY + AFTER, seed=100 + seed)
    for seed, (workflow, (per_minute, _, rho)) in enumerate(CANARIES.items())
}
"""Baseline exceptions per minute from ``HISTORY`` minutes before T0."""


def all_series() -> Iterator[SeriesSpec]:
    for workflow, (per_minute, counts, _) in CANARIES.items():
        yield from counter(workflow, "canary", T0, per_minute, counts)
        yield from counter(f"{workflow}-alone", "canary", T0, per_minute, counts)
        size = BASELINE_SIZE * per_minute
        start = T0 - timedelta(minutes=HISTORY)
        yield from counter(workflow, "baseline", start, size, BASELINES[workflow])


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, promtool = require_prometheus()
    server = LocalPrometheus(
        tmp_path_factory.mktemp("pooled-prometheus"), binary=binary, promtool=promtool
    )
    server.backfill(render_openmetrics(list(all_series())))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


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


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def replay(
    url: str, workflow: str, minutes: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    path = tmp_path / f"{workflow}.yaml"
    path.write_text(POLICY.format(workflow=workflow), encoding="utf-8")
    main(
        [
            "replay",
            str(path),
            "--started-at",
            stamp(T0),
            "--from",
            stamp(T0),
            "--to",
            stamp(T0 + timedelta(minutes=minutes)),
            "--every",
            "1m",
            "--prometheus-url",
            url,
            "--output",
            "json",
        ]
    )
    body: dict[str, Any] = json.loads(capsys.readouterr().out)
    return body


def fell_at(body: dict[str, Any]) -> int | None:
    """Minutes after T0 of the fallback, or ``None``."""
    at = body["summary"]["fallback_at"]
    if at is None:
        return None
    moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return round((moment - T0).total_seconds() / 60)


def test_a_bad_canary_falls_back_at_a_look_its_own_bound_would_hold(
    prometheus_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pooled = replay(prometheus_url, "pooled-bad", 20, tmp_path, capsys)
    alone = replay(prometheus_url, "pooled-bad-alone", 20, tmp_path, capsys)

    assert fell_at(pooled) == 3
    assert pooled["summary"]["fallback_reason"].startswith(
        "rollback trigger fired: exception_rate > 0.06"
    )
    later = fell_at(alone)
    assert later is not None and later > 3


@pytest.mark.parametrize(
    "workflow",
    [
        pytest.param("pooled-bursty", id="bursty-on-both-tracks"),
        pytest.param("pooled-canary-only", id="bursty-canary-only"),
    ],
)
def test_a_healthy_bursty_canary_does_not_fall_back(
    prometheus_url: str, workflow: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = replay(prometheus_url, workflow, AFTER - 1, tmp_path, capsys)

    assert body["summary"]["fallback_at"] is None
    widened = [
        e["triggers"][0]["dispersion"]
        for e in body["evaluations"]
        if e["triggers"] and e["triggers"][0].get("dispersion") is not None
    ]
    # Correlation 0.2 at 400 requests a minute: a true factor of ~81, seen as such.
    assert widened and max(widened[30:]) > 20


def pearson(counts: list[int], per_minute: int) -> float:
    """Pearson's X^2 over minutes of ``per_minute`` requests, in exact rationals."""
    p = Fraction(sum(counts), per_minute * len(counts))
    return float(
        sum(Fraction(x - per_minute * p) ** 2 / (per_minute * p * (1 - p)) for x in counts)
    )


def pooled(canary: list[int], n_c: int, baseline: list[int], n_b: int) -> float:
    """The pooled bound from its defining equation, solved numerically (scipy's quantile)."""
    d_c, d_b = len(canary) - 1, len(baseline) - 1
    a, b = max(pearson(canary, n_c), d_c), max(pearson(baseline, n_b), d_b)
    s, q = (n_b - 1) / (n_c - 1), chi2.ppf(0.05, d_c + d_b)
    root = brentq(lambda v: a / v + b / (1 + s * (v - 1)) - q, 1.0, 1e9, xtol=1e-12)
    return float(min(n_c, max(1.0, root)))


def test_the_controller_reads_the_baseline_s_history_once_for_all_gates(
    prometheus_url: str,
) -> None:
    """Batched: one history query for every gate whatever its window; the canary's
    dispersion is the pooled bound computed here from the drawn minutes."""
    spec = GateSpec.model_validate(
        {
            "canary_traffic": 0.1,
            "promotion_window": "2h",
            "success_criteria": {"exception_rate": "<= 0.04"},
        }
    )
    minutes = {"pooled-bad": 10, "pooled-bursty": 20, "pooled-canary-only": 30}
    at = T0 + timedelta(minutes=30)
    plans = [
        plan_gate(Gate(name=w, spec=spec), window_seconds=60.0 * m) for w, m in minutes.items()
    ]

    async def read() -> tuple[dict[str, float | None], list[str]]:
        async with PrometheusClient(prometheus_url, timeout=30) as client:
            counting = Counting(client)
            observed = await observe(plans, counting, at=at, batch=True)
        phi = {p.workflow: observed[p.key].canary["exception_rate"].dispersion for p in plans}
        return phi, counting.queries

    found, queries = asyncio.run(read())
    history = [q for q in queries if "[21600s:60s]" in q]
    assert len(history) == 1 and 'track="baseline"' in history[0]

    per_minute, counts, _ = CANARIES["pooled-bad"]
    end = HISTORY + 30  # the baseline's minute ending at `at` is index end - 1
    expected = pooled(
        counts[20:30], per_minute, BASELINES["pooled-bad"][end - 361 : end], 9 * per_minute
    )
    assert found["pooled-bad"] == pytest.approx(expected, rel=2e-4)
