"""``partial_response`` and ``query_offset`` against a real, backfilled Prometheus.

A counter steps from 100 to 250 one minute before ``at``: read at ``at`` it
is 250, and with a 2-minute ``query_offset`` the same query must read the
earlier 100. The requests go over the real socket and are recorded on the
way, so the test shows what was sent as well as what came back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gatectl.adapters.prometheus import PrometheusClient, single_value
from gatectl.core.observations import GateState
from gatectl.demo.localprom import LocalPrometheus, SeriesSpec, render_openmetrics
from gatectl.engine.evaluate import evaluate_gates
from gatectl.policy import Gate, GateSpec

pytestmark = pytest.mark.prometheus

LocalPrometheusFactory = Callable[..., LocalPrometheus]

STEP_BEFORE = timedelta(minutes=1)
OFFSET = timedelta(minutes=2)
SERIES = 'workflow_requests_total{workflow="triage",track="canary"}'


class Recording(httpx.AsyncHTTPTransport):
    """The real network transport, keeping every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await super().handle_async_request(request)


@pytest.fixture
def at() -> datetime:
    """A recent whole minute, so the samples sit in Prometheus' head range."""
    return datetime.fromtimestamp(int(time.time()) // 60 * 60, tz=UTC)


@pytest.fixture
def prometheus(local_prometheus_factory: LocalPrometheusFactory, at: datetime) -> str:
    """A counter at 100 for two hours, 250 from ``at - 1m``, one sample a minute."""
    end = int(at.timestamp())
    step = end - int(STEP_BEFORE.total_seconds())
    samples = [(t, 100.0 if t < step else 250.0) for t in range(end - 7200, end + 1, 60)]
    server = local_prometheus_factory()
    server.backfill(
        render_openmetrics(
            [
                SeriesSpec(
                    "workflow_requests_total",
                    "counter",
                    {"workflow": "triage", "track": "canary"},
                    samples,
                )
            ]
        )
    )
    server.start()
    return server.url


def read(url: str, at: datetime, **kwargs: Any) -> tuple[float, list[httpx.Request]]:
    transport = Recording()

    async def go() -> float:
        async with PrometheusClient(url, transport=transport, **kwargs) as client:
            return single_value(await client.query(SERIES, at=at))

    return asyncio.run(go()), transport.requests


def test_query_offset_reads_the_value_from_before_the_step(prometheus: str, at: datetime) -> None:
    now_value, _ = read(prometheus, at)
    earlier, [request] = read(prometheus, at, query_offset=OFFSET.total_seconds())
    assert (now_value, earlier) == (250.0, 100.0)
    assert request.url.params["time"] == f"{(at - OFFSET).timestamp():.3f}"


@pytest.mark.parametrize(
    ("mode", "sent"),
    [pytest.param("deny", "false", id="deny"), pytest.param("allow", "true", id="allow")],
)
def test_prometheus_accepts_the_partial_response_parameter(
    prometheus: str, at: datetime, mode: str, sent: str
) -> None:
    value, [request] = read(prometheus, at, partial_response=mode)
    assert value == 250.0
    assert request.url.params["partial_response"] == sent


def test_evaluate_says_the_offset_in_the_evidence(prometheus: str, at: datetime) -> None:
    spec = GateSpec.model_validate(
        {
            "canary_traffic": 0.1,
            "promotion_window": "1h",
            "success_criteria": {"critical_regressions": "== 0"},
            "prometheus": {"url": prometheus, "query_offset": "2m"},
        }
    )
    gate = Gate(name="triage", spec=spec)
    state = GateState(step_started_at=at - timedelta(hours=1))
    [evaluation] = evaluate_gates([(gate, state)], at=at, url=None)
    read_at = (at - OFFSET).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"metrics read as of {read_at} (prometheus.query_offset 2m)" in (
        evaluation.decision.notes
    )
    # The sample count is the window's increase as of the offset: the step is not in it.
    assert evaluation.decision.samples == 0.0
